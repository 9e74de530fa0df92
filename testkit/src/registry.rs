//! Real registry processes on free loopback ports: `docker-registry`
//! (Distribution 2.8, Debian) with every auth and TLS setting, and for the
//! interoperability tests Distribution v3 and go-containerregistry's
//! registry (with the OCI 1.1 referrers API), built from the Go module
//! proxy by `scripts/test`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::token::{ISSUER, Policy, SERVICE, TokenIssuer};

/// How a registry authenticates.
pub enum Auth {
    None,
    /// htpasswd (bcrypt) users.
    Basic(Vec<(String, String)>),
    /// Distribution's `auth: token`, with our issuer.
    Token(Policy),
}

/// Which registry program serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// `docker-registry` from Debian: no referrers API, deletes a tag only
    /// with its manifest.
    Distribution2,
    /// Distribution v3 (`registry` of github.com/distribution/distribution/v3).
    Distribution3,
    /// go-containerregistry's `pkg/registry`, in memory, with the referrers
    /// API (testkit/go/ggcr-registry).
    Ggcr,
}

impl Implementation {
    pub const ALL: [Implementation; 3] = [
        Implementation::Distribution2,
        Implementation::Distribution3,
        Implementation::Ggcr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Implementation::Distribution2 => "distribution-2.8",
            Implementation::Distribution3 => "distribution-3",
            Implementation::Ggcr => "ggcr",
        }
    }
}

pub struct Registry {
    pub port: u16,
    pub implementation: Implementation,
    /// Serves HTTPS (with a certificate from a test CA).
    pub tls: bool,
    child: Child,
    dir: tempfile::TempDir,
    /// Where its storage is (in `dir`, or another registry's).
    data: PathBuf,
    pub issuer: Option<TokenIssuer>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Repositories per catalog page of the registries started from now on:
/// 3 unless [`set_catalog_page`] says otherwise, so that a catalog of a
/// few repositories already pages (`Link`).
static CATALOG_PAGE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(3);

/// Sets the catalog page size of the registries started from now on (the
/// benchmark's large catalogs use Distribution's default, 1,000).
pub fn set_catalog_page(n: usize) {
    CATALOG_PAGE.store(n, std::sync::atomic::Ordering::SeqCst);
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        Registry::start_with(auth, None, false)
    }

    /// A plain-HTTP registry without auth, served by `implementation`.
    pub fn start_implementation(implementation: Implementation) -> Registry {
        match implementation {
            Implementation::Distribution2 => Registry::start(Auth::None),
            Implementation::Distribution3 => {
                let binary = crate::tools::tool("DISTRIBUTION_REGISTRY", "distribution-registry");
                Registry::start_program(binary, Implementation::Distribution3, Auth::None, None, false, None)
            }
            Implementation::Ggcr => Registry::start_ggcr(),
        }
    }

    fn start_ggcr() -> Registry {
        let binary = crate::tools::tool("GGCR_REGISTRY", "ggcr-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        for _attempt in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut child = Command::new(&binary)
                .arg("-addr")
                .arg(format!("127.0.0.1:{port}"))
                .env_clear()
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            if wait_ready(&mut child, port, false) {
                let data = dir.path().join("data");
                return Registry {
                    port,
                    implementation: Implementation::Ggcr,
                    tls: false,
                    child,
                    dir,
                    data,
                    issuer: None,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("ggcr-registry did not become ready; its log:\n{log}");
    }

    /// A registry serving HTTPS with `ca`'s server certificate.
    pub fn start_tls(auth: Auth, ca: &crate::tls::TestCa) -> Registry {
        Registry::start_with(auth, Some(ca), false)
    }

    /// A TLS registry that also requires a client certificate from `ca`.
    pub fn start_mtls(auth: Auth, ca: &crate::tls::TestCa) -> Registry {
        Registry::start_with(auth, Some(ca), true)
    }

    /// A second, TLS, registry process serving `other`'s storage (for
    /// reading the same images over HTTPS without pushing them twice).
    pub fn start_tls_over(other: &Registry, ca: &crate::tls::TestCa) -> Registry {
        Registry::start_on(Auth::None, Some(ca), false, Some(other.data_dir()))
    }

    fn start_with(auth: Auth, tls: Option<&crate::tls::TestCa>, client_certs: bool) -> Registry {
        Registry::start_on(auth, tls, client_certs, None)
    }

    fn start_on(auth: Auth, tls: Option<&crate::tls::TestCa>, client_certs: bool, data: Option<PathBuf>) -> Registry {
        let binary = std::env::var("DOCKER_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".into());
        Registry::start_program(
            binary.into(),
            Implementation::Distribution2,
            auth,
            tls,
            client_certs,
            data,
        )
    }

    /// A Distribution process (2.8 or v3: they read the same config); its
    /// catalog answers at most [`set_catalog_page`]'s repositories a page.
    fn start_program(
        binary: PathBuf,
        implementation: Implementation,
        auth: Auth,
        tls: Option<&crate::tls::TestCa>,
        client_certs: bool,
        data: Option<PathBuf>,
    ) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = data.unwrap_or_else(|| dir.path().join("data"));
        let (auth_yaml, issuer) = match auth {
            Auth::None => (String::new(), None),
            Auth::Basic(users) => {
                let path = dir.path().join("htpasswd");
                let lines: String = users
                    .iter()
                    .map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).expect("bcrypt")))
                    .collect();
                std::fs::write(&path, lines).expect("write htpasswd");
                (
                    format!("auth:\n  htpasswd:\n    realm: testkit\n    path: {}\n", path.display()),
                    None,
                )
            }
            Auth::Token(policy) => {
                let issuer = TokenIssuer::start(policy);
                let cert = dir.path().join("token-cert.pem");
                std::fs::write(&cert, &issuer.cert_pem).expect("write cert");
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    issuer.realm(),
                    cert.display()
                );
                (yaml, Some(issuer))
            }
        };
        let tls_yaml = match tls {
            None => String::new(),
            Some(ca) => {
                let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server-key.pem"));
                std::fs::write(&cert, &ca.cert_pem).expect("write cert");
                std::fs::write(&key, &ca.key_pem).expect("write key");
                let mut yaml = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                );
                if client_certs {
                    let ca_path = dir.path().join("client-ca.pem");
                    std::fs::write(&ca_path, &ca.ca_pem).expect("write client CA");
                    yaml.push_str(&format!("    clientcas:\n      - {}\n", ca_path.display()));
                }
                yaml
            }
        };
        for _attempt in 0..5 {
            let port = free_port();
            let catalog_page = CATALOG_PAGE.load(std::sync::atomic::Ordering::SeqCst);
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: testkit-secret\n{tls_yaml}catalog:\n  maxentries: {catalog_page}\nvalidation:\n  manifests:\n    urls:\n      allow:\n        - ^https://example\\.invalid/\n{auth_yaml}",
                data.display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut child = Command::new(&binary)
                .arg("serve")
                .arg(&config_path)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {} (scripts/test installs it: the Debian package docker-registry, or \
                         Distribution v3 from the Go module proxy): {e}",
                        binary.display()
                    )
                });
            if wait_ready(&mut child, port, tls.is_some()) {
                return Registry {
                    port,
                    implementation,
                    tls: tls.is_some(),
                    child,
                    dir,
                    data,
                    issuer,
                };
            }
            // most likely the port was taken meanwhile: try another
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("{} did not become ready; its log:\n{log}", binary.display());
    }

    /// `127.0.0.1:<port>`, the registry part of a repository reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.host())
    }

    /// The registry's log so far (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(child: &mut Child, port: u16, tls: bool) -> bool {
    crate::crypto();
    let probe = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        // a TLS registry may want a client certificate: accepting
        // connections is ready enough (the tests check the handshake)
        let ready = if tls {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        } else {
            probe
                .get(format!("http://127.0.0.1:{port}/v2/"))
                .send()
                .is_ok_and(|r| matches!(r.status().as_u16(), 200 | 401))
        };
        if ready {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
