//! Native cloud credentials (docs/cloud-registries.md), each provider's real
//! code path against local stand-ins of the cloud's token services, in front
//! of a real `docker-registry` whose token issuer accepts only the tokens
//! those stand-ins handed out: AWS ECR through moto (`GetAuthorizationToken`
//! via `AWS_ENDPOINT_URL`), ECR Public, Google (key file, gcloud user
//! credentials, external account, metadata server), Azure (service
//! principal, client secret, federated token, `/oauth2/exchange`).

// helpers some feature sets leave unused
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use testkit::cloud::{AzureStandIn, EcrPublicStandIn, GoogleStandIn, Moto};
use testkit::proxy::{Fault, FaultProxy, Target};
use testkit::token::{BasicCheck, Policy};

const SEEDER: (&str, &str) = ("seeder", "seeder-pw-5K8");
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY1";

/// A token-auth registry that also lets `check` in, with a seeding user.
fn cloud_registry(check: Option<BasicCheck>, anonymous_pull: bool) -> Registry {
    Registry::start(Auth::Token(Policy {
        users: HashMap::from([(SEEDER.0.to_string(), SEEDER.1.to_string())]),
        check,
        anonymous_pull,
        ..Policy::default()
    }))
}

/// A plain source registry holding `team/app:1.0.0` and `:1.1.0`.
fn source() -> (Registry, TestClient) {
    let reg = Registry::start(Auth::None);
    let client = TestClient::new(&reg.host(), None);
    let mut generator = ImageGen::default();
    for tag in ["1.0.0", "1.1.0"] {
        client.push_image("team/app", &generator.multi_arch(Format::Oci, 700, &[]), tag);
    }
    (reg, client)
}

/// `<src>/team/app` to `<dst>/mirror/app`, with `registries: <dst>: <settings>`.
fn config(ws: &Workspace, src: &str, dst: &str, settings: &str) -> std::path::PathBuf {
    ws.write_config(&format!(
        "mode: semver\nregistries:\n  {dst}:\n{settings}images:\n  app:\n    source: {src}/team/app\n    destination: {dst}/mirror/app\n"
    ))
}

/// No cloud endpoint outside the test is ever asked: metadata servers
/// point at a closed loopback port.
fn isolated(ws: &Workspace) -> std::process::Command {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = ws.command();
    cmd.env("GCE_METADATA_HOST", closed.to_string())
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", format!("http://{closed}"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

fn run(mut cmd: std::process::Command, config: &std::path::Path) -> Run {
    cmd.arg("-c").arg(config).arg("--debug");
    output(cmd.output().expect("run replicant"))
}

/// A registry that, like ECR, takes the cloud token as Basic credentials
/// on every request, and is slow enough that a run outlives a token.
fn slow_basic_registry(check: BasicCheck) -> (Registry, FaultProxy) {
    let reg = Registry::start(Auth::None);
    let gate = FaultProxy::start(&reg.host(), 1);
    gate.require_basic(check);
    gate.set_delay(Duration::from_millis(250));
    (reg, gate)
}

/// The passwords of the Basic credentials a token registry's issuer saw
/// (the seeding user's left out).
fn sent_passwords(reg: &Registry) -> Vec<String> {
    use base64::Engine as _;
    let seen = reg.issuer.as_ref().unwrap().seen_authorization.lock().unwrap().clone();
    seen.iter()
        .filter_map(|a| a.strip_prefix("Basic "))
        .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .filter_map(|b| String::from_utf8(b).ok())
        .filter_map(|c| c.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
        .filter(|(u, _)| u != SEEDER.0)
        .map(|(_, p)| p)
        .collect()
}

/// Without credentials: image `read` mirrors a source anyone may pull from
/// (only `check` may write) to an open registry, image `write` the same
/// source to a registry only `check` may write to; both cloud registries
/// under `settings`. Runs `cmd`; returns the run, the source's client, the
/// open and closed destinations, and the source (kept alive).
fn read_and_write(
    ws: &Workspace,
    check: BasicCheck,
    settings: &str,
    cmd: std::process::Command,
) -> (Run, TestClient, Registry, Registry, Registry) {
    let src = cloud_registry(Some(check.clone()), true);
    let sc = TestClient::new(&src.host(), Some(SEEDER));
    sc.push_image(
        "team/app",
        &ImageGen::default().multi_arch(Format::Oci, 700, &[]),
        "1.0.0",
    );
    let open_dst = Registry::start(Auth::None);
    let closed_dst = cloud_registry(Some(check), true);
    let cfg = ws.write_config(&format!(
        "mode: semver\nregistries:\n  {s}:\n{settings}  {c}:\n{settings}images:\n  \
         read:\n    source: {s}/team/app\n    destination: {o}/mirror/app\n  \
         write:\n    source: {s}/team/app\n    destination: {c}/mirror/app\n",
        s = src.host(),
        o = open_dst.host(),
        c = closed_dst.host()
    ));
    (run(cmd, &cfg), sc, open_dst, closed_dst, src)
}

fn assert_no_secret(run: &Run, secrets: &[String]) {
    let all = run.all();
    for s in secrets {
        assert!(
            !s.is_empty() && !all.contains(s.as_str()),
            "a secret was printed: {s}\n{run:?}"
        );
    }
}

#[test]
fn an_immutable_tag_refusal_is_reported_as_such() {
    let (src, _) = source();
    let dst = Registry::start(Auth::None);
    let ecr = FaultProxy::start(&dst.host(), 1);
    ecr.set(Some((
        Fault::Answer(
            400,
            r#"{"errors":[{"code":"TAG_INVALID","message":"The image tag '1.0.0' already exists in the 'mirror/app' repository and cannot be overwritten because the repository is immutable."}]}"#,
        ),
        1.0,
        Target::ManifestPuts,
    )));
    let ws = Workspace::new();
    let cfg = ws.app_config(&src.host(), &ecr.host(), "");
    let out = ws.run(&cfg, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    let text = out.all();
    assert!(text.contains("(refused)") && text.contains("are immutable"), "{out:?}");
}

// ---- AWS ECR ---------------------------------------------------------------

#[cfg(feature = "aws")]
mod ecr {
    use super::*;

    /// moto with ECR tokens of `ttl` seconds (scripts/test installs moto).
    fn moto(ttl: f64) -> Moto {
        assert!(
            Moto::available(),
            "python3 with moto[server] is needed: pip install 'moto[server]'"
        );
        Moto::start(ttl)
    }

    /// moto as the ECR API, asked with environment keys.
    fn ecr_keys(cmd: &mut std::process::Command, moto: &Moto) {
        cmd.env("AWS_ENDPOINT_URL", moto.url())
            .env("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001")
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET);
    }

    /// Mirrors to an `auth: ecr` registry with `env` set; returns the access
    /// keys that asked moto for tokens.
    fn ecr_run(env: &[(&str, String)], files: &[(&str, &str)]) -> Vec<String> {
        let moto = moto(3600.0);
        let (src, sc) = source();
        let dst = cloud_registry(Some(moto.check()), false);
        let ws = Workspace::new();
        for (name, text) in files {
            std::fs::write(ws.path(name), text).unwrap();
        }
        let cfg = config(&ws, &src.host(), &dst.host(), "    auth: ecr\n    region: eu-west-1\n");
        let mut cmd = isolated(&ws);
        cmd.env("AWS_ENDPOINT_URL", moto.url());
        for (k, v) in env {
            cmd.env(k, v.replace("{ws}", &ws.dir.path().display().to_string()));
        }
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        let dc = TestClient::new(&dst.host(), Some(SEEDER));
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        let tokens = moto.tokens();
        let mut secrets: Vec<String> = tokens.iter().map(|t| t.0.clone()).collect();
        secrets.push(AWS_SECRET.to_string());
        secrets.push(SESSION_TOKEN.to_string());
        assert_no_secret(&out, &secrets);
        // one token for the registry, for both tags
        assert_eq!(tokens.len(), 1, "{tokens:?}");
        tokens.into_iter().map(|t| t.2).collect()
    }

    #[test]
    fn ecr_token_from_environment_keys() {
        let keys = ecr_run(
            &[
                ("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001".into()),
                ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.into()),
                ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
            ],
            &[],
        );
        assert_eq!(keys, ["AKIAENVIRONMENT00001"]);
    }

    #[test]
    fn ecr_token_from_a_profile_in_the_shared_files() {
        let credentials = format!(
            "[default]\naws_access_key_id = AKIADEFAULTPROFILE01\naws_secret_access_key = {AWS_SECRET}\n\
             [mirror]\naws_access_key_id = AKIAMIRRORPROFILE001\naws_secret_access_key = {AWS_SECRET}\n"
        );
        let keys = ecr_run(
            &[
                ("AWS_PROFILE", "mirror".into()),
                ("AWS_SHARED_CREDENTIALS_FILE", "{ws}/credentials".into()),
                ("AWS_CONFIG_FILE", "{ws}/config".into()),
            ],
            &[
                ("credentials", &credentials),
                ("config", "[profile mirror]\nregion = eu-west-1\n"),
            ],
        );
        assert_eq!(keys, ["AKIAMIRRORPROFILE001"]);
    }

    #[test]
    fn each_ecr_registry_can_have_its_own_aws_profile() {
        // two accounts, two profiles, one run: more than one set of
        // credentials per cloud
        let moto = moto(3600.0);
        let (src, sc) = source();
        let alpha = cloud_registry(Some(moto.check()), false);
        let beta = cloud_registry(Some(moto.check()), false);
        let ws = Workspace::new();
        let credentials = format!(
            "[alpha]\naws_access_key_id = AKIAALPHAPROFILE0001\naws_secret_access_key = {AWS_SECRET}\n\
             [beta]\naws_access_key_id = AKIABETAPROFILE00001\naws_secret_access_key = {AWS_SECRET}\n"
        );
        std::fs::write(ws.path("credentials"), credentials).unwrap();
        let cfg = ws.write_config(&format!(
            "mode: semver\nregistries:\n  {a}:\n    auth: ecr\n    region: eu-west-1\n    aws-profile: alpha\n  \
             {b}:\n    auth: ecr\n    region: eu-west-1\n    aws-profile: beta\nimages:\n  \
             one:\n    source: {s}/team/app\n    destination: {a}/mirror/app\n  \
             two:\n    source: {s}/team/app\n    destination: {b}/mirror/app\n",
            a = alpha.host(),
            b = beta.host(),
            s = src.host()
        ));
        let mut cmd = isolated(&ws);
        cmd.env("AWS_ENDPOINT_URL", moto.url())
            .env("AWS_SHARED_CREDENTIALS_FILE", ws.path("credentials"))
            .env("AWS_CONFIG_FILE", ws.path("no-config"));
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        for reg in [&alpha, &beta] {
            let dc = TestClient::new(&reg.host(), Some(SEEDER));
            assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        }
        let mut keys: Vec<String> = moto.tokens().into_iter().map(|t| t.2).collect();
        keys.sort();
        assert_eq!(keys, ["AKIAALPHAPROFILE0001", "AKIABETAPROFILE00001"]);
        // and each registry got the token of its own profile
        let ledger = moto.tokens();
        let password_of = |key: &str| ledger.iter().find(|t| t.2 == key).unwrap().0.clone();
        let sent = |reg: &Registry| {
            sent_passwords(reg)
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(sent(&alpha), [password_of("AKIAALPHAPROFILE0001")].into());
        assert_eq!(sent(&beta), [password_of("AKIABETAPROFILE00001")].into());
    }

    #[test]
    fn without_aws_credentials_ecr_reads_go_anonymous_and_writes_name_what_was_looked_for() {
        let moto = moto(3600.0);
        let ws = Workspace::new();
        let mut cmd = isolated(&ws);
        cmd.env("AWS_ENDPOINT_URL", moto.url());
        let settings = "    auth: ecr\n    region: eu-west-1\n";
        let (out, sc, open_dst, closed_dst, _src) = read_and_write(&ws, moto.check(), settings, cmd);
        assert_eq!(out.code, 1, "{out:?}");
        let oc = TestClient::new(&open_dst.host(), None);
        assert_mirror(&sc, "team/app", &oc, "mirror/app", &["1.0.0"]);
        let text = out.all();
        assert!(
            text.contains(&format!("no credentials for {} were found", closed_dst.host()))
                && text.contains("AWS_ACCESS_KEY_ID")
                && text.contains("AWS_WEB_IDENTITY_TOKEN_FILE")
                && text.contains("ECR GetAuthorizationToken in eu-west-1"),
            "{out:?}"
        );
        assert!(moto.tokens().is_empty());
    }

    #[test]
    fn ecr_token_from_a_web_identity_token_file() {
        // IRSA: the SDK trades the token file at STS (moto) for a role's keys
        let keys = ecr_run(
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "{ws}/token".into()),
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/mirror".into()),
                ("AWS_ROLE_SESSION_NAME", "replicant-test".into()),
                ("AWS_REGION", "eu-west-1".into()),
            ],
            &[(
                "token",
                "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln",
            )],
        );
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with("ASIA"), "temporary keys from STS, got {keys:?}");
    }

    #[test]
    fn an_ecr_token_that_expires_mid_run_is_renewed() {
        // tokens of 3 s, a run of more than 4 s
        let moto = moto(3.0);
        let (src, sc) = source();
        let (dst, gate) = slow_basic_registry(moto.check());
        let ws = Workspace::new();
        let cfg = config(&ws, &src.host(), &gate.host(), "    auth: ecr\n    region: eu-west-1\n");
        let mut cmd = isolated(&ws);
        ecr_keys(&mut cmd, &moto);
        cmd.args(["--jobs", "1", "--max-connections", "1"]);
        let started = std::time::Instant::now();
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            started.elapsed() > Duration::from_secs(4),
            "the run must outlive a token"
        );
        let dc = TestClient::new(&dst.host(), None);
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        let tokens = moto.tokens();
        assert!(tokens.len() >= 2, "renewed before expiry: {tokens:?}");
        assert_eq!(gate.refused(), 0, "no expired ECR token was ever sent");
    }

    #[test]
    fn create_repositories_creates_missing_ecr_repositories_before_the_first_push() {
        let moto = moto(3600.0);
        let (src, sc) = source();
        let dst = cloud_registry(Some(moto.check()), false);
        let ws = Workspace::new();
        let settings = "    auth: ecr\n    region: eu-west-1\n    create-repositories: true\n";
        let cfg = config(&ws, &src.host(), &dst.host(), settings);
        assert!(moto.repositories().is_empty());
        let mut cmd = isolated(&ws);
        ecr_keys(&mut cmd, &moto);
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(moto.repositories(), ["mirror/app"]);
        assert!(out.all().contains("created the ECR repository"), "{out:?}");
        let dc = TestClient::new(&dst.host(), Some(SEEDER));
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
    }

    /// A pattern on ECR finds its repositories through `DescribeRepositories`
    /// (ECR's `/v2/_catalog` lists nothing), not the catalog.
    #[test]
    fn a_pattern_on_ecr_lists_repositories_through_its_api() {
        let moto = moto(3600.0);
        let src = cloud_registry(Some(moto.check()), false);
        let sc = TestClient::new(&src.host(), Some(SEEDER));
        let mut generator = ImageGen::default();
        for repo in ["team/a", "team/b", "other/x"] {
            moto.create_repository(repo);
            sc.push_image(
                repo,
                &generator.image(Format::Oci, &[300], &[], ("linux", "amd64")),
                "1.0.0",
            );
        }
        let dst = Registry::start(Auth::None);
        let ws = Workspace::new();
        let cfg = ws.write_config(&format!(
            "mode: all\nregistries:\n  {0}:\n    auth: ecr\n    region: eu-west-1\nimages:\n  team:\n    \
             source: {0}/team/*\n    destination: {1}/mirror/*\n",
            src.host(),
            dst.host()
        ));
        let mut cmd = isolated(&ws);
        ecr_keys(&mut cmd, &moto);
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        let dc = TestClient::new(&dst.host(), None);
        assert_mirror(&sc, "team/a", &dc, "mirror/a", &["1.0.0"]);
        assert_mirror(&sc, "team/b", &dc, "mirror/b", &["1.0.0"]);
        assert!(dc.tags("mirror/x").is_empty());
        assert!(!src.log().contains("_catalog"), "the catalog was asked");
    }

    #[test]
    fn a_missing_ecr_repository_is_named_with_its_fix() {
        let moto = moto(3600.0);
        let (src, _) = source();
        let dst = cloud_registry(Some(moto.check()), false);
        // what ECR answers a push into a repository that was never created
        let ecr = FaultProxy::start(&dst.host(), 1);
        ecr.set(Some((
            Fault::Answer(
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"The repository with name 'mirror/app' does not exist in the registry with id '123456789012'"}]}"#,
            ),
            1.0,
            Target::UploadStarts,
        )));
        let ws = Workspace::new();
        let cfg = config(&ws, &src.host(), &ecr.host(), "    auth: ecr\n    region: eu-west-1\n");
        let mut cmd = isolated(&ws);
        ecr_keys(&mut cmd, &moto);
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 1, "{out:?}");
        let text = out.all();
        assert!(
            text.contains(&format!("repository mirror/app does not exist in {}", ecr.host()))
                && text.contains("create-repositories: true"),
            "{out:?}"
        );
    }

    #[test]
    fn ecr_public_token_from_its_own_api() {
        let key = "AKIAPUBLICKEY0000001";
        let api = EcrPublicStandIn::start(key);
        let (src, sc) = source();
        let dst = cloud_registry(Some(api.check()), false);
        let ws = Workspace::new();
        let cfg = config(&ws, &src.host(), &dst.host(), "    auth: ecr-public\n");
        let mut cmd = isolated(&ws);
        cmd.env("AWS_ENDPOINT_URL_ECR_PUBLIC", api.url())
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET);
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        let dc = TestClient::new(&dst.host(), Some(SEEDER));
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        assert_eq!(api.issued.flows(), ["ecr-public"]);
        let mut secrets = api.issued.tokens();
        secrets.push(AWS_SECRET.into());
        assert_no_secret(&out, &secrets);
    }
}

// ---- Google ----------------------------------------------------------------

#[cfg(feature = "google")]
mod google {
    use super::*;

    /// Mirrors to an `auth: google` registry; returns how tokens were got.
    fn google_run(google: &GoogleStandIn, setup: impl FnOnce(&Workspace, &mut std::process::Command)) -> Vec<String> {
        let (src, sc) = source();
        let dst = cloud_registry(Some(google.check()), false);
        let ws = Workspace::new();
        let cfg = config(&ws, &src.host(), &dst.host(), "    auth: google\n");
        let mut cmd = isolated(&ws);
        setup(&ws, &mut cmd);
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        let dc = TestClient::new(&dst.host(), Some(SEEDER));
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        let mut secrets = google.issued.tokens();
        secrets.extend([
            google.refresh_token.clone(),
            google.client_secret.clone(),
            google.subject_token.clone(),
        ]);
        // the key's body, not its armour
        secrets.push(google.key.pkcs8_pem.lines().nth(1).unwrap().to_string());
        assert_no_secret(&out, &secrets);
        // what reached the registry is the token the flow ends with
        let last = google.issued.flows().last().cloned().unwrap();
        let sent = sent_passwords(&dst);
        assert!(!sent.is_empty());
        for password in sent {
            assert_eq!(
                google.issued.how(&password).as_ref(),
                Some(&last),
                "sent to the registry"
            );
        }
        google.issued.flows()
    }

    #[test]
    fn google_service_account_key_file_signs_a_jwt_for_its_token_uri() {
        let google = GoogleStandIn::start(3600);
        let flows = google_run(&google, |ws, cmd| {
            std::fs::write(ws.path("key.json"), google.service_account_key()).unwrap();
            cmd.env("GOOGLE_APPLICATION_CREDENTIALS", ws.path("key.json"));
        });
        assert_eq!(flows, ["jwt-bearer"]);
        let claims = google.assertions.lock().unwrap()[0].clone();
        assert_eq!(claims["iss"], google.email.as_str());
        assert_eq!(claims["aud"], google.token_uri().as_str());
    }

    #[test]
    fn a_google_registry_can_name_its_own_credentials_file() {
        let google = GoogleStandIn::start(3600);
        let (src, sc) = source();
        let dst = cloud_registry(Some(google.check()), false);
        let ws = Workspace::new();
        std::fs::create_dir_all(ws.path("keys")).unwrap();
        std::fs::write(ws.path("keys/mirror.json"), google.service_account_key()).unwrap();
        // relative to the config file; wins over GOOGLE_APPLICATION_CREDENTIALS
        let cfg = config(
            &ws,
            &src.host(),
            &dst.host(),
            "    auth: google\n    google-credentials: keys/mirror.json\n",
        );
        let mut cmd = isolated(&ws);
        cmd.env("GOOGLE_APPLICATION_CREDENTIALS", ws.path("missing.json"));
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        let dc = TestClient::new(&dst.host(), Some(SEEDER));
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        assert_eq!(google.issued.flows(), ["jwt-bearer"]);
    }

    #[test]
    fn google_gcloud_user_credentials_are_refreshed() {
        let google = GoogleStandIn::start(3600);
        let flows = google_run(&google, |ws, _| {
            let dir = ws.path(".config/gcloud");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("application_default_credentials.json"),
                google.authorized_user(),
            )
            .unwrap();
        });
        assert_eq!(flows, ["refresh-token"]);
    }

    #[test]
    fn google_external_account_trades_its_subject_token_at_sts() {
        let google = GoogleStandIn::start(3600);
        let flows = google_run(&google, |ws, cmd| {
            std::fs::write(ws.path("subject"), &google.subject_token).unwrap();
            std::fs::write(ws.path("wif.json"), google.external_account(&ws.path("subject"))).unwrap();
            cmd.env("GOOGLE_APPLICATION_CREDENTIALS", ws.path("wif.json"));
        });
        assert_eq!(flows, ["sts"]);
    }

    #[test]
    fn google_external_account_can_impersonate_a_service_account() {
        let google = GoogleStandIn::start(3600);
        let flows = google_run(&google, |ws, cmd| {
            std::fs::write(ws.path("subject"), &google.subject_token).unwrap();
            let account = google.external_account_impersonating(&ws.path("subject"));
            std::fs::write(ws.path("wif.json"), account).unwrap();
            cmd.env("GOOGLE_APPLICATION_CREDENTIALS", ws.path("wif.json"));
        });
        assert_eq!(flows, ["sts", "impersonated"]);
    }

    #[test]
    fn a_token_lifetime_too_large_for_any_clock_is_clamped_not_a_panic() {
        // expires_in 18446744073709551615 from the metadata server and from
        // a token endpoint: kept at most a day, the run goes on
        let google = GoogleStandIn::start(u64::MAX);
        let flows = google_run(&google, |_, cmd| {
            cmd.env("GCE_METADATA_HOST", google.host());
        });
        assert_eq!(flows, ["metadata"]);
        let google = GoogleStandIn::start(u64::MAX);
        let flows = google_run(&google, |ws, cmd| {
            std::fs::write(ws.path("key.json"), google.service_account_key()).unwrap();
            cmd.env("GOOGLE_APPLICATION_CREDENTIALS", ws.path("key.json"));
        });
        assert_eq!(flows, ["jwt-bearer"]);
    }

    #[test]
    fn google_metadata_server_token_is_renewed_before_it_expires() {
        // tokens of 3 s, a run of more than 4 s: at least one renewal
        let google = GoogleStandIn::start(3);
        let (src, sc) = source();
        let (dst, gate) = slow_basic_registry(google.check());
        let ws = Workspace::new();
        let cfg = config(&ws, &src.host(), &gate.host(), "    auth: google\n");
        let mut cmd = isolated(&ws);
        cmd.env("GCE_METADATA_HOST", google.host())
            .args(["--jobs", "1", "--max-connections", "1"]);
        let started = std::time::Instant::now();
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            started.elapsed() > Duration::from_secs(4),
            "the run must outlive a token"
        );
        let dc = TestClient::new(&dst.host(), None);
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        let flows = google.issued.flows();
        assert!(flows.len() >= 2 && flows.iter().all(|f| f == "metadata"), "{flows:?}");
        assert_eq!(gate.refused(), 0, "no expired token was ever sent");
    }

    #[test]
    fn without_cloud_credentials_reads_go_anonymous_and_writes_fail_saying_what_was_looked_for() {
        let google = GoogleStandIn::start(3600);
        let ws = Workspace::new();
        let (out, sc, open_dst, closed_dst, _src) =
            read_and_write(&ws, google.check(), "    auth: google\n", isolated(&ws));
        assert_eq!(out.code, 1, "{out:?}");
        let oc = TestClient::new(&open_dst.host(), None);
        assert_mirror(&sc, "team/app", &oc, "mirror/app", &["1.0.0"]);
        let text = out.all();
        assert!(
            text.contains(&format!("no credentials for {} were found", closed_dst.host()))
                && text.contains("GOOGLE_APPLICATION_CREDENTIALS")
                && text.contains(".config/gcloud/application_default_credentials.json")
                && text.contains("the metadata server"),
            "{out:?}"
        );
        assert!(google.issued.flows().is_empty());
    }

    #[test]
    fn an_explicit_auth_choice_wins_over_the_docker_config() {
        // the Docker config holds a login for the registry, `auth: google` says
        // to use Google's token instead
        let google = GoogleStandIn::start(3600);
        let (src, sc) = source();
        let dst = cloud_registry(Some(google.check()), false);
        let ws = Workspace::new();
        ws.docker_login(&dst.host(), "someone", "docker-config-pw-1");
        let cfg = config(&ws, &src.host(), &dst.host(), "    auth: google\n");
        let mut cmd = isolated(&ws);
        cmd.env("GCE_METADATA_HOST", google.host());
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        let dc = TestClient::new(&dst.host(), Some(SEEDER));
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        assert_eq!(google.issued.flows(), ["metadata"]);
        let seen = dst.issuer.as_ref().unwrap().seen_authorization.lock().unwrap().clone();
        assert!(!seen.is_empty());
        let docker = base64_basic("someone", "docker-config-pw-1");
        assert!(
            seen.iter().all(|a| *a != docker),
            "the Docker config login was not used"
        );
    }

    fn base64_basic(user: &str, password: &str) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }
}

// ---- Azure -----------------------------------------------------------------

#[cfg(feature = "azure")]
mod azure {
    use super::*;

    #[test]
    fn azure_service_principal_from_azure_sp_id_and_password() {
        let (src, sc) = source();
        let sp_password = "sp-password-Xq9~".to_string();
        let mut policy = Policy {
            users: HashMap::from([
                (SEEDER.0.to_string(), SEEDER.1.to_string()),
                ("6a1b0c2d-sp".to_string(), sp_password.clone()),
            ]),
            ..Policy::default()
        };
        policy.anonymous_pull = false;
        let dst = Registry::start(Auth::Token(policy));
        let ws = Workspace::new();
        let cfg = config(&ws, &src.host(), &dst.host(), "    auth: azure\n");
        let mut cmd = isolated(&ws);
        cmd.env("AZURE_SP_ID", "6a1b0c2d-sp")
            .env("AZURE_SP_PASSWORD", &sp_password);
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        let dc = TestClient::new(&dst.host(), Some(SEEDER));
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        assert_no_secret(&out, &[sp_password]);
    }

    /// Mirrors to an `auth: azure` registry whose host also serves ACR's
    /// `/oauth2/exchange`; returns how the Entra tokens were got.
    fn azure_run(azure: &AzureStandIn, setup: impl FnOnce(&Workspace, &mut std::process::Command)) -> Vec<String> {
        let (src, sc) = source();
        let dst = Registry::start(Auth::Token(Policy {
            users: HashMap::from([(SEEDER.0.to_string(), SEEDER.1.to_string())]),
            check_refresh: Some(azure.check_refresh()),
            ..Policy::default()
        }));
        let acr = FaultProxy::start(&dst.host(), 1);
        acr.route("/oauth2/exchange", azure.exchange());
        let ws = Workspace::new();
        let cfg = config(&ws, &src.host(), &acr.host(), "    auth: azure\n");
        let mut cmd = isolated(&ws);
        cmd.env("AZURE_AUTHORITY_HOST", azure.authority())
            .env("AZURE_TENANT_ID", &azure.tenant)
            .env("AZURE_CLIENT_ID", &azure.client_id);
        setup(&ws, &mut cmd);
        let out = run(cmd, &cfg);
        assert_eq!(out.code, 0, "{out:?}");
        let dc = TestClient::new(&dst.host(), Some(SEEDER));
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0"]);
        assert_eq!(azure.refresh.flows(), ["exchange"], "one exchange for the run");
        let mut secrets = azure.access.tokens();
        secrets.extend(azure.refresh.tokens());
        secrets.extend([azure.client_secret.clone(), azure.federated_token.clone()]);
        assert_no_secret(&out, &secrets);
        azure.access.flows()
    }

    #[test]
    fn azure_client_secret_token_is_exchanged_for_an_acr_refresh_token() {
        let azure = AzureStandIn::start();
        let flows = azure_run(&azure, |_, cmd| {
            cmd.env("AZURE_CLIENT_SECRET", &azure.client_secret);
        });
        assert_eq!(flows, ["client-secret"]);
    }

    #[test]
    fn azure_workload_identity_federated_token_is_exchanged_for_an_acr_refresh_token() {
        let azure = AzureStandIn::start();
        let flows = azure_run(&azure, |ws, cmd| {
            std::fs::write(ws.path("azure-token"), &azure.federated_token).unwrap();
            cmd.env("AZURE_FEDERATED_TOKEN_FILE", ws.path("azure-token"));
        });
        assert_eq!(flows, ["federated"]);
    }

    #[test]
    fn azure_managed_identity_token_is_exchanged_for_an_acr_refresh_token() {
        let azure = AzureStandIn::start();
        let flows = azure_run(&azure, |_, cmd| {
            cmd.env("IDENTITY_ENDPOINT", azure.identity_endpoint())
                .env("IDENTITY_HEADER", &azure.identity_header);
        });
        assert_eq!(flows, ["managed-identity"]);
    }
}

// ---- builds without a cloud ----------------------------------------------

#[cfg(not(feature = "aws"))]
#[test]
fn a_build_without_the_aws_feature_says_which_provider_is_missing() {
    let (src, _) = source();
    let dst = cloud_registry(None, false);
    let ws = Workspace::new();
    let cfg = config(&ws, &src.host(), &dst.host(), "    auth: ecr\n    region: eu-west-1\n");
    let out = run(isolated(&ws), &cfg);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.all()
            .contains(r#"Amazon ECR credentials: this replicant was built without the "aws" cargo feature"#),
        "{out:?}"
    );
}
