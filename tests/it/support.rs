//! Helpers shared by the integration tests: run the built binary in a clean
//! environment and read what it said.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use testkit::{Auth, Format, ImageGen, Registry, TestClient};

/// A scratch folder with a config file and an empty Docker config dir.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("docker")).expect("docker dir");
        Workspace { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_config(&self, yaml: &str) -> PathBuf {
        let p = self.path("replicant.yaml");
        std::fs::write(&p, yaml).expect("write config");
        p
    }

    /// A config mirroring `<src>/team/app` to `<dst>/mirror/app`; `mode` is
    /// the top-level mode line ("" for the default).
    pub fn app_config(&self, src: &str, dst: &str, mode: &str) -> PathBuf {
        self.write_config(&format!(
            "{mode}images:\n  app:\n    source: {src}/team/app\n    destination: {dst}/mirror/app\n"
        ))
    }

    /// A config (file `name`) with one image that works (`app`), one whose
    /// source does not exist (`ghost`) and one that selects nothing
    /// (`typo`, a mistyped compatibility), all from `<src>/team/…`.
    pub fn mixed_config(&self, name: &str, src: &str, dst: &str) -> PathBuf {
        let p = self.path(name);
        let yaml = format!(
            "mode: semver\nimages:\n  app:\n    source: {src}/team/app\n    destination: {dst}/mirror/app\n  \
             ghost:\n    source: {src}/team/ghost\n    destination: {dst}/mirror/ghost\n  \
             typo:\n    source: {src}/team/app\n    destination: {dst}/mirror/typo\n    compatibility: alpnie\n"
        );
        std::fs::write(&p, yaml).expect("write config");
        p
    }

    /// `$DOCKER_CONFIG/config.json` holding a username and password for `host`.
    pub fn docker_login(&self, host: &str, user: &str, password: &str) {
        self.docker_config(&format!(
            r#"{{"auths":{{"{host}":{{"username":"{user}","password":"{password}"}}}}}}"#
        ));
    }

    /// Writes `$DOCKER_CONFIG/config.json`.
    pub fn docker_config(&self, json: &str) {
        std::fs::write(self.path("docker/config.json"), json).expect("write docker config");
    }

    /// A command for the binary with only PATH, HOME and DOCKER_CONFIG set.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_replicant"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.path("docker"))
            .current_dir(self.dir.path());
        cmd
    }

    /// Starts the binary with `-c <config>` plus `args`, output captured.
    pub fn spawn(&self, config: &Path, args: &[&str]) -> std::process::Child {
        let mut cmd = self.command();
        cmd.arg("-c")
            .arg(config)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().expect("start replicant")
    }

    /// Runs with `-c <config>` plus `args`.
    pub fn run(&self, config: &Path, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.arg("-c").arg(config).args(args);
        output(cmd.output().expect("run replicant"))
    }
}

pub fn output(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Asserts that `dst` holds exactly `tags`, each with the source's digest
/// and a complete tree.
pub fn assert_mirror(src: &TestClient, src_repo: &str, dst: &TestClient, dst_repo: &str, tags: &[&str]) {
    let mut want: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    want.sort();
    assert_eq!(dst.tags(dst_repo), want, "destination tags of {dst_repo}");
    for tag in tags {
        let d = dst.digest(dst_repo, tag);
        assert_eq!(d, src.digest(src_repo, tag), "digest of {dst_repo}:{tag}");
        dst.assert_complete(dst_repo, tag);
    }
}

/// Sends SIGTERM to a child, as Kubernetes does to a pod it stops.
pub fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// The report at `path`, after checking it against the published schema.
pub fn valid_report(path: &Path) -> serde_json::Value {
    let check = std::process::Command::new(testkit::tools::tool("CHECK_JSONSCHEMA", "check-jsonschema"))
        .arg("--schemafile")
        .arg(testkit::container::repo_root().join("docs/report.schema.json"))
        .arg(path)
        .output()
        .expect("run check-jsonschema");
    assert!(
        check.status.success(),
        "{}: {}{}",
        path.display(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // nothing else left beside it (the temporary file was renamed)
    let others: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Sorted, to compare lists regardless of order.
pub fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}
