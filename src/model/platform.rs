//! Platforms: as `platforms:` names them (`os/architecture[/variant]`), and
//! as an index child's descriptor or an image's config states them.

use std::fmt;

use serde_json::Value;

/// Text that is not a platform (`os/architecture[/variant]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a platform such as linux/amd64 or linux/arm/v7 (os/architecture or os/architecture/variant, lower case)"
)]
pub struct PlatformError(pub String);

/// One platform, such as `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Reads `os/architecture` or `os/architecture/variant`.
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(PlatformError(text.to_string()));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// The platform an index child's `platform` object, or an image
    /// config, states (`os`, `architecture`, `variant`); `None` without
    /// `os` and `architecture`.
    pub fn of_json(v: &Value) -> Option<Platform> {
        let field = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        Some(Platform {
            os: field("os")?.to_string(),
            architecture: field("architecture")?.to_string(),
            variant: field("variant").map(str::to_string),
        })
    }

    /// Whether `other` is this platform: the same os and architecture, and
    /// the same variant when this one names one (`linux/arm` admits every
    /// ARM variant, `linux/arm/v7` only v7).
    pub fn admits(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The platforms as one annotation value: `linux/amd64,linux/arm64`.
pub fn joined(platforms: &[Platform]) -> String {
    platforms.iter().map(Platform::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_and_admit() {
        let arm = Platform::parse("linux/arm").unwrap();
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        let v6 = Platform::parse("linux/arm/v6").unwrap();
        assert_eq!(v7.to_string(), "linux/arm/v7");
        assert!(arm.admits(&v7) && arm.admits(&v6) && v7.admits(&v7));
        assert!(!v7.admits(&v6) && !v7.admits(&arm));
        assert!(!Platform::parse("linux/amd64").unwrap().admits(&arm));
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v1/x",
            "Linux/AMD64",
            "linux/amd 64",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        let child = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        let p = Platform::of_json(&child).unwrap();
        assert!(Platform::parse("linux/arm64").unwrap().admits(&p));
        assert_eq!(Platform::of_json(&serde_json::json!({"os": "linux"})), None);
    }
}
