//! The run's Prometheus metrics, in the text exposition format: for
//! node-exporter's textfile collector (`--metrics-file`, written atomically)
//! and for a Pushgateway (`--pushgateway`). docs/metrics.md lists them.
//!
//! Every value describes the run that just ended (gauges), except the
//! "last success" timestamps, which a failed run carries over from the
//! previous metrics (the file it replaces, or what the Pushgateway holds).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use crate::registry::Traffic;
use crate::report::RunReport;

/// What the metrics are made of.
pub struct RunFacts<'a> {
    pub report: &'a RunReport,
    pub traffic: &'a Traffic,
    pub exit_code: u8,
    pub started: SystemTime,
    pub finished: SystemTime,
}

/// "Last success" values of an earlier run, read from its metrics.
#[derive(Debug, Default, PartialEq)]
pub struct Previous {
    pub last_success: Option<f64>,
    pub image_last_success: BTreeMap<String, f64>,
}

const LAST_SUCCESS: &str = "replicant_last_success_timestamp_seconds";
const IMAGE_LAST_SUCCESS: &str = "replicant_image_last_success_timestamp_seconds";

impl Previous {
    /// Reads the last-success samples out of metrics text; with `group`
    /// (as a Pushgateway shows them), only samples of exactly that group:
    /// their labels, besides `instance` and a sample's own (`image`), are
    /// the group's labels and no others.
    pub fn parse(text: &str, group: Option<&[(String, String)]>) -> Previous {
        let mut previous = Previous::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            if let Some(group) = group {
                let grouping: BTreeMap<&str, &str> = labels
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "instance" | "image"))
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let wanted: BTreeMap<&str, &str> = group.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                if grouping != wanted {
                    continue;
                }
            }
            match name {
                LAST_SUCCESS => previous.last_success = Some(value),
                IMAGE_LAST_SUCCESS => {
                    if let Some(image) = labels.get("image") {
                        previous.image_last_success.insert(image.clone(), value);
                    }
                }
                _ => {}
            }
        }
        previous
    }
}

/// `a="x",b="y"` (values escaped as the exposition format escapes them).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}

/// A label value, escaped for the exposition format.
fn escaped(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One metric family: its help, its type, its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn start<'o>(out: &'o mut String, name: &str, help: &str) -> Family<'o> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escaped(v))).collect();
            let _ = write!(self.out, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// The metrics text of a run; `previous` supplies the last-success
/// timestamps this run does not renew.
pub fn render(facts: &RunFacts, previous: &Previous) -> String {
    let r = facts.report;
    let finished = seconds(facts.finished);
    let mut out = String::new();
    let succeeded = facts.exit_code == 0;

    let name = "replicant_last_run_timestamp_seconds";
    Family::start(&mut out, name, "When the last run ended (Unix time).").sample(name, &[], finished);
    // 0 until a run succeeds: the series exists from the first run on, so
    // an alert on its age fires for a mirror that never worked too
    let last_success = if succeeded {
        finished
    } else {
        previous.last_success.unwrap_or(0.0)
    };
    Family::start(
        &mut out,
        LAST_SUCCESS,
        "When the last run in which every image succeeded ended (Unix time; 0: none yet).",
    )
    .sample(LAST_SUCCESS, &[], last_success);
    let name = "replicant_run_duration_seconds";
    let duration = facts
        .finished
        .duration_since(facts.started)
        .unwrap_or_default()
        .as_secs_f64();
    Family::start(&mut out, name, "How long the last run took.").sample(name, &[], duration);
    let name = "replicant_run_exit_code";
    Family::start(
        &mut out,
        name,
        "The last run's exit code: 0 all succeeded, 1 some failed, 2 unusable config, 128+N signal N.",
    )
    .sample(name, &[], f64::from(facts.exit_code));

    let name = "replicant_run_tags";
    let mut f = Family::start(
        &mut out,
        name,
        "Tags of each image in the last run, by what happened to them.",
    );
    for i in &r.images {
        for (result, n) in [
            ("copied", i.copied().len()),
            ("replaced", i.replaced().len()),
            ("present", i.present().len()),
            ("failed", i.failed().len()),
            ("not_started", i.not_started().len()),
            ("unsupported", i.unsupported().len()),
            ("deleted", i.deleted().len()),
            ("skipped", i.skipped().len()),
            ("held", i.held().len()),
        ] {
            f.sample(name, &[("image", i.name.as_str()), ("result", result)], n as f64);
        }
    }
    let images = &r.images;
    per_image(
        &mut out,
        "replicant_image_success",
        "1 if the image succeeded in the last run (all its tags, nothing to attend to), else 0.",
        images,
        |i| Some(flag(i.status() == "ok")),
    );
    per_image(
        &mut out,
        "replicant_image_selects_nothing",
        "1 if the image selected no tags although its source has some (see the run's warning).",
        images,
        |i| Some(flag(i.attention.is_some())),
    );
    let name = "replicant_image_moved_tags";
    let mut f = Family::start(
        &mut out,
        name,
        "Tags whose source moved to another manifest than the destination's, in the last run \
         (replace-tag, detect-changes); kind=\"version\" for full versions, which should never move.",
    );
    for i in &r.images {
        let versions = i.moved.iter().filter(|m| m.version).count();
        for (kind, n) in [("version", versions), ("other", i.moved.len() - versions)] {
            f.sample(name, &[("image", i.name.as_str()), ("kind", kind)], n as f64);
        }
    }
    freshness(&mut out, r);
    let mut image_success: BTreeMap<&str, f64> = BTreeMap::new();
    for i in &r.images {
        let t = match i.status() == "ok" {
            true => finished,
            // 0: never yet (see LAST_SUCCESS)
            false => previous.image_last_success.get(&i.name).copied().unwrap_or(0.0),
        };
        image_success.insert(&i.name, t);
    }
    if !image_success.is_empty() {
        let mut f = Family::start(
            &mut out,
            IMAGE_LAST_SUCCESS,
            "When the image last succeeded (Unix time).",
        );
        for (image, t) in image_success {
            f.sample(IMAGE_LAST_SUCCESS, &[("image", image)], t);
        }
    }

    let t = &r.totals;
    let name = "replicant_run_blobs";
    let mut f = Family::start(
        &mut out,
        name,
        "Blobs of the last run by outcome: transferred, mounted from another repository, already present.",
    );
    for (outcome, n) in [
        ("transferred", t.blobs_transferred),
        ("mounted", t.blobs_mounted),
        ("present", t.blobs_skipped),
    ] {
        f.sample(name, &[("outcome", outcome)], n as f64);
    }
    let name = "replicant_run_blob_bytes";
    let mut f = Family::start(
        &mut out,
        name,
        "Blob bytes of the last run by outcome (mounted and present: their declared sizes).",
    );
    for (outcome, n) in [
        ("transferred", t.bytes_moved),
        ("mounted", t.bytes_mounted),
        ("present", t.bytes_skipped),
    ] {
        f.sample(name, &[("outcome", outcome)], n as f64);
    }

    let name = "replicant_run_registry_requests";
    let mut f = Family::start(
        &mut out,
        name,
        "HTTP requests of the last run by registry, method and status class (error: no answer).",
    );
    for ((registry, method, class), n) in facts.traffic.requests() {
        f.sample(
            name,
            &[
                ("registry", registry.as_str()),
                ("method", method.as_str()),
                ("status_class", class),
            ],
            n as f64,
        );
    }
    let budgets = facts.traffic.budgets();
    if !budgets.is_empty() {
        let name = "replicant_registry_pull_budget_remaining";
        let mut f = Family::start(
            &mut out,
            name,
            "Pulls left in the registry's rate-limit window, as it last said (Docker Hub ratelimit-remaining).",
        );
        for (registry, n) in budgets {
            f.sample(name, &[("registry", registry.as_str())], n as f64);
        }
    }
    out
}

/// How far behind its source each image is (images that were planned).
fn freshness(out: &mut String, r: &RunReport) {
    let images = &r.images;
    per_image(
        out,
        "replicant_image_missing_tags",
        "Tags the image selects that the destination still lacks after the last run (failed, held by min-age, not run).",
        images,
        |i| Some(i.freshness.as_ref()?.missing as f64),
    );
    per_image(
        out,
        "replicant_image_oldest_missing_age_seconds",
        "How old the oldest missing tag's image is, by the time it states (only when known).",
        images,
        |i| Some(i.freshness.as_ref()?.oldest_missing_age_seconds? as f64),
    );
    let name = "replicant_image_newest_version_info";
    let mut f = Family::start(
        out,
        name,
        "The newest version the filters admit at the source, and the newest in the destination (labels; value 1).",
    );
    for i in images {
        if let Some(fresh) = &i.freshness {
            let source = fresh.newest_source.as_deref().unwrap_or("");
            let mirrored = fresh.newest_mirrored.as_deref().unwrap_or("");
            let labels = [("image", i.name.as_str()), ("source", source), ("mirrored", mirrored)];
            f.sample(name, &labels, 1.0);
        }
    }
    per_image(
        out,
        "replicant_image_behind",
        "1 if the destination's newest version is lower than the source's (or it has none), else 0.",
        images,
        |i| Some(flag(i.freshness.as_ref()?.behind())),
    );
}

/// A family with one sample per image, for the images `value` has one for.
fn per_image(
    out: &mut String,
    name: &str,
    help: &str,
    images: &[crate::report::ImageReport],
    value: impl Fn(&crate::report::ImageReport) -> Option<f64>,
) {
    let mut f = Family::start(out, name, help);
    for i in images {
        if let Some(v) = value(i) {
            f.sample(name, &[("image", i.name.as_str())], v);
        }
    }
}

/// 1 or 0.
fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_values_are_read_back_with_their_labels() {
        let text = "# HELP x y\n\
                    replicant_last_success_timestamp_seconds{job=\"replicant\",shard=\"1\"} 1700000000\n\
                    replicant_last_success_timestamp_seconds{job=\"replicant\",shard=\"0\"} 1600000000\n\
                    replicant_image_last_success_timestamp_seconds{image=\"a \\\"q\\\"\",job=\"replicant\",shard=\"1\"} 1700000001\n\
                    replicant_image_last_success_timestamp_seconds{image=\"b\",job=\"other\",shard=\"1\"} 5\n";
        let group = |labels: &[(&str, &str)]| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let p = Previous::parse(text, Some(&group(&[("job", "replicant"), ("shard", "1")])));
        assert_eq!(p.last_success, Some(1_700_000_000.0));
        assert_eq!(p.image_last_success.get("a \"q\""), Some(&1_700_000_001.0));
        assert_eq!(p.image_last_success.len(), 1);
        let file = "replicant_last_success_timestamp_seconds 42\nreplicant_image_last_success_timestamp_seconds{image=\"x\"} 7\n";
        let p = Previous::parse(file, None);
        // another release's group (one more label) is not this one's
        let text = "replicant_last_success_timestamp_seconds{job=\"replicant\",release=\"b\"} 9\n";
        assert_eq!(
            Previous::parse(text, Some(&group(&[("job", "replicant")]))).last_success,
            None
        );
        let mine = Previous::parse(text, Some(&group(&[("job", "replicant"), ("release", "b")])));
        assert_eq!(mine.last_success, Some(9.0));
        assert_eq!(p.last_success, Some(42.0));
        assert_eq!(p.image_last_success.get("x"), Some(&7.0));
    }
}
