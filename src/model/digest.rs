//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and incremental
//! verification.

use std::fmt;

use sha2::{Digest as _, Sha256, Sha512};

/// A validated digest: a known algorithm and lower-case hex of the right length.
/// Validation matters because digests come from registries and end up in URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {0:?} (expected sha256:<64 hex> or sha512:<128 hex>)")]
pub struct BadDigest(pub String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, BadDigest> {
        let bad = || BadDigest(s.chars().take(200).collect());
        let (alg, hex) = s.split_once(':').ok_or_else(bad)?;
        let len = match alg {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(bad()),
        };
        if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad());
        }
        Ok(Digest(s.to_string()))
    }

    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn algorithm(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }

    /// A hasher for this digest's algorithm.
    pub fn verifier(&self) -> Verifier {
        let hasher = match self.algorithm() {
            "sha512" => Hasher::Sha512(Sha512::new()),
            _ => Hasher::Sha256(Sha256::new()),
        };
        Verifier {
            expected: self.clone(),
            hasher,
            len: 0,
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut v = self.verifier();
        v.update(bytes);
        v.finish().is_ok()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone)]
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// Hashes content as it streams past, then says whether it matched. A
/// clone is the state so far, to go on from later.
#[derive(Clone)]
pub struct Verifier {
    expected: Digest,
    hasher: Hasher,
    len: u64,
}

impl Verifier {
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(chunk),
            Hasher::Sha512(h) => h.update(chunk),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `Err(actual)` when the content does not match the expected digest.
    pub fn finish(self) -> Result<(), Digest> {
        let actual = match self.hasher {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        };
        if actual == self.expected.0 {
            Ok(())
        } else {
            Err(Digest(actual))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_verifies() {
        let d = Digest::sha256_of(b"hello");
        assert_eq!(
            d.as_str(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(Digest::parse(d.as_str()), Ok(d.clone()));
        assert!(d.matches(b"hello"));
        assert!(!d.matches(b"hellO"));
        let mut v = d.verifier();
        v.update(b"he");
        v.update(b"llo");
        assert_eq!(v.len(), 5);
        assert!(v.finish().is_ok());
        let d512 = Digest::parse(&format!("sha512:{}", hex::encode(Sha512::digest(b"x")))).unwrap();
        assert!(d512.matches(b"x"));
    }

    #[test]
    fn rejects_unknown_algorithms_and_path_tricks() {
        for bad in [
            "md5:abc",
            "sha256:../../etc/passwd",
            "sha256:ABCDEF",
            "sha256",
            "",
            "sha256:",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(Digest::parse(&upper).is_err());
    }
}
