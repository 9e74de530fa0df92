//! Local stand-ins for the clouds' token services, each checking what a
//! real one checks and recording the tokens it hands out, so that a test
//! registry's token issuer accepts exactly those (see [`Issued`]):
//! - Google: an OAuth2 token endpoint (service-account JWTs, verified with
//!   the key's public half; refresh tokens; STS token exchange) and a
//!   metadata server.
//! - Azure: a Microsoft Entra authority (client secret, federated token)
//!   and ACR's `/oauth2/exchange`, mounted on the registry's host.
//! - AWS: ECR Public's `GetAuthorizationToken` (moto has no ECR Public);
//!   private ECR runs in moto (`scripts/ecr_standin.py`, [`Moto`]).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::http::{Request, Response, Server, url_decode_pairs};
use crate::proxy::Route;
use crate::token::{BasicCheck, RefreshCheck};

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

fn form(req: &Request) -> HashMap<String, String> {
    url_decode_pairs(&String::from_utf8_lossy(&req.body))
        .into_iter()
        .collect()
}

fn oauth_error(status: u16, code: &str) -> Response {
    Response::json(
        status,
        format!(r#"{{"error":"{code}","error_description":"refused by the stand-in"}}"#),
    )
}

/// Tokens a stand-in handed out, with their expiry and how they were got.
#[derive(Clone, Default)]
pub struct Issued(Arc<Mutex<Vec<(String, f64, String)>>>);

impl Issued {
    fn add(&self, token: &str, ttl: f64, how: &str) {
        self.0
            .lock()
            .unwrap()
            .push((token.to_string(), now() + ttl, how.to_string()));
    }

    /// Whether `token` was handed out and has not expired.
    pub fn valid(&self, token: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|(t, exp, _)| t == token && *exp > now())
    }

    /// How `token` was got.
    pub fn how(&self, token: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(t, _, _)| t == token)
            .map(|(_, _, h)| h.clone())
    }

    /// How each token was got, in order ("jwt-bearer", "metadata", …).
    pub fn flows(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(_, _, h)| h.clone()).collect()
    }

    pub fn tokens(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(t, _, _)| t.clone()).collect()
    }
}

/// An RSA key for a test service account.
pub struct RsaKey {
    pub pkcs8_pem: String,
    public_pkcs1: Vec<u8>,
}

impl RsaKey {
    /// The test service account's key: a fixed 2048-bit key made once
    /// with `openssl genpkey` (ring signs with RSA but makes no RSA keys);
    /// it guards nothing but these tests.
    pub fn generate() -> RsaKey {
        use ring::signature::KeyPair as _;
        let pkcs8_pem = include_str!("../fixtures/service-account-key.pem").to_string();
        let b64: String = pkcs8_pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).expect("PEM");
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("RSA key");
        RsaKey {
            public_pkcs1: key.public_key().as_ref().to_vec(),
            pkcs8_pem,
        }
    }

    /// The claims of an RS256 JWT signed by this key, if the signature holds.
    fn verify(&self, jwt: &str) -> Option<serde_json::Value> {
        use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = jwt.split('.');
        let (h, c, sig) = (parts.next()?, parts.next()?, parts.next()?);
        let header: serde_json::Value = serde_json::from_slice(&b64.decode(h).ok()?).ok()?;
        if header["alg"] != "RS256" {
            return None;
        }
        let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_pkcs1);
        key.verify(format!("{h}.{c}").as_bytes(), &b64.decode(sig).ok()?).ok()?;
        serde_json::from_slice(&b64.decode(c).ok()?).ok()
    }
}

pub const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Google's token endpoint, STS and metadata server on one loopback port.
pub struct GoogleStandIn {
    server: Server,
    pub key: Arc<RsaKey>,
    pub email: String,
    pub issued: Issued,
    /// What a JWT-bearer request's assertion held (claims), for checks.
    pub assertions: Arc<Mutex<Vec<serde_json::Value>>>,
    pub refresh_token: String,
    pub client_secret: String,
    pub subject_token: String,
}

impl GoogleStandIn {
    /// Access tokens live `ttl` seconds.
    pub fn start(ttl: u64) -> GoogleStandIn {
        let key = Arc::new(RsaKey::generate());
        let email = "mirror@test-project.iam.gserviceaccount.com".to_string();
        let issued = Issued::default();
        let assertions = Arc::new(Mutex::new(Vec::new()));
        let refresh_token = random_token("1//refresh-");
        let client_secret = random_token("secret-");
        let subject_token = random_token("subject-");
        let port = Arc::new(Mutex::new(0u16));
        let (k, e, i, a, r, cs, st, p) = (
            key.clone(),
            email.clone(),
            issued.clone(),
            assertions.clone(),
            refresh_token.clone(),
            client_secret.clone(),
            subject_token.clone(),
            port.clone(),
        );
        let server = Server::start(move |req| {
            let token_uri = format!("http://127.0.0.1:{}/token", *p.lock().unwrap());
            let grant = |how: &str| {
                let token = random_token("ya29.");
                i.add(&token, ttl as f64, how);
                Response::json(
                    200,
                    format!(r#"{{"access_token":"{token}","expires_in":{ttl},"token_type":"Bearer"}}"#),
                )
            };
            let path = req.target.split('?').next().unwrap_or("");
            match (req.method.as_str(), path) {
                ("POST", "/token") => {
                    let f = form(&req);
                    match f.get("grant_type").map(String::as_str) {
                        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                            let Some(claims) = f.get("assertion").and_then(|j| k.verify(j)) else {
                                return oauth_error(400, "invalid_grant");
                            };
                            a.lock().unwrap().push(claims.clone());
                            let fresh = claims["exp"].as_f64().is_some_and(|x| x > now());
                            if claims["iss"] != e.as_str()
                                || claims["aud"] != token_uri.as_str()
                                || claims["scope"] != GOOGLE_SCOPE
                                || !fresh
                            {
                                return oauth_error(400, "invalid_grant");
                            }
                            grant("jwt-bearer")
                        }
                        Some("refresh_token")
                            if f.get("refresh_token") == Some(&r)
                                && f.get("client_secret") == Some(&cs)
                                && f.contains_key("client_id") =>
                        {
                            grant("refresh-token")
                        }
                        _ => oauth_error(400, "invalid_grant"),
                    }
                }
                ("POST", "/v1/token") => {
                    let f = form(&req);
                    let ok = f.get("grant_type").map(String::as_str)
                        == Some("urn:ietf:params:oauth:grant-type:token-exchange")
                        && f.get("subject_token") == Some(&st)
                        && f.get("scope").map(String::as_str) == Some(GOOGLE_SCOPE)
                        && f.get("audience")
                            .is_some_and(|a| a.starts_with("//iam.googleapis.com/"));
                    if ok {
                        grant("sts")
                    } else {
                        oauth_error(400, "invalid_grant")
                    }
                }
                ("POST", p)
                    if p.starts_with("/v1/projects/-/serviceAccounts/") && p.ends_with(":generateAccessToken") =>
                {
                    // service account impersonation, with the STS token
                    let bearer = req.headers.get("authorization").and_then(|a| a.strip_prefix("Bearer "));
                    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
                    let sts_token = bearer.filter(|t| i.valid(t) && i.how(t).as_deref() == Some("sts"));
                    if sts_token.is_none() || body["scope"][0] != GOOGLE_SCOPE {
                        return Response::json(403, r#"{"error":{"message":"PERMISSION_DENIED"}}"#.into());
                    }
                    let token = random_token("ya29.impersonated.");
                    i.add(&token, ttl as f64, "impersonated");
                    Response::json(
                        200,
                        format!(r#"{{"accessToken":"{token}","expireTime":"2099-01-01T00:00:00Z"}}"#),
                    )
                }
                ("GET", "/computeMetadata/v1/instance/service-accounts/default/token") => {
                    if req.headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
                        return Response::json(403, "{}".into());
                    }
                    grant("metadata")
                }
                _ => Response::json(404, "{}".into()),
            }
        });
        *port.lock().unwrap() = server.port;
        GoogleStandIn {
            server,
            key,
            email,
            issued,
            assertions,
            refresh_token,
            client_secret,
            subject_token,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.host())
    }

    pub fn service_account_key(&self) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "key-1",
            "private_key": self.key.pkcs8_pem,
            "client_email": self.email,
            "client_id": "1234567890",
            "token_uri": self.token_uri(),
        })
        .to_string()
    }

    pub fn authorized_user(&self) -> String {
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "764086051850-test.apps.googleusercontent.com",
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "token_uri": self.token_uri(),
        })
        .to_string()
    }

    /// An external account whose subject token is in `subject_file`.
    pub fn external_account(&self, subject_file: &std::path::Path) -> String {
        serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("http://{}/v1/token", self.host()),
            "credential_source": { "file": subject_file, "format": { "type": "text" } },
        })
        .to_string()
    }

    /// The external account, impersonating the service account.
    pub fn external_account_impersonating(&self, subject_file: &std::path::Path) -> String {
        let mut v: serde_json::Value = serde_json::from_str(&self.external_account(subject_file)).unwrap();
        v["service_account_impersonation_url"] = format!(
            "http://{}/v1/projects/-/serviceAccounts/{}:generateAccessToken",
            self.host(),
            self.email
        )
        .into();
        v.to_string()
    }

    /// Registry credentials valid exactly when they are a live token of
    /// ours for the registry (not the intermediate STS token of an
    /// impersonation).
    pub fn check(&self) -> BasicCheck {
        let issued = self.issued.clone();
        Arc::new(move |user, password| user == "oauth2accesstoken" && issued.valid(password))
    }
}

pub const AZURE_SCOPE: &str = "https://containerregistry.azure.net/.default";
pub const ACR_USER: &str = "00000000-0000-0000-0000-000000000000";

/// A Microsoft Entra authority and ACR's token exchange.
pub struct AzureStandIn {
    server: Server,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub federated_token: String,
    /// The secret header of the managed identity endpoint.
    pub identity_header: String,
    /// Entra access tokens handed out.
    pub access: Issued,
    /// ACR refresh tokens handed out by the exchange.
    pub refresh: Issued,
}

impl AzureStandIn {
    pub fn start() -> AzureStandIn {
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47".to_string();
        let client_id = "11111111-2222-3333-4444-555555555555".to_string();
        let client_secret = random_token("azsecret-");
        let federated_token = random_token("eyJfederated.");
        let access = Issued::default();
        let (t, c, s, f, a) = (
            tenant.clone(),
            client_id.clone(),
            client_secret.clone(),
            federated_token.clone(),
            access.clone(),
        );
        let identity_header = random_token("identity-header-");
        let ih = identity_header.clone();
        let server = Server::start(move |req| {
            if req.method == "GET" && req.target.starts_with("/msi/token?") {
                // App Service / Container Apps managed identity
                let q: HashMap<String, String> = req.query().into_iter().collect();
                let ok = req.headers.get("x-identity-header") == Some(&ih)
                    && q.get("resource").map(String::as_str) == Some("https://containerregistry.azure.net")
                    && q.contains_key("api-version");
                if !ok {
                    return Response::json(400, r#"{"error":"invalid_request"}"#.into());
                }
                let token = random_token("eyJmanaged.");
                a.add(&token, 3600.0, "managed-identity");
                return Response::json(200, format!(r#"{{"access_token":"{token}","expires_in":"3600"}}"#));
            }
            if req.method != "POST" || req.target != format!("/{t}/oauth2/v2.0/token") {
                return Response::json(404, "{}".into());
            }
            let form = form(&req);
            let get = |k: &str| form.get(k).map(String::as_str);
            let how = if get("client_secret") == Some(&s) {
                "client-secret"
            } else if get("client_assertion_type") == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && get("client_assertion") == Some(&f)
            {
                "federated"
            } else {
                return oauth_error(401, "invalid_client");
            };
            if get("grant_type") != Some("client_credentials")
                || get("client_id") != Some(&c)
                || get("scope") != Some(AZURE_SCOPE)
            {
                return oauth_error(400, "invalid_request");
            }
            let token = random_token("eyJentra.");
            a.add(&token, 3600.0, how);
            Response::json(
                200,
                format!(r#"{{"access_token":"{token}","expires_in":3600,"token_type":"Bearer"}}"#),
            )
        });
        AzureStandIn {
            server,
            tenant,
            client_id,
            client_secret,
            federated_token,
            identity_header,
            access,
            refresh: Issued::default(),
        }
    }

    pub fn authority(&self) -> String {
        format!("http://127.0.0.1:{}/", self.server.port)
    }

    /// The managed identity endpoint (`IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/msi/token", self.server.port)
    }

    /// ACR's `/oauth2/exchange`, to mount on the registry's host.
    pub fn exchange(&self) -> Route {
        let (access, refresh) = (self.access.clone(), self.refresh.clone());
        Arc::new(move |req| {
            let form = form(&req);
            let ok = req.method == "POST"
                && form.get("grant_type").map(String::as_str) == Some("access_token")
                && form.get("access_token").is_some_and(|t| access.valid(t))
                && form.contains_key("service");
            if !ok {
                return Response::json(
                    401,
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad exchange"}]}"#.into(),
                );
            }
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let exp = now() as u64 + 3 * 3600;
            let token = format!(
                "{}.{}.{}",
                b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
                b64.encode(format!(r#"{{"exp":{exp},"jti":"{}"}}"#, random_token(""))),
                b64.encode(random_token("sig"))
            );
            refresh.add(&token, 3.0 * 3600.0, "exchange");
            Response::json(200, format!(r#"{{"refresh_token":"{token}"}}"#))
        })
    }

    /// Refresh tokens valid exactly when the exchange handed them out.
    pub fn check_refresh(&self) -> RefreshCheck {
        let refresh = self.refresh.clone();
        Arc::new(move |t| refresh.valid(t).then(|| ACR_USER.to_string()))
    }
}

/// ECR Public's API (`SpencerFrontendService.GetAuthorizationToken`):
/// answers requests signed with `access_key` only.
pub struct EcrPublicStandIn {
    server: Server,
    pub issued: Issued,
}

impl EcrPublicStandIn {
    pub fn start(access_key: &str) -> EcrPublicStandIn {
        let issued = Issued::default();
        let (i, key) = (issued.clone(), access_key.to_string());
        let server = Server::start(move |req| {
            let target = req.headers.get("x-amz-target").map(String::as_str);
            let signed = req
                .headers
                .get("authorization")
                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256") && a.contains(&format!("Credential={key}/")));
            if target != Some("SpencerFrontendService.GetAuthorizationToken") || !signed {
                return Response::json(400, r#"{"__type":"UnrecognizedClientException"}"#.into());
            }
            let password = random_token("ecrpublic-");
            i.add(&password, 43200.0, "ecr-public");
            let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
            let expires = now() + 43200.0;
            Response::json(
                200,
                format!(r#"{{"authorizationData":{{"authorizationToken":"{token}","expiresAt":{expires}}}}}"#),
            )
        });
        EcrPublicStandIn { server, issued }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    pub fn check(&self) -> BasicCheck {
        let issued = self.issued.clone();
        Arc::new(move |user, password| user == "AWS" && issued.valid(password))
    }
}

/// moto in server mode as the ECR API, with stricter tokens (see
/// `scripts/ecr_standin.py`): each line of its ledger is a token it
/// handed out, its expiry and the access key that asked.
pub struct Moto {
    pub port: u16,
    child: Child,
    pub ledger: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Whether moto can be started here (`pip install 'moto[server]'`).
    pub fn available() -> bool {
        Command::new(python())
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// ECR tokens live `ttl` seconds.
    pub fn start(ttl: f64) -> Moto {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = dir.path().join("ledger");
        std::fs::write(&ledger, "").expect("ledger");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/ecr_standin.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--ttl", &ttl.to_string()])
            .arg("--ledger")
            .arg(&ledger)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the ECR stand-in (python3 with moto[server])");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read ready line");
        assert_eq!(line.trim(), "ready", "the ECR stand-in did not start");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the ECR stand-in does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            port,
            child,
            ledger,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `(password, expiry, access key)` of every token handed out.
    pub fn tokens(&self) -> Vec<(String, f64, String)> {
        std::fs::read_to_string(&self.ledger)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut p = l.split(' ');
                Some((p.next()?.to_string(), p.next()?.parse().ok()?, p.next()?.to_string()))
            })
            .collect()
    }

    /// Creates ECR repository `name` (moto checks no signature).
    pub fn create_repository(&self, name: &str) {
        let resp = self.ecr_api("CreateRepository", serde_json::json!({ "repositoryName": name }));
        assert!(resp.status().is_success(), "CreateRepository {name}: {}", resp.status());
    }

    /// One call of the ECR API (moto checks no signature).
    fn ecr_api(&self, action: &str, body: serde_json::Value) -> reqwest::blocking::Response {
        crate::crypto();
        reqwest::blocking::Client::new()
            .post(self.url())
            .header("X-Amz-Target", format!("AmazonEC2ContainerRegistry_V20150921.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIATEST/20261201/eu-west-1/ecr/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    /// The repositories ECR holds (moto checks no signature).
    pub fn repositories(&self) -> Vec<String> {
        let resp = self.ecr_api("DescribeRepositories", serde_json::json!({}));
        let v: serde_json::Value = resp.json().expect("DescribeRepositories answer");
        v["repositories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["repositoryName"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Registry credentials valid exactly when they are a live ECR token.
    pub fn check(&self) -> BasicCheck {
        let ledger = self.ledger.clone();
        Arc::new(move |user, password| {
            user == "AWS"
                && std::fs::read_to_string(&ledger).unwrap_or_default().lines().any(|l| {
                    let mut p = l.split(' ');
                    p.next() == Some(password)
                        && p.next().and_then(|e| e.parse::<f64>().ok()).is_some_and(|e| e > now())
                })
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}
