//! How to reach each registry: the scheme, and one `reqwest` client per set
//! of TLS material. The material (CA bundle, client certificate) arrives
//! already loaded and checked by `settings`; nothing here reads a file.

use std::collections::HashMap;
use std::time::Duration;

use crate::defaults;
use crate::model::Registry;

/// Connection settings of one registry host (a `registries:` entry).
#[derive(Clone, Default)]
pub struct HostSettings {
    /// HTTPS (`true`) or plain HTTP (`false`).
    pub tls: bool,
    /// Extra certificate authorities trusted for this host.
    pub ca_certs: Vec<reqwest::Certificate>,
    /// Client certificate and key for mutual TLS.
    pub identity: Option<reqwest::Identity>,
    /// TLS without certificate verification.
    pub insecure: bool,
}

impl std::fmt::Debug for HostSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSettings")
            .field("tls", &self.tls)
            .field("ca_certs", &self.ca_certs.len())
            .field("identity", &self.identity.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// How patient the transport is, and how to reach registries.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Further attempts of one HTTP exchange after a failure that may pass.
    pub retries: u32,
    /// Connect timeout, and the longest a response may stay silent.
    pub timeout: Duration,
    /// The longest one attempt of an exchange may take in all, body
    /// included (blob bodies excepted: they stream under a minimum rate).
    pub response_deadline: Duration,
    /// Hosts with settings of their own, by `host[:port]`.
    pub hosts: HashMap<String, HostSettings>,
    /// The most requests (and blob transfers) in flight per registry: the
    /// ceiling of each registry's adaptive limit (`--max-connections`).
    pub max_connections: usize,
    /// `--chunk-size`: the size of every chunk of a chunked upload; `None`
    /// lets them adapt.
    pub chunk_size: Option<u64>,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            retries: defaults::RETRIES,
            timeout: defaults::TIMEOUT,
            response_deadline: defaults::RESPONSE_DEADLINE,
            hosts: HashMap::new(),
            max_connections: defaults::MAX_CONNECTIONS,
            chunk_size: None,
        }
    }
}

/// The HTTP clients of a run: connection reuse per TLS setup.
/// One TLS setup's clients: `reading` stops at `--timeout` of silence;
/// `uploading` has no read timeout, because while a streamed upload is
/// sent the registry rightly says nothing, for as long as the upload takes
/// (its pace is the source's, watched by the copy engine's minimum rate).
struct Clients {
    reading: reqwest::Client,
    uploading: reqwest::Client,
}

pub(super) struct Connections {
    default: Clients,
    custom: HashMap<String, Clients>,
    hosts: HashMap<String, HostSettings>,
}

impl Connections {
    pub(super) fn new(settings: &TransportSettings) -> Result<Connections, reqwest::Error> {
        crate::http::install_crypto();
        let builder = |o: Option<&HostSettings>| {
            let mut b = reqwest::Client::builder()
                .user_agent(concat!("replicant/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
                .pool_idle_timeout(Duration::from_secs(90));
            if let Some(o) = o {
                if !o.ca_certs.is_empty() {
                    b = b.tls_certs_merge(o.ca_certs.iter().cloned());
                }
                if let Some(id) = &o.identity {
                    b = b.identity(id.clone());
                }
                if o.insecure {
                    b = b.tls_danger_accept_invalid_certs(true);
                }
            }
            b
        };
        let clients = |o: Option<&HostSettings>| -> Result<Clients, reqwest::Error> {
            Ok(Clients {
                reading: builder(o).read_timeout(settings.timeout).build()?,
                uploading: builder(o).build()?,
            })
        };
        let mut custom = HashMap::new();
        for (host, o) in &settings.hosts {
            if o.insecure {
                tracing::warn!(registry = %host, "TLS certificates are not verified (insecure: true)");
            }
            custom.insert(host.clone(), clients(Some(o))?);
        }
        Ok(Connections {
            default: clients(None)?,
            custom,
            hosts: settings.hosts.clone(),
        })
    }

    fn clients(&self, registry: &Registry) -> &Clients {
        self.custom.get(&registry.host).unwrap_or(&self.default)
    }

    pub(super) fn http(&self, registry: &Registry) -> &reqwest::Client {
        &self.clients(registry).reading
    }

    /// For streamed uploads: no read timeout (see [`Clients`]).
    pub(super) fn uploading(&self, registry: &Registry) -> &reqwest::Client {
        &self.clients(registry).uploading
    }

    /// The client for a registry's token realm: the registry's own TLS
    /// settings (CA, client certificate, `insecure`) apply only when the
    /// realm is on the registry's host and port; any other host is verified
    /// against the system roots.
    pub(super) fn for_realm(&self, realm: &url::Url, registry: &Registry) -> &reqwest::Client {
        let authority = match (realm.host_str(), realm.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        };
        if authority.eq_ignore_ascii_case(&registry.host) {
            self.http(registry)
        } else {
            &self.default.reading
        }
    }

    /// HTTPS, except for loopback registries (unless configured for TLS)
    /// and those configured with `tls: false`.
    pub(super) fn uses_tls(&self, registry: &Registry) -> bool {
        match self.hosts.get(&registry.host) {
            Some(o) => o.tls,
            None => !registry.is_loopback(),
        }
    }

    /// `https://host` or `http://host`.
    pub(super) fn base_url(&self, registry: &Registry) -> String {
        let scheme = if self.uses_tls(registry) { "https" } else { "http" };
        format!("{scheme}://{}", registry.host)
    }

    /// Credentials never travel in clear text beyond this machine.
    pub(super) fn cleartext_forbidden(&self, registry: &Registry) -> bool {
        !registry.is_loopback() && !self.uses_tls(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_travel_in_clear_text_to_a_remote_host() {
        let mut settings = TransportSettings::default();
        settings.hosts.insert("r.example.com".into(), HostSettings::default());
        let tls = HostSettings {
            tls: true,
            ..HostSettings::default()
        };
        settings.hosts.insert("127.0.0.1:5443".into(), tls);
        let c = Connections::new(&settings).unwrap();
        let remote = Registry::new("r.example.com");
        assert_eq!(c.base_url(&remote), "http://r.example.com");
        assert!(c.cleartext_forbidden(&remote));
        assert_eq!(c.base_url(&Registry::new("127.0.0.1:5443")), "https://127.0.0.1:5443");
        assert!(!c.cleartext_forbidden(&Registry::new("127.0.0.1:5000")));
        assert_eq!(c.base_url(&Registry::new("127.0.0.1:5000")), "http://127.0.0.1:5000");
        assert_eq!(c.base_url(&Registry::new("quay.io")), "https://quay.io");
        assert!(!c.cleartext_forbidden(&Registry::new("quay.io")));
    }

    #[test]
    fn a_registrys_tls_settings_do_not_reach_its_token_realm_on_another_host() {
        let mut settings = TransportSettings::default();
        let insecure = HostSettings {
            tls: true,
            insecure: true,
            ..HostSettings::default()
        };
        settings.hosts.insert("r.example.com".into(), insecure);
        let c = Connections::new(&settings).unwrap();
        let r = Registry::new("r.example.com");
        let on_registry = url::Url::parse("https://r.example.com/token").unwrap();
        let elsewhere = url::Url::parse("https://auth.example.com/token").unwrap();
        assert!(std::ptr::eq(c.for_realm(&on_registry, &r), c.http(&r)));
        assert!(std::ptr::eq(c.for_realm(&elsewhere, &r), &c.default.reading));
        assert!(!std::ptr::eq(c.http(&r), &c.default.reading));
    }
}
