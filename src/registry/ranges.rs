//! The two range headers of resumable transfers, read strictly: a
//! download's `Content-Range` (RFC 9110: `bytes FIRST-LAST/TOTAL`) and an
//! upload session's `Range` (the Distribution API: `0-LAST`, the bytes the
//! registry holds). Anything else is "not understood", never a guess.

/// A `206 Partial Content` answer's `Content-Range: bytes FIRST-LAST/TOTAL`
/// (`TOTAL` may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub total: Option<u64>,
}

pub(super) fn content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last) = (number(first)?, number(last)?);
    let total = match total.trim() {
        "*" => None,
        t => Some(number(t)?),
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// Whether a `206`'s range is exactly the rest of the blob asked for:
/// from `offset` to the end of a blob of `size` bytes (when known).
pub(super) fn is_rest(range: &ContentRange, offset: u64, size: Option<u64>) -> bool {
    range.first == offset
        && match size {
            Some(size) => range.last + 1 == size && range.total.is_none_or(|t| t == size),
            None => range.total.is_none_or(|t| range.last + 1 == t),
        }
}

/// How many bytes an upload session holds, from its `Range: 0-LAST` (some
/// registries write `bytes=0-LAST`). The API writes `0-0` both for an
/// empty session and for one byte: read as empty, so that the byte is sent
/// again rather than skipped (a registry refuses the overlap; it never
/// takes a gap).
pub(super) fn upload_held(value: &str) -> Option<u64> {
    let value = value.trim();
    let span = value.strip_prefix("bytes=").unwrap_or(value);
    let (first, last) = span.split_once('-')?;
    if number(first)? != 0 {
        return None;
    }
    match number(last)? {
        0 => Some(0),
        last => last.checked_add(1),
    }
}

/// Decimal digits only (no sign, no spaces inside), within u64.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_are_read_strictly() {
        let r = content_range("bytes 100-199/200").unwrap();
        assert_eq!((r.first, r.last, r.total), (100, 199, Some(200)));
        assert_eq!(content_range("bytes 0-9/*").unwrap().total, None);
        for bad in [
            "100-199/200",
            "bytes 100-199",
            "bytes 200-100/300",
            "bytes 100-200/200",
            "bytes -1-5/10",
            "bytes 1 0-5/10",
            "bytes 0-5/ten",
            "bytes */200",
            "items 0-5/10",
            "bytes 0-99999999999999999999999/*",
        ] {
            assert_eq!(content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_range_is_the_rest_only_from_the_offset_to_the_end() {
        let rest = content_range("bytes 100-199/200").unwrap();
        assert!(is_rest(&rest, 100, Some(200)));
        assert!(is_rest(&rest, 100, None));
        assert!(!is_rest(&rest, 99, Some(200)), "another start");
        assert!(!is_rest(&rest, 100, Some(300)), "another blob size");
        let short = content_range("bytes 100-149/200").unwrap();
        assert!(!is_rest(&short, 100, Some(200)), "not to the end");
        assert!(!is_rest(&short, 100, None), "not to the end of its own total");
        let open = content_range("bytes 100-199/*").unwrap();
        assert!(is_rest(&open, 100, Some(200)));
    }

    #[test]
    fn upload_sessions_say_how_much_they_hold() {
        assert_eq!(upload_held("0-1048575"), Some(1_048_576));
        assert_eq!(upload_held("bytes=0-9"), Some(10));
        assert_eq!(upload_held("0-0"), Some(0), "empty or one byte: sent again");
        for bad in ["5-9", "0-", "-9", "0-x", "", "0-18446744073709551615"] {
            assert_eq!(upload_held(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn range_parsing_never_panics(s in "\\PC{0,40}") {
            let _ = content_range(&s);
            let _ = upload_held(&s);
        }

        #[test]
        fn a_written_range_reads_back(first in 0u64..1 << 40, len in 1u64..1 << 40) {
            let last = first + len - 1;
            let r = content_range(&format!("bytes {first}-{last}/{}", last + 1)).unwrap();
            proptest::prop_assert!(is_rest(&r, first, Some(last + 1)));
            proptest::prop_assert_eq!(upload_held(&format!("0-{last}")), Some(if last == 0 { 0 } else { last + 1 }));
        }
    }
}
