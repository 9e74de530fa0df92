//! A Docker-token-spec issuer for Distribution's `auth: token`: checks Basic
//! credentials (or a refresh token), grants the requested scopes, and signs
//! ES256 JWTs whose `x5c` header carries a self-signed certificate that the
//! registry trusts through `rootcertbundle`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::Serialize;

use crate::http::{Request, Response, Server, url_decode_pairs};

pub const SERVICE: &str = "testkit-registry";
pub const ISSUER: &str = "testkit-issuer";

/// Decides whether a user name and password are valid (cloud tokens).
pub type BasicCheck = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;
/// The user a refresh token belongs to, if it is valid.
pub type RefreshCheck = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Policy {
    /// Further valid Basic credentials, decided when asked.
    pub check: Option<BasicCheck>,
    /// Further valid refresh tokens, decided when asked.
    pub check_refresh: Option<RefreshCheck>,
    /// username -> password
    pub users: HashMap<String, String>,
    /// refresh token -> username (Docker's `identitytoken`)
    pub refresh_tokens: HashMap<String, String>,
    /// Whether anonymous requests get `pull`.
    pub anonymous_pull: bool,
    /// Users that only get `pull`, whatever they ask.
    pub read_only: Vec<String>,
    /// Seconds a token is valid for the registry (its `exp`), whatever the
    /// response's `expires_in` (300) tells the client: set it low to see
    /// tokens expire in the middle of a run.
    pub jwt_lifetime: Option<u64>,
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicUsize,
    pub refused: AtomicUsize,
}

pub struct TokenIssuer {
    server: Server,
    pub cert_pem: String,
    pub counters: Arc<Counters>,
    /// Every `Authorization` header value received (to check what was sent).
    pub seen_authorization: Arc<Mutex<Vec<String>>>,
    /// Every token issued (to check none leaks into output).
    pub issued: Arc<Mutex<Vec<String>>>,
}

#[derive(Serialize)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

impl TokenIssuer {
    pub fn start(policy: Policy) -> TokenIssuer {
        let key = rcgen::KeyPair::generate().expect("generate key");
        let params = rcgen::CertificateParams::new(vec!["testkit-token-issuer".to_string()]).expect("cert params");
        let cert = params.self_signed(&key).expect("self-signed cert");
        let cert_pem = cert.pem();
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let rng = ring::rand::SystemRandom::new();
        let encoding =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng).expect("EC key");
        let counters = Arc::new(Counters::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let (c2, s2, i2) = (counters.clone(), seen.clone(), issued.clone());
        let server = Server::start(move |req| {
            c2.requests.fetch_add(1, Ordering::SeqCst);
            if let Some(a) = req.headers.get("authorization") {
                s2.lock().unwrap().push(a.clone());
            }
            match issue(&policy, &encoding, &x5c, &req) {
                Ok(token) => {
                    i2.lock().unwrap().push(token.clone());
                    Response::json(
                        200,
                        format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#),
                    )
                }
                Err(resp) => {
                    c2.refused.fetch_add(1, Ordering::SeqCst);
                    resp
                }
            }
        });
        TokenIssuer {
            server,
            cert_pem,
            counters,
            seen_authorization: seen,
            issued,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.server.port)
    }

    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn issue(policy: &Policy, key: &EcdsaKeyPair, x5c: &str, req: &Request) -> Result<String, Response> {
    let mut params = req.query();
    if req.method == "POST" {
        params.extend(url_decode_pairs(&String::from_utf8_lossy(&req.body)));
    }
    let get = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
    // who is asking
    let user = if let Some(refresh) = get("refresh_token") {
        let dynamic = policy.check_refresh.as_ref().and_then(|c| c(&refresh));
        match policy.refresh_tokens.get(&refresh).cloned().or(dynamic) {
            Some(u) => Some(u),
            None => return Err(Response::json(401, r#"{"details":"bad refresh token"}"#.into())),
        }
    } else if let Some(auth) = req.headers.get("authorization") {
        let decoded = auth
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((u, p)) if policy.users.get(u).is_some_and(|pw| pw == p) => Some(u.to_string()),
            Some((u, p)) if policy.check.as_ref().is_some_and(|c| c(u, p)) => Some(u.to_string()),
            _ => return Err(Response::json(401, r#"{"details":"bad credentials"}"#.into())),
        }
    } else {
        None
    };
    // scopes: `scope` may repeat, and (POST) may be space-separated
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let mut access = Vec::new();
    for scope in scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let granted: Vec<String> = actions
            .split(',')
            .filter(|a| match &user {
                Some(u) if policy.read_only.contains(u) => *a == "pull",
                Some(_) => true,
                None => policy.anonymous_pull && *a == "pull",
            })
            .map(str::to_string)
            .collect();
        if !granted.is_empty() {
            access.push(Access {
                kind: kind.to_string(),
                name: name.to_string(),
                actions: granted,
            });
        }
    }
    let t = now();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: user.unwrap_or_default(),
        aud: get("service").unwrap_or_else(|| SERVICE.into()),
        exp: t + policy.jwt_lifetime.unwrap_or(300),
        nbf: t - 10,
        iat: t,
        jti: format!("{:x}", rand::random::<u64>()),
        access,
    };
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    Ok(es256_jwt(&header, &claims, key))
}

/// A JWT signed with ES256 (the signature is r || s, as JWS asks).
fn es256_jwt(header: &serde_json::Value, claims: &impl Serialize, key: &EcdsaKeyPair) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed = format!(
        "{}.{}",
        b64.encode(serde_json::to_vec(header).expect("header")),
        b64.encode(serde_json::to_vec(claims).expect("claims"))
    );
    let signature = key
        .sign(&ring::rand::SystemRandom::new(), signed.as_bytes())
        .expect("sign token");
    format!("{signed}.{}", b64.encode(signature.as_ref()))
}
