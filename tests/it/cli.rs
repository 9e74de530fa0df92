//! The command line: flags, environment variables, precedence, validation
//! errors (exit 2, no registry contacted), help and version.

use std::net::TcpListener;

use crate::support::*;

/// A listener that stands in for a registry and tells whether anyone came.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Tripwire {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Tripwire(l)
    }
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.0.local_addr().unwrap().port())
    }
    fn touched(&self) -> bool {
        self.0.accept().is_ok()
    }
}

#[test]
fn every_validation_problem_is_reported_with_exit_2_and_nothing_contacted() {
    let ws = Workspace::new();
    let wire = Tripwire::new();
    let h = wire.host();
    let yaml = format!(
        "mode: fastest\nimages:\n  good:\n    source: {h}/a/b\n    destination: {h}/c/d\n  tagged:\n    source: {h}/a/b:1.0\n    destination: {h}/c/d\n  no-dest:\n    source: {h}/a/b\n  empty:\n  typo:\n    source: {h}/a/b\n    destination: {h}/c/d\n    replace_tag: true\n  negative:\n    source: {h}/a/b\n    destination: {h}/c/d\n    pinned-major: -1\n  not-bool:\n    source: {h}/a/b\n    destination: {h}/c/d\n    replace-tag: sometimes\n  bad-mode:\n    source: {h}/a/b\n    destination: {h}/c/d\n    mode: Highest\n  blank:\n    source: \"\"\n    destination: {h}/c/d\n"
    );
    let cfg = ws.write_config(&yaml);
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 2, "{run:?}");
    let file = cfg.display().to_string();
    for expected in [
        format!("{file}:1:7: key \"mode\": unknown mode \"fastest\""),
        format!("{file}:7:13: image \"tagged\": key \"source\""),
        format!("{file}:9:3: image \"no-dest\": key \"destination\": missing"),
        format!("{file}:11:3: image \"empty\": empty entry"),
        format!("{file}:15:5: image \"typo\": unknown key \"replace_tag\"; did you mean \"replace-tag\"?"),
        format!("{file}:19:19: image \"negative\": key \"pinned-major\": expected a non-negative integer"),
        format!("{file}:23:18: image \"not-bool\": key \"replace-tag\": expected true, false or \"except-versions\""),
        format!("{file}:27:11: image \"bad-mode\": key \"mode\": unknown mode \"Highest\""),
        format!("{file}:29:13: image \"blank\": key \"source\": \"\" is empty"),
    ] {
        assert!(run.stderr.contains(&expected), "missing {expected:?} in {run:?}");
    }
    assert!(run.stderr.contains("has 9 problem(s); nothing was copied"), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(!wire.touched(), "a registry was contacted despite an invalid config");
}

#[test]
fn whole_file_problems_exit_2_naming_the_file() {
    let ws = Workspace::new();
    let missing = ws.path("nope.yaml");
    let run = ws.run(&missing, &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(&format!("{}: file not found", missing.display())),
        "{run:?}"
    );

    for (text, expected) in [
        ("", "the file is empty"),
        ("# nothing here\n", "the file is empty"),
        ("images:\n  a: {source: x\n", "YAML syntax error"),
        ("images:\n", "key \"images\""),
        ("mode: all\n", "key \"images\": missing"),
    ] {
        let cfg = ws.write_config(text);
        let run = ws.run(&cfg, &[]);
        assert_eq!(run.code, 2, "{text:?}: {run:?}");
        assert!(
            run.stderr.contains(&cfg.display().to_string()) && run.stderr.contains(expected),
            "{text:?}: {run:?}"
        );
    }
    let cfg = ws.write_config("images:\n  a:\n    source: x/y\n  b: {source: [1]\n");
    let run = ws.run(&cfg, &[]);
    assert!(
        run.stderr.contains(&format!("{}:4:", cfg.display())),
        "syntax errors carry the line: {run:?}"
    );
}

#[test]
fn config_file_from_env_and_flag_beats_env() {
    let ws = Workspace::new();
    let env_cfg = ws.path("from-env.yaml");
    let flag_cfg = ws.path("from-flag.yaml");
    std::fs::write(&env_cfg, "mode: env-mode\nimages: {}\n").unwrap();
    std::fs::write(&flag_cfg, "mode: flag-mode\nimages: {}\n").unwrap();

    // env only
    let mut cmd = ws.command();
    cmd.env("REPLICANT_CONFIG_FILE", &env_cfg);
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("\"env-mode\""), "{run:?}");

    // flag beats env, long and short
    for flag in ["-c", "--config-file"] {
        let mut cmd = ws.command();
        cmd.env("REPLICANT_CONFIG_FILE", &env_cfg).arg(flag).arg(&flag_cfg);
        let run = output(cmd.output().unwrap());
        assert!(
            run.stderr.contains("\"flag-mode\"") && !run.stderr.contains("env-mode"),
            "{flag}: {run:?}"
        );
    }

    // the default location
    let run = output(ws.command().output().unwrap());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/config/replicant.yaml: file not found"), "{run:?}");
}

#[test]
fn boolean_env_vars_and_flags() {
    let reg = Registry::start(Auth::None);
    let client = TestClient::new(&reg.host(), None);
    let mut generator = ImageGen::default();
    client.push_image(
        "a/b",
        &generator.image(Format::Oci, &[10], &[], ("linux", "amd64")),
        "1.0.0",
    );
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  ghost:\n    source: {h}/no/such\n    destination: {h}/x/ghost\n  real:\n    source: {h}/a/b\n    destination: {h}/x/real\n",
        h = reg.host()
    ));
    let run_with = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = ws.command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("-c").arg(&cfg).args(args);
        output(cmd.output().unwrap())
    };

    // REPLICANT_DEBUG accepts the usual spellings; -d works alone
    for v in ["true", "1", "yes", "on", "TRUE"] {
        let run = run_with(&[("REPLICANT_DEBUG", v), ("REPLICANT_DRY_RUN", "1")], &[]);
        assert!(run.stderr.contains("DEBUG"), "REPLICANT_DEBUG={v}: {run:?}");
    }
    for v in ["false", "0", "no", "off"] {
        let run = run_with(&[("REPLICANT_DEBUG", v), ("REPLICANT_DRY_RUN", "1")], &[]);
        assert!(!run.stderr.contains("DEBUG"), "REPLICANT_DEBUG={v}: {run:?}");
    }
    let run = run_with(&[("REPLICANT_DEBUG", "false")], &["-d", "--dry-run"]);
    assert!(run.stderr.contains("DEBUG"), "the flag beats the env var: {run:?}");

    // anything else is a usage error, not a silent false
    for var in ["REPLICANT_DEBUG", "REPLICANT_EXIT_ON_ERROR", "REPLICANT_DRY_RUN"] {
        let run = run_with(&[(var, "maybe")], &[]);
        assert_eq!(run.code, 2, "{var}=maybe: {run:?}");
        assert!(run.stderr.contains("\"maybe\" is not a boolean"), "{run:?}");
    }
    assert!(client.tags("x/real").is_empty(), "nothing copied by the refused runs");

    // REPLICANT_EXIT_ON_ERROR stops at the missing source; -e the same
    let run = run_with(&[("REPLICANT_EXIT_ON_ERROR", "on")], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(client.tags("x/real").is_empty(), "{run:?}");
    let run = run_with(&[], &["-e"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(client.tags("x/real").is_empty(), "{run:?}");
    // without it the other image is copied, and the exit code still says 1
    let run = run_with(&[("REPLICANT_EXIT_ON_ERROR", "off")], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(client.tags("x/real"), ["1.0.0"]);
}

#[test]
fn help_version_and_bad_flags() {
    let ws = Workspace::new();
    let run = output(ws.command().arg("--help").output().unwrap());
    assert_eq!(run.code, 0);
    for flag in [
        "--config-file",
        "--debug",
        "--exit-on-error",
        "--dry-run",
        "--log-format",
        "REPLICANT_CONFIG_FILE",
    ] {
        assert!(run.stdout.contains(flag), "{flag} missing from --help: {run:?}");
    }
    let run = output(ws.command().arg("--version").output().unwrap());
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("replicant "), "{run:?}");
    let run = output(ws.command().arg("--frobnicate").output().unwrap());
    assert_eq!(run.code, 2, "{run:?}");
    let run = output(ws.command().args(["--log-format", "xml"]).output().unwrap());
    assert_eq!(run.code, 2, "{run:?}");
    for bad in [["--jobs", "0"], ["--jobs", "many"], ["--max-connections", "0"]] {
        let run = output(ws.command().args(bad).output().unwrap());
        assert_eq!(run.code, 2, "{bad:?}: {run:?}");
    }
    let mut cmd = ws.command();
    cmd.env("REPLICANT_JOBS", "0");
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 2, "REPLICANT_JOBS=0: {run:?}");
    assert!(
        run.stderr.contains("REPLICANT_JOBS") || run.stderr.contains("--jobs"),
        "{run:?}"
    );
}

#[test]
fn messages_say_what_to_do() {
    let ws = Workspace::new();
    let wire = Tripwire::new();
    // no config given, the default missing: how to give one
    let run = output(ws.command().output().unwrap());
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("/config/replicant.yaml: file not found"), "{run:?}");
    assert!(
        run.stderr.contains(
            "no config file given: replicant reads /config/replicant.yaml unless -c/--config-file or REPLICANT_CONFIG_FILE names another"
        ),
        "{run:?}"
    );
    // a file that was named is just not found
    let run = ws.run(&ws.path("elsewhere.yaml"), &[]);
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("no config file given"), "{run:?}");

    let cfg = ws.write_config(&format!(
        "images:\n  app:\n    source: http://{0}/team/app\n    destination: {0}/team/app\n  same:\n    source: {0}/team/app\n    destination: {0}/team/app\n",
        wire.host()
    ));
    // a bad value from the environment names the variable, not a flag the
    // user never typed; the same value typed names the flag
    let run = output(
        ws.command()
            .arg("-c")
            .arg(&cfg)
            .env("REPLICANT_JOBS", "0")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("error: invalid value '0' in the environment variable REPLICANT_JOBS (for --jobs)"),
        "{run:?}"
    );
    let run = ws.run(&cfg, &["--jobs", "0"]);
    assert!(
        run.stderr.contains("error: invalid value '0' for '--jobs <JOBS>'"),
        "{run:?}"
    );
    // values of --log-format in any case, as people write them in variables
    let run = output(
        ws.command()
            .arg("-c")
            .arg(&cfg)
            .env("REPLICANT_LOG_FORMAT", "JSON")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{run:?}");
    let first: serde_json::Value = serde_json::from_str(run.stderr.lines().next().unwrap()).expect("JSON logs");
    assert_eq!(first["level"], "ERROR");

    // a URL instead of a repository, and a source mirrored onto itself
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "image \"app\": key \"source\": \"http://{}/team/app\" is a URL: write the repository without http:// \
             (loopback registries use plain HTTP automatically; for another registry see `tls:` under `registries:`)",
            wire.host()
        )),
        "{run:?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "image \"same\": key \"destination\": \"{}/team/app\" is the source itself: an image cannot be mirrored onto itself",
            wire.host()
        )),
        "{run:?}"
    );
    assert!(!wire.touched());
}

#[test]
fn with_json_logs_config_problems_and_usage_errors_are_json_with_fields() {
    let ws = Workspace::new();
    let cfg =
        ws.write_config("images:\n  app:\n    source: http://r.example.com/app\n    destination: q.example.com/app\n");
    let run = ws.run(&cfg, &["--log-format", "json"]);
    assert_eq!(run.code, 2, "{run:?}");
    let first: serde_json::Value = serde_json::from_str(run.stderr.lines().next().unwrap()).unwrap();
    assert_eq!(first["level"], "ERROR");
    assert_eq!(first["file"], cfg.display().to_string());
    assert_eq!(first["line"], 3);
    assert_eq!(first["column"], 13);
    assert_eq!(first["image"], "app");
    assert_eq!(first["key"], "source");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("\"http://r.example.com/app\" is a URL"),
        "{first}"
    );

    // a command-line error, in JSON because JSON was asked for (by variable)
    let run = output(
        ws.command()
            .args(["--jobs", "0"])
            .env("REPLICANT_LOG_FORMAT", "json")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{run:?}");
    let line: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("one JSON line");
    assert_eq!(line["kind"], "usage");
    assert_eq!(
        line["message"],
        "invalid value '0' for '--jobs <JOBS>': 0 is not in 1..=256; see --help"
    );
    // and by flag
    let run = output(
        ws.command()
            .args(["--log-format=json", "--frobnicate"])
            .output()
            .unwrap(),
    );
    let line: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("one JSON line");
    assert_eq!(line["message"], "unexpected argument '--frobnicate' found; see --help");
}

/// One config for staging and production: its values read variables from
/// the environment, with defaults; one unset without a default stops the
/// run before any traffic, naming it, its line and column.
#[test]
fn config_variables_with_and_without_defaults() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    sc.push_image("team/app", &generator.multi_arch(Format::Oci, 1024, &[]), "1.0.0");
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let ws = Workspace::new();
    let cfg = ws.write_config(
        "mode: ${MODE:-semver}\nimages:\n  app:\n    source: ${SOURCE}/team/app\n    \
         destination: ${MIRROR}/${PREFIX:-mirror}/app\n    include: ['^1\\.[0-9]+\\.[0-9]+$']\n",
    );
    let mut cmd = ws.command();
    cmd.env("SOURCE", src.host())
        .env("MIRROR", dst.host())
        .arg("-c")
        .arg(&cfg);
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0"]);

    let watch = Tripwire::new();
    let mut cmd = ws.command();
    cmd.env("SOURCE", watch.host()).arg("-c").arg(&cfg);
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 2, "{run:?}");
    let want = format!("{}:5:18: the environment variable MIRROR is not set", cfg.display());
    assert!(run.stderr.contains(&want), "{run:?}");
    assert!(!watch.touched(), "nothing is contacted");
}
