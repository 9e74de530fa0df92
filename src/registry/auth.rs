//! The `WWW-Authenticate` challenge flow: parse challenges, fetch Bearer
//! tokens (anonymous, Basic credentials, or an identity token), cache them
//! per scope until they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How a registry wants requests authenticated, learnt from `/v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// The registry needs no authentication.
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` header value. Only the first challenge is
/// used; unknown schemes yield `None` (an error for the caller).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    let params = parse_params(rest)?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let realm = params.get("realm")?.clone();
            if realm.is_empty() {
                return None;
            }
            Some(Challenge::Bearer {
                realm,
                service: params.get("service").cloned(),
            })
        }
        _ => None,
    }
}

/// `key="value", key=value` pairs; `None` when malformed.
fn parse_params(s: &str) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            if c.is_whitespace() || c == ',' || c == '"' {
                return None;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if value.len() > 4096 || out.len() > 32 {
            return None;
        }
        out.insert(key.to_ascii_lowercase(), value);
    }
}

/// A token endpoint's answer.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long to keep it. Tokens without `expires_in` live
    /// 60 s (the Docker token spec's default); we drop them 10 s early.
    pub fn into_token(self) -> Option<Token> {
        let value = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        // A registry's number: kept between 20 s and a day, so no instant
        // arithmetic can overflow and no token outlives a day.
        let life = Duration::from_secs(self.expires_in.unwrap_or(60).clamp(20, 86_400));
        let now = Instant::now();
        let expires = now.checked_add(life - Duration::from_secs(10)).unwrap_or(now);
        Some(Token { value, expires })
    }
}

/// A Bearer token. `Debug` never shows it.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.expires
    }
}

/// The cache key for a set of scopes: sorted, space-joined.
pub fn scope_key(scopes: &[String]) -> String {
    let mut s: Vec<&str> = scopes.iter().map(String::as_str).collect();
    s.sort_unstable();
    s.dedup();
    s.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="basic-realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Basic"), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(r#"bearer realm=http://x/token"#),
            Some(Challenge::Bearer {
                realm: "http://x/token".into(),
                service: None
            })
        );
    }

    #[test]
    fn rejects_malformed_challenges() {
        for bad in [
            r#"Bearer realm="unterminated"#,
            "Bearer service=x",
            "Negotiate abc",
            "Bearer realm=\"\"",
            "Bearer =x",
        ] {
            assert_eq!(parse_challenge(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_expire_and_scopes_are_normalised() {
        let t = TokenResponse {
            token: None,
            access_token: Some("abc".into()),
            expires_in: Some(300),
        }
        .into_token()
        .unwrap();
        assert!(t.is_fresh());
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert!(
            TokenResponse {
                token: Some(String::new()),
                access_token: None,
                expires_in: None
            }
            .into_token()
            .is_none()
        );
        assert_eq!(scope_key(&["b".into(), "a".into(), "b".into()]), "a b");
    }

    proptest! {
        #[test]
        fn token_responses_never_panic(body in "\\PC{0,60}", expires in proptest::option::of(proptest::num::u64::ANY)) {
            if let Ok(parsed) = serde_json::from_str::<TokenResponse>(&body) {
                let _ = parsed.into_token();
            }
            let t = TokenResponse { token: Some("t".into()), access_token: None, expires_in: expires }.into_token();
            prop_assert!(t.is_some_and(|t| t.is_fresh()));
        }

        #[test]
        fn challenge_parser_never_panics(s in "\\PC{0,80}") {
            let _ = parse_challenge(&s);
        }
    }
}
