//! One config spread over several runs, as a Kubernetes Indexed Job does:
//! shard `I/N` (0 ≤ I < N) runs the images whose stable hash of their name
//! falls in bucket I. The hash is SHA-256 of the name, so every run, build
//! and machine agrees on which shard owns an image.

use sha2::{Digest as _, Sha256};

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The most shards a config can be spread over.
pub const MAX_SHARDS: u32 = 10_000;

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a shard cannot be used; each names where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("\"{0}\" is not a shard: write I/N, e.g. 0/3 (I counts from 0)")]
    NotAShard(String),
    #[error("\"{given}\" is not a shard index (0 to {})", count - 1)]
    NotAnIndex { given: String, count: u32 },
    #[error("\"{0}\" is not a number of shards (1 to {MAX_SHARDS})")]
    NotACount(String),
    #[error("shard index {index} is not below the number of shards {count}")]
    Beyond { index: u32, count: u32 },
    #[error(
        "REPLICANT_SHARDS is set but JOB_COMPLETION_INDEX is not: run as a Kubernetes Indexed Job, or give --shard I/N"
    )]
    NoJobIndex,
    /// A variable of an Indexed Job is wrong: its name, and why.
    #[error("{variable}: {source}")]
    Variable {
        variable: &'static str,
        #[source]
        source: Box<ShardError>,
    },
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    /// `I/N`, e.g. `0/3`.
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let (i, n) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| ShardError::NotAShard(s.to_string()))?;
        let count = parse_count(n)?;
        let index = i.trim().parse::<u32>().map_err(|_| ShardError::NotAnIndex {
            given: i.to_string(),
            count,
        })?;
        Shard::new(index, count)
    }
}

fn parse_count(n: &str) -> Result<u32, ShardError> {
    match n.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_SHARDS).contains(&n) => Ok(n),
        _ => Err(ShardError::NotACount(n.to_string())),
    }
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if index >= count {
            return Err(ShardError::Beyond { index, count });
        }
        Ok(Shard { index, count })
    }

    /// The shard from `--shard` / `REPLICANT_SHARD` when given, else from an
    /// Indexed Job: `JOB_COMPLETION_INDEX` with `REPLICANT_SHARDS`. `None`:
    /// not sharded. `var` reads an environment variable.
    pub fn resolve(flag: Option<Shard>, var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
        let in_variable = |variable: &'static str| {
            move |e: ShardError| ShardError::Variable {
                variable,
                source: Box::new(e),
            }
        };
        if flag.is_some() {
            return Ok(flag);
        }
        let Some(count) = var("REPLICANT_SHARDS").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let count = parse_count(&count).map_err(in_variable("REPLICANT_SHARDS"))?;
        let index = var("JOB_COMPLETION_INDEX").ok_or(ShardError::NoJobIndex)?;
        let index = index
            .trim()
            .parse::<u32>()
            .map_err(|_| ShardError::NotAnIndex { given: index, count })
            .and_then(|index| Shard::new(index, count))
            .map_err(in_variable("JOB_COMPLETION_INDEX"))?;
        Ok(Some(index))
    }

    /// Whether this shard runs the image named `name` (its key in `images:`).
    pub fn owns(&self, name: &str) -> bool {
        let hash = Sha256::digest(name.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        u64::from_be_bytes(first) % u64::from(self.count) == u64::from(self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_parsed_and_checked() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(" 0/1 ".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
        for bad in ["3/3", "1", "a/3", "1/0", "-1/3", "1/x", "0/10001", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn indexed_jobs_name_their_shard_in_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let flag = Some(Shard { index: 2, count: 5 });
        assert_eq!(Shard::resolve(flag, env(&[("REPLICANT_SHARDS", "3")])), Ok(flag));
        assert_eq!(Shard::resolve(None, env(&[])), Ok(None));
        assert_eq!(Shard::resolve(None, env(&[("JOB_COMPLETION_INDEX", "1")])), Ok(None));
        assert_eq!(
            Shard::resolve(None, env(&[("REPLICANT_SHARDS", "3"), ("JOB_COMPLETION_INDEX", "2")])),
            Ok(Some(Shard { index: 2, count: 3 }))
        );
        let missing = Shard::resolve(None, env(&[("REPLICANT_SHARDS", "3")]))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("JOB_COMPLETION_INDEX is not"), "{missing}");
        let beyond = Shard::resolve(None, env(&[("REPLICANT_SHARDS", "3"), ("JOB_COMPLETION_INDEX", "3")]))
            .unwrap_err()
            .to_string();
        assert!(beyond.contains("not below"), "{beyond}");
    }

    #[test]
    fn every_image_belongs_to_exactly_one_shard_and_the_split_is_even_enough() {
        let names: Vec<String> = (0..3000).map(|i| format!("image-{i}")).collect();
        for count in 1..=7u32 {
            let mut sizes = vec![0usize; count as usize];
            for name in &names {
                let owners: Vec<u32> = (0..count).filter(|&i| Shard { index: i, count }.owns(name)).collect();
                assert_eq!(owners.len(), 1, "{name} in {count} shards");
                sizes[owners[0] as usize] += 1;
            }
            let expected = names.len() / count as usize;
            assert!(sizes.iter().all(|&s| s > expected * 8 / 10), "{count}: {sizes:?}");
        }
    }

    #[test]
    fn the_split_is_stable() {
        // fixed forever: a change would move images between the pods of a
        // running CronJob
        let owner = |name: &str| (0..4).find(|&i| Shard { index: i, count: 4 }.owns(name)).unwrap();
        // (checked independently: int.from_bytes(sha256(name)[:8], "big") % 4)
        assert_eq!(
            ["nginx", "alpine", "redis", "postgres", "busybox"].map(owner),
            [0, 3, 1, 1, 2]
        );
    }
}
