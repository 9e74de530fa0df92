//! Registries that authenticate: htpasswd Basic and token auth (with the
//! testkit issuer), credentials from the Docker config file.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use crate::support::*;
use base64::Engine as _;
use testkit::token::Policy;

const ALICE_PW: &str = "alice-Basic-pw-7Q2";
const BOB_PW: &str = "bob-Token-pw-9Z4";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn basic_registry() -> Registry {
    Registry::start(Auth::Basic(vec![("alice".into(), ALICE_PW.into())]))
}

fn token_registry(policy: Policy) -> Registry {
    Registry::start(Auth::Token(policy))
}

fn bob_policy() -> Policy {
    Policy {
        users: HashMap::from([("bob".to_string(), BOB_PW.to_string())]),
        ..Policy::default()
    }
}

fn seed(reg: &Registry, creds: (&str, &str), repo: &str, tags: &[&str]) -> TestClient {
    let client = TestClient::new(&reg.host(), Some(creds));
    let mut generator = ImageGen::default();
    for tag in tags {
        client.push_image(repo, &generator.multi_arch(Format::Oci, 700, &[]), tag);
    }
    client
}

/// Installs `docker-credential-<name>` answering `user`/`secret`; returns a
/// PATH that finds it.
fn install_helper(ws: &Workspace, name: &str, user: &str, secret: &str) -> String {
    let bin = ws.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join(format!("docker-credential-{name}"));
    let answer = format!(r#"{{"Username":"{user}","Secret":"{secret}"}}"#);
    std::fs::write(&helper, format!("#!/bin/sh\nread server\necho '{answer}'\n")).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

fn config(ws: &Workspace, src: &Registry, dst: &Registry) -> std::path::PathBuf {
    ws.app_config(&src.host(), &dst.host(), "mode: semver\n")
}

#[test]
fn docker_config_credentials_reach_a_basic_source_and_a_token_destination_and_never_the_output() {
    let src = basic_registry();
    let dst = token_registry(bob_policy());
    let sc = seed(&src, ("alice", ALICE_PW), "team/app", &["1.0.0", "1.1.0"]);
    let dc = TestClient::new(&dst.host(), Some(("bob", BOB_PW)));
    let ws = Workspace::new();
    // base64 `auth` for one, username/password for the other
    ws.docker_config(&format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}},"http://{}/v1/":{{"username":"bob","password":"{BOB_PW}"}}}}}}"#,
        src.host(),
        b64(&format!("alice:{ALICE_PW}")),
        dst.host()
    ));
    let run = ws.run(&config(&ws, &src, &dst), &["--debug"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);

    // no password, encoded credential or token in anything printed
    let issuer = dst.issuer.as_ref().unwrap();
    let mut secrets = vec![
        ALICE_PW.to_string(),
        BOB_PW.to_string(),
        b64(&format!("alice:{ALICE_PW}")),
        b64(&format!("bob:{BOB_PW}")),
    ];
    secrets.extend(issuer.issued.lock().unwrap().iter().cloned());
    assert!(secrets.len() > 4, "no token was issued");
    let out = run.all();
    assert!(out.contains("DEBUG"), "debug logging was on");
    for s in &secrets {
        assert!(!out.contains(s.as_str()), "a secret leaked into the output");
    }
    // tokens are cached per scope: a handful of requests, not one per blob
    let token_requests = issuer.requests();
    assert!(token_requests <= 6, "{token_requests} token requests");
    // every token request carried bob's credentials, none went anonymous
    assert!(
        issuer
            .seen_authorization
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.starts_with("Basic "))
    );
}

#[test]
fn a_refusing_registry_names_registry_repository_and_missing_credentials() {
    let src = basic_registry();
    seed(&src, ("alice", ALICE_PW), "team/app", &["1.0.0"]);
    let dst = token_registry(Policy {
        anonymous_pull: true,
        ..bob_policy()
    });
    let ws = Workspace::new();
    // credentials for the source only: the destination refuses anonymous pushes
    ws.docker_config(&format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        src.host(),
        b64(&format!("alice:{ALICE_PW}"))
    ));
    let run = ws.run(&config(&ws, &src, &dst), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("failed 1.0.0"))
        .unwrap_or_else(|| panic!("{run:?}"));
    assert!(line.contains(&format!("{}/mirror/app", dst.host())), "{line}");
    assert!(line.contains("failed 1.0.0 (auth): "), "{line}");
    assert!(
        line.contains("HTTP 401 UNAUTHORIZED (authentication required)"),
        "{line}"
    );
    assert!(
        line.contains(&format!("no credentials for {} were found", dst.host())),
        "{line}"
    );
    assert!(line.contains("config.json"), "{line}");
    assert!(
        TestClient::new(&dst.host(), Some(("bob", BOB_PW)))
            .tags("mirror/app")
            .is_empty()
    );

    // wrong password for a Basic registry: the message says whose credentials failed
    ws.docker_config(&format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        src.host(),
        b64("alice:wrong-password")
    ));
    let run = ws.run(&config(&ws, &src, &dst), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "{}/team/app: list tags: HTTP 401 UNAUTHORIZED (authentication required)",
            src.host()
        )),
        "{run:?}"
    );
    assert!(run.stdout.contains("the credentials from Docker config"), "{run:?}");
    assert!(!run.all().contains("wrong-password"));
}

#[test]
fn credential_helpers_and_identity_tokens() {
    let src = token_registry(Policy {
        refresh_tokens: HashMap::from([("refresh-tok-3Xq".to_string(), "carol".to_string())]),
        users: HashMap::from([("carol".to_string(), "carol-pw".to_string())]),
        ..Policy::default()
    });
    let sc = seed(&src, ("carol", "carol-pw"), "team/app", &["2.0.0"]);
    let dst = token_registry(bob_policy());
    let dc = TestClient::new(&dst.host(), Some(("bob", BOB_PW)));
    let ws = Workspace::new();
    // a credential helper program on PATH, as docker-credential-* are
    let path = install_helper(&ws, "testkit", "bob", BOB_PW);
    ws.docker_config(&format!(
        r#"{{"auths":{{"{}":{{"identitytoken":"refresh-tok-3Xq"}}}},"credHelpers":{{"{}":"testkit"}}}}"#,
        src.host(),
        dst.host()
    ));
    let mut cmd = ws.command();
    cmd.env("PATH", &path);
    cmd.arg("-c").arg(config(&ws, &src, &dst)).arg("-d");
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["2.0.0"]);
    assert!(!run.all().contains("refresh-tok-3Xq") && !run.all().contains(BOB_PW));
}

#[test]
fn an_unreadable_destination_is_an_error_never_taken_for_absent() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    sc.push_image(
        "team/app",
        &ImageGen::default().image(Format::Oci, &[10], &[], ("linux", "amd64")),
        "1.0.0",
    );
    // the destination refuses anonymous reads: listing its tags fails with 401
    let dst = token_registry(bob_policy());
    let ws = Workspace::new();
    let run = ws.run(&config(&ws, &src, &dst), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "error (auth): {}/mirror/app: list tags: HTTP 401 UNAUTHORIZED (authentication required)",
            dst.host()
        )),
        "{run:?}"
    );
    assert!(!run.stdout.contains("copied ("), "{run:?}");
    // no upload was even attempted
    assert!(
        !dst.log().contains("\"POST /v2/mirror/app/blobs/uploads/"),
        "an upload was attempted"
    );
}

#[test]
fn creds_store_applies_to_every_registry() {
    let src = basic_registry();
    let sc = seed(&src, ("alice", ALICE_PW), "team/app", &["3.0.0"]);
    let dst = basic_registry();
    let dc = TestClient::new(&dst.host(), Some(("alice", ALICE_PW)));
    let ws = Workspace::new();
    // the store answers for any server it is asked about
    let path = install_helper(&ws, "store", "alice", ALICE_PW);
    ws.docker_config(r#"{"credsStore":"store"}"#);
    let mut cmd = ws.command();
    cmd.env("PATH", &path);
    cmd.arg("-c").arg(config(&ws, &src, &dst));
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["3.0.0"]);
}

#[test]
fn a_token_that_expires_mid_run_is_renewed_and_the_run_goes_on() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    for tag in ["1.0.0", "1.1.0", "1.2.0"] {
        sc.push_image("team/app", &generator.multi_arch(Format::Oci, 2000, &[]), tag);
    }
    // a slow source, and destination tokens that die after one second while
    // the client is told they last five minutes
    let slow = testkit::proxy::FaultProxy::start(&src.host(), 9);
    slow.set_delay(std::time::Duration::from_millis(100));
    let dst = token_registry(Policy {
        jwt_lifetime: Some(1),
        ..bob_policy()
    });
    let dc = TestClient::new(&dst.host(), Some(("bob", BOB_PW)));
    let ws = Workspace::new();
    ws.docker_login(&dst.host(), "bob", BOB_PW);
    let cfg = ws.app_config(&slow.host(), &dst.host(), "mode: semver\n");
    let run = ws.run(&cfg, &["--jobs", "1"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0", "1.2.0"]);
    // the registry refused an expired token at least once, and a new one was fetched
    let refused = dst.log().lines().filter(|l| l.contains("\" 401 ")).count();
    eprintln!(
        "{refused} requests refused with 401, {} token requests",
        dst.issuer.as_ref().unwrap().requests()
    );
    assert!(
        refused >= 2,
        "no token expired mid-run ({refused} refusals, the first is the ping)"
    );
    assert!(dst.issuer.as_ref().unwrap().requests() >= 2);
}

#[test]
fn a_docker_config_that_is_not_json_is_named_with_line_and_column() {
    let src = basic_registry();
    let dst = Registry::start(Auth::None);
    seed(&src, ("alice", ALICE_PW), "team/app", &["1.0.0"]);
    let ws = Workspace::new();
    ws.docker_config(&format!(
        "{{\n  \"auths\": {{\n    \"{}\": {{ \"auth\": \"{}\" }},\n  }}\n}}\n",
        src.host(),
        b64(&format!("alice:{ALICE_PW}"))
    ));
    let run = ws.run(&config(&ws, &src, &dst), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    let file = ws.path("docker/config.json");
    let why = format!("Docker config {} is not valid JSON (line 4, column 3)", file.display());
    // the warning, once, and the image's error say what is wrong, not "no credentials"
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.iter().filter(|l| l.contains(&why)).count(), 1, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("the credentials for {} could not be read: {why}", src.host())),
        "{run:?}"
    );
    assert!(!run.all().contains("no credentials for"), "{run:?}");
    assert!(!run.all().contains(ALICE_PW), "{run:?}");
}

/// `tls: false` for a registry that is not on this machine: the credentials
/// found for it stay home, and the message says so. (The registry is reached
/// through HTTP_PROXY, so its name need not be a loopback one.)
#[test]
fn credentials_found_for_a_plain_http_remote_registry_are_withheld_and_said_so() {
    let src = basic_registry();
    seed(&src, ("alice", ALICE_PW), "team/app", &["1.0.0"]);
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    ws.docker_login("mirror.example.com", "alice", ALICE_PW);
    let cfg = ws.write_config(&format!(
        "registries:\n  mirror.example.com:\n    tls: false\nimages:\n  app:\n    source: mirror.example.com/team/app\n    destination: {}/mirror/app\n",
        dst.host()
    ));
    let mut cmd = ws.command();
    cmd.arg("-c")
        .arg(&cfg)
        .env("HTTP_PROXY", format!("http://{}", src.host()));
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "credentials for mirror.example.com were found (Docker config {}) but are not sent over plain HTTP (tls: false); access was anonymous",
            ws.path("docker/config.json").display()
        )),
        "{run:?}"
    );
    assert!(!run.all().contains("no credentials"), "{run:?}");
    let warning = "mirror.example.com is spoken to over plain HTTP (tls: false) and is not on this machine: credentials are not sent to it";
    assert_eq!(run.stderr.matches(warning).count(), 1, "warned once: {run:?}");
    // the requests that came for mirror.example.com carried no credentials
    let log = src.log();
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("http.request.host=mirror.example.com"))
        .collect();
    assert!(!ours.is_empty(), "{log}");
    assert!(!ours.iter().any(|l| l.contains("auth.user.name")), "{log}");
}

/// One token fetch per scope, however many copies need it at once: six
/// repositories of three tags, copied many at a time, cost the token issuer
/// one request per scope (a pull token per repository for its tag list, a
/// pull-and-push one for its copies); a no-op pass one per repository.
#[test]
fn one_token_fetch_per_scope_however_many_copies_need_it_at_once() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let dst = token_registry(bob_policy());
    let dc = TestClient::new(&dst.host(), Some(("bob", BOB_PW)));
    let mut generator = ImageGen::seeded(5);
    let tags = ["1.0.0", "1.1.0", "1.2.0"];
    let mut yaml = String::from("mode: all\nimages:\n");
    for r in 0..6 {
        for tag in tags {
            let image = generator.multi_arch(Format::Oci, 700, &[]);
            sc.push_image(&format!("team/app{r}"), &image, tag);
        }
        yaml.push_str(&format!(
            "  app{r}:\n    source: {}/team/app{r}\n    destination: {}/mirror/app{r}\n",
            src.host(),
            dst.host()
        ));
    }
    let ws = Workspace::new();
    ws.docker_config(&format!(
        r#"{{"auths":{{"{}":{{"username":"bob","password":"{BOB_PW}"}}}}}}"#,
        dst.host()
    ));
    let cfg = ws.write_config(&yaml);
    let run = ws.run(&cfg, &["--debug"]);
    assert_eq!(run.code, 0, "{run:?}");
    // counted before checking: the checking client asks for tokens too
    let issuer = dst.issuer.as_ref().unwrap();
    let requests = issuer.requests();
    // a blob mounted from another repository asks for a token covering
    // both: one more per pair of repositories
    let pairs: std::collections::HashSet<(&str, &str)> = run
        .stderr
        .lines()
        .filter(|l| l.contains("blob mounted"))
        .filter_map(|l| {
            let field = |name: &str| l.split_whitespace().find_map(|w| w.strip_prefix(name));
            Some((field("destination=")?, field("from=")?))
        })
        .collect();
    assert_eq!(requests, 12 + pairs.len(), "{}", run.stderr);
    assert_eq!(run.stderr.matches("token fetched").count(), requests);
    for r in 0..6 {
        assert_mirror(&sc, &format!("team/app{r}"), &dc, &format!("mirror/app{r}"), &tags);
    }

    let before = issuer.requests();
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(issuer.requests() - before, 6);
}
