//! Command line + configuration file -> the settings of a run. The files a
//! configuration names (CA bundles, client certificates) are read and
//! checked here, so that every problem exits 2 before any network traffic,
//! and the registry client receives ready-made TLS material, never a path.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, RegistryOptions};
use crate::credentials::RegistryCredentials;
use crate::defaults;
use crate::model::{Endpoint, Registry};
use crate::registry::{HostSettings, TransportSettings};

/// Options of a run that are not in the config file.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub dry_run: bool,
    pub exit_on_error: bool,
    /// An image that selects no tags from a source with tags fails.
    pub fail_on_empty: bool,
    /// How progress is shown while copies run.
    pub progress: crate::progress::Display,
    /// Images planned and tags copied at once.
    pub jobs: usize,
    /// The most requests and blob transfers in flight per registry (and
    /// blob transfers per layout): the ceiling of the adaptive limit.
    pub max_connections: usize,
    /// Further attempts of one HTTP exchange; also the restarts of a blob
    /// transfer whose body broke mid-way.
    pub retries: u32,
    /// Connect timeout, and the longest a registry may stay silent.
    pub timeout: Duration,
    /// The longest one small response (manifest, tag page, token, error)
    /// may take in all.
    pub response_deadline: Duration,
    /// Blobs slower than this many bytes per second, averaged over
    /// `timeout`, are cut off and resumed (0: no minimum).
    pub min_transfer_rate: u64,
    /// `--chunk-size`: every chunk of a chunked upload this size; `None`:
    /// they adapt.
    pub chunk_size: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            exit_on_error: false,
            fail_on_empty: false,
            progress: crate::progress::Display::Off,
            jobs: defaults::JOBS,
            max_connections: defaults::MAX_CONNECTIONS,
            retries: defaults::RETRIES,
            timeout: defaults::TIMEOUT,
            response_deadline: defaults::RESPONSE_DEADLINE,
            min_transfer_rate: defaults::MIN_TRANSFER_RATE,
            chunk_size: None,
        }
    }
}

/// Everything a run needs, validated.
pub struct Settings {
    pub config: Config,
    pub run: RunOptions,
    pub transport: TransportSettings,
    /// What `registries:` says of each registry's credentials.
    pub credentials: BTreeMap<String, RegistryCredentials>,
}

/// A file of the `registries:` section that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{config}: registries: {host}: {key} {path}: {why}")]
pub struct SettingsError {
    pub config: PathBuf,
    pub host: String,
    pub key: &'static str,
    pub path: String,
    pub why: String,
}

impl Settings {
    pub fn new(mut config: Config, run: RunOptions) -> Result<Settings, SettingsError> {
        // One layout, one path: reached through a symbolic link or `..`, a
        // layout is still the same layout (one handle, one lock).
        for image in &mut config.images {
            for endpoint in [&mut image.source, &mut image.destination] {
                if let Endpoint::Layout(path) = endpoint {
                    *path = canonical(path);
                }
            }
        }
        let mut hosts = HashMap::new();
        for (host, options) in &config.registries {
            hosts.insert(host.clone(), host_settings(&config.path, host, options)?);
        }
        let transport = TransportSettings {
            retries: run.retries,
            timeout: run.timeout,
            response_deadline: run.response_deadline,
            hosts,
            max_connections: run.max_connections,
            chunk_size: run.chunk_size,
        };
        let credentials = config
            .registries
            .iter()
            .map(|(host, o)| (host.clone(), credentials(host, o)))
            .collect();
        Ok(Settings {
            config,
            run,
            transport,
            credentials,
        })
    }
}

/// The canonical form of a layout path, as far as it exists: the path
/// itself if it does, else its folder's canonical path and its name. A
/// dangling symbolic link stays as it is (the layout reports it).
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        return path.to_path_buf();
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// What the credentials providers take from a `registries:` entry.
fn credentials(host: &str, o: &RegistryOptions) -> RegistryCredentials {
    RegistryCredentials {
        auth: o.auth,
        tls: Some(o.uses_tls(Registry::new(host).is_loopback())),
        region: o.region.clone(),
        registry_id: o.registry_id.clone(),
        create_repositories: o.create_repositories,
        aws_profile: o.aws_profile.clone(),
        google_credentials: o.google_credentials.clone(),
    }
}

fn host_settings(config: &Path, host: &str, o: &RegistryOptions) -> Result<HostSettings, SettingsError> {
    let problem = |key: &'static str, path: &Path, why: String| SettingsError {
        config: config.to_path_buf(),
        host: host.to_string(),
        key,
        path: path.display().to_string(),
        why,
    };
    let read = |key: &'static str, path: &Path| std::fs::read(path).map_err(|e| problem(key, path, e.to_string()));
    let mut ca_certs = Vec::new();
    if let Some(path) = &o.ca_file {
        ca_certs = reqwest::Certificate::from_pem_bundle(&read("ca-file", path)?)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| problem("ca-file", path, "it holds no PEM certificate".into()))?;
    }
    let mut identity = None;
    if let (Some(cert), Some(key)) = (&o.cert_file, &o.key_file) {
        let mut pem = read("cert-file", cert)?;
        pem.extend(read("key-file", key)?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
            problem(
                "cert-file",
                cert,
                format!("with key-file, not a PEM certificate and key: {e}"),
            )
        })?;
        identity = Some(id);
    }
    Ok(HostSettings {
        tls: o.uses_tls(Registry::new(host).is_loopback()),
        ca_certs,
        identity,
        insecure: o.insecure,
    })
}

/// A flag or variable value that is not a boolean.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a boolean (use true/false, 1/0, yes/no, on/off)")]
pub struct NotABoolean(String);

/// Boolean environment values: true/false/1/0/yes/no/on/off, any case.
pub fn parse_bool(s: &str) -> Result<bool, NotABoolean> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(NotABoolean(s.to_string())),
    }
}

/// A `--chunk-size` that is not `auto` or a size within bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a chunk size: `auto`, or bytes from 1MiB to 64MiB (a number with an optional KiB, MiB, K or M)")]
pub struct NotAChunkSize(String);

/// `--chunk-size`: a size, or `None` for chunks that adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSize(pub Option<u64>);

/// `--chunk-size`: `auto` (chunks adapt), or a size in bytes with an
/// optional binary unit (`16MiB`, `16M`, `8192KiB`, `16777216`), within
/// [`defaults::CHUNK_MIN`] and [`defaults::CHUNK_MAX`].
pub fn parse_chunk_size(s: &str) -> Result<ChunkSize, NotAChunkSize> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(ChunkSize(None));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1024,
        "m" | "mib" => 1024 * 1024,
        _ => return Err(NotAChunkSize(s.to_string())),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| (defaults::CHUNK_MIN..=defaults::CHUNK_MAX).contains(n))
        .map(|n| ChunkSize(Some(n)))
        .ok_or_else(|| NotAChunkSize(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        let size = |s| parse_chunk_size(s).map(|c| c.0);
        assert_eq!(size("auto"), Ok(None));
        assert_eq!(size("AUTO"), Ok(None));
        assert_eq!(size("16MiB"), Ok(Some(16 << 20)));
        assert_eq!(size("16m"), Ok(Some(16 << 20)));
        assert_eq!(size("8192KiB"), Ok(Some(8 << 20)));
        assert_eq!(size("1048576"), Ok(Some(1 << 20)));
        for bad in [
            "",
            "512KiB",
            "65MiB",
            "1GiB",
            "-5M",
            "5 MB",
            "5.5M",
            "99999999999999999999M",
        ] {
            assert!(parse_chunk_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn boolean_values() {
        for t in ["true", "1", "yes", "on", "TRUE", "On"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "0", "no", "off", "NO"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["maybe", "2", "y", "truee"] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }
}
