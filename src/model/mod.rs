//! The vocabulary every other layer speaks: digests, registry and repository
//! names, the tag grammar, manifests and descriptors. Pure data and parsing:
//! nothing here does I/O, and nothing here imports another module of the
//! crate, so `store`, `registry` and `copy` can all depend on it.

pub mod cloud;
pub mod created;
pub mod digest;
pub mod manifest;
pub mod pattern;
pub mod platform;
pub mod reference;
pub mod referrers;
pub mod rewrite;

pub use digest::Digest;
pub use manifest::{FetchedManifest, ManifestHead};
pub use platform::Platform;
pub use reference::{Endpoint, Registry, Repository, is_valid_tag};

/// Levenshtein distance, for "did you mean" hints on short key names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
