//! When an image was made, as it says itself: the
//! `org.opencontainers.image.created` annotation of its manifest or index,
//! else the `created` of its config. A time before 2000 says nothing
//! (reproducible builds write the epoch, 1970, or their source's date).

use super::{Digest, Platform};
use serde_json::Value;

/// The OCI annotation of a manifest's or an index's creation time.
pub const CREATED: &str = "org.opencontainers.image.created";
/// 2000-01-01T00:00:00Z: earlier creation times are not believed.
pub const EARLIEST: u64 = 946_684_800;

/// The creation time a manifest or index states in its annotations
/// (seconds since 1970), when it is a usable one.
pub fn annotated(doc: &Value) -> Option<u64> {
    usable(doc.pointer("/annotations")?.get(CREATED)?.as_str()?)
}

/// The `created` of an image config, when it is a usable one.
pub fn config_created(config: &Value) -> Option<u64> {
    usable(config.get("created")?.as_str()?)
}

/// The config digest of an image manifest.
pub fn config_digest(doc: &Value) -> Option<Digest> {
    Digest::parse(doc.pointer("/config/digest")?.as_str()?).ok()
}

/// The children of an index whose platform is one of `platforms` (all,
/// when empty; a child that states no platform is taken).
pub fn children_for(doc: &Value, platforms: &[Platform]) -> Vec<Digest> {
    let Some(children) = doc.get("manifests").and_then(Value::as_array) else {
        return Vec::new();
    };
    children
        .iter()
        .filter(
            |c| match (platforms.is_empty(), c.get("platform").and_then(Platform::of_json)) {
                (true, _) | (false, None) => true,
                (false, Some(p)) => platforms.iter().any(|want| want.admits(&p)),
            },
        )
        .filter_map(|c| Digest::parse(c.get("digest")?.as_str()?).ok())
        .collect()
}

fn usable(text: &str) -> Option<u64> {
    parse_rfc3339(text).filter(|t| *t >= EARLIEST)
}

/// Seconds since 1970 of an RFC 3339 time (`2026-12-01T10:00:00Z`, or with
/// an offset such as `+02:00`; fractions allowed); `None` for anything
/// else, or a time before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, time) = s.split_once(['T', 't'])?;
    let (time, offset) = match time.strip_suffix(['Z', 'z']) {
        Some(t) => (t, 0),
        None => {
            let at = time.rfind(['+', '-'])?;
            let (t, off) = time.split_at(at);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (oh, om) = off[1..].split_once(':')?;
            let (oh, om) = (oh.parse::<i64>().ok()?, om.parse::<i64>().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            (t, sign * (oh * 3600 + om * 60))
        }
    };
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let in_range = (1970..=9999).contains(&y) && (0..=23).contains(&hh) && (0..=59).contains(&mm);
    if !in_range || !(1..=12).contains(&m) || !(1..=31).contains(&day) || !(0..=60).contains(&ss) {
        return None;
    }
    // days from civil (Howard Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss - offset).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_with_offsets_and_the_ones_not_believed() {
        assert_eq!(parse_rfc3339("2026-11-27T23:00:00+02:00"), Some(1_795_813_200));
        assert_eq!(parse_rfc3339("2026-11-27T20:30:00.5-00:30"), Some(1_795_813_200));
        assert_eq!(parse_rfc3339("2026-11-27T21:00:00"), None);
        assert_eq!(parse_rfc3339("2026-11-27T21:00:00+25:00"), None);
        let doc = |t: &str| json!({"annotations": {CREATED: t}});
        assert_eq!(annotated(&doc("2026-11-27T21:00:00Z")), Some(1_795_813_200));
        assert_eq!(annotated(&doc("1970-01-01T00:00:00Z")), None, "reproducible builds");
        assert_eq!(annotated(&doc("1999-12-31T23:59:59Z")), None);
        assert_eq!(annotated(&json!({})), None);
        assert_eq!(
            config_created(&json!({"created": "2001-01-01T00:00:00Z"})),
            Some(978_307_200)
        );
    }

    #[test]
    fn an_indexs_children_of_the_platforms_asked_for() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = json!({"manifests": [
            {"digest": d('a'), "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": d('b'), "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": d('c')},
        ]});
        let amd64 = [Platform::parse("linux/amd64").unwrap()];
        let picked: Vec<String> = children_for(&index, &amd64).iter().map(|d| d.to_string()).collect();
        assert_eq!(picked, [d('a'), d('c')]);
        assert_eq!(children_for(&index, &[]).len(), 3);
    }
}
