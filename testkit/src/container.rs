//! replicant's runtime image, assembled with buildah by the repository's own
//! scripts (`scripts/image/assemble`: `image/rootfs.sh` and the Dockerfile's
//! `runtime` stage) and run the way a container runtime runs it: the image's
//! entrypoint and user, bind mounts, and a read-only root file system.
//!
//! Each [`Buildah`] keeps its images in its own temporary storage (vfs
//! driver), so tests do not share state and leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit is inside the repository")
        .to_path_buf()
}

/// The static (musl) replicant binary the image ships: `REPLICANT_STATIC_BINARY`
/// when `scripts/test` built it already, else built here by
/// `scripts/release/build-binary` (the release's own script, profile
/// `image-test`) into
/// `target/static`, a target folder of its own so that it never waits on the
/// `cargo test` that runs this.
pub fn static_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(p) = std::env::var_os("REPLICANT_STATIC_BINARY") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "REPLICANT_STATIC_BINARY={} is not a file", p.display());
            return p;
        }
        let root = repo_root();
        let out = root.join("target/static/replicant");
        let status = Command::new(root.join("scripts/release/build-binary"))
            .args(["--profile", "image-test", "--out"])
            .arg(&out)
            .env("CARGO_TARGET_DIR", root.join("target/static"))
            .status()
            .expect("run scripts/release/build-binary");
        assert!(status.success(), "scripts/release/build-binary failed");
        out
    })
}

/// Says why a test whose tool is missing did not run, where the person
/// running the tests will see it: on stderr and in
/// `target/skipped-tests.txt`, which `scripts/test` prints at the end. In CI
/// (`CI` set; `.ci/run` sets it) a missing tool fails the test instead:
/// `scripts/test` installs every tool the tests need.
pub fn skipped(test: &str, reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run in CI: {reason} (scripts/test installs what the tests need)"
    );
    let line = format!("SKIPPED {test}: {reason}\n");
    eprint!("{line}");
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(repo_root().join("target/skipped-tests.txt"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// buildah with private storage.
pub struct Buildah {
    storage: tempfile::TempDir,
}

/// An image assembled by `scripts/image/assemble`.
pub struct Image {
    pub tag: String,
    /// The OCI image layout the script also wrote (tag: `tag`'s tag).
    pub layout: PathBuf,
    /// The image's configuration (`config` of the OCI image config).
    pub config: serde_json::Value,
    /// Size of the image's file system, uncompressed, in bytes.
    pub size: u64,
}

/// A bind mount into the container.
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// How to run the container, in a pod spec's terms.
#[derive(Default)]
pub struct RunSpec {
    /// `uid[:gid]`; None: the image's user.
    pub user: Option<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    /// Replaces the image's entrypoint when given (a pod's `command`).
    pub command: Option<Vec<String>>,
    /// Appended to the command (a pod's `args`).
    pub args: Vec<String>,
    pub read_only_root: bool,
}

impl Buildah {
    /// Err says why images cannot be built or run here: buildah missing or
    /// unable to create a container, or no mount namespace (not root).
    pub fn new() -> Result<Buildah, String> {
        let storage = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
        let b = Buildah { storage };
        let probe = b.command().args(["from", "--quiet", "scratch"]).output();
        match probe {
            Err(e) => Err(format!(
                "buildah cannot start: {e} (install the Debian package buildah)"
            )),
            Ok(o) if !o.status.success() => Err(format!(
                "buildah cannot create a container: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Ok(o) => {
                let name = String::from_utf8_lossy(&o.stdout).trim().to_string();
                let _ = b.command().args(["rm", &name]).output();
                // running a container here takes a mount namespace (root)
                match Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "true"])
                    .output()
                {
                    Ok(o) if o.status.success() => Ok(b),
                    Ok(o) => Err(format!(
                        "cannot make a mount namespace to run a container in: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    )),
                    Err(e) => Err(format!("cannot run unshare (util-linux): {e}")),
                }
            }
        }
    }

    fn root(&self) -> PathBuf {
        self.storage.path().join("root")
    }

    fn runroot(&self) -> PathBuf {
        self.storage.path().join("run")
    }

    /// `buildah` with this storage.
    pub fn command(&self) -> Command {
        let mut c = Command::new("buildah");
        c.args(["--storage-driver", "vfs", "--root"])
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot());
        c
    }

    /// The environment that points the repository's scripts at this storage.
    pub fn script(&self, path: &str) -> Command {
        let mut c = Command::new(repo_root().join(path));
        c.env("BUILDAH_ROOT", self.root())
            .env("BUILDAH_RUNROOT", self.runroot());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.command().args(args).output().expect("run buildah");
        assert!(
            o.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Assembles the runtime image from `binary` with the release's script.
    pub fn assemble(&self, binary: &Path, tag: &str, version: &str) -> Image {
        let layout = self.storage.path().join("layout");
        let o = self
            .script("scripts/image/assemble")
            .arg("--binary")
            .arg(binary)
            .args(["--tag", tag, "--version", version, "--revision", "test"])
            .arg("--oci")
            .arg(&layout)
            .output()
            .expect("run scripts/image/assemble");
        assert!(
            o.status.success(),
            "scripts/image/assemble: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let inspect: serde_json::Value =
            serde_json::from_str(&self.ok(&["inspect", "--type", "image", tag])).expect("buildah inspect JSON");
        let config = inspect["OCIv1"]["config"].clone();
        let size = self.ok(&["images", "--format", "{{.Size}}", "--noheading", tag]);
        Image {
            tag: tag.to_string(),
            layout,
            config,
            size: parse_size(&size),
        }
    }

    /// Runs a new container of `image` as `spec` says, the way a container
    /// runtime does, and removes it: the image's file system (from `buildah
    /// mount`) made read-only in a private mount namespace when asked, the
    /// bind mounts on top, then the entrypoint (or `command`) with `args`,
    /// chrooted, as the image's user (or `user`), with the image's
    /// environment plus `env` and nothing from the test's own.
    ///
    /// Not `buildah run`: with a read-only root it fails removing the files
    /// it put there for itself (`/run/.containerenv`), and Kubernetes does
    /// not run images through it either.
    pub fn run(&self, image: &Image, spec: &RunSpec) -> Output {
        let name = self.ok(&["from", "--quiet", &image.tag]);
        let rootfs = PathBuf::from(self.ok(&["mount", &name]));
        // mount points exist before the root turns read-only, as a runtime
        // makes them
        for m in &spec.mounts {
            let at = rootfs.join(m.target.trim_start_matches('/'));
            if m.source.is_dir() {
                std::fs::create_dir_all(&at).expect("mount point");
            } else {
                std::fs::create_dir_all(at.parent().unwrap()).expect("mount point folder");
                std::fs::write(&at, b"").expect("mount point file");
            }
        }
        let mut script = String::from("set -e\nroot=$1\nmount --bind \"$root\" \"$root\"\n");
        if spec.read_only_root {
            script.push_str("mount -o remount,bind,ro \"$root\"\n");
        }
        let mut positional: Vec<String> = vec![rootfs.display().to_string()];
        for m in &spec.mounts {
            let (src, dst) = (positional.len() + 1, positional.len() + 2);
            script.push_str(&format!("mount --bind \"${{{src}}}\" \"$root${{{dst}}}\"\n"));
            if m.read_only {
                script.push_str(&format!("mount -o remount,bind,ro \"$root${{{dst}}}\"\n"));
            }
            positional.push(m.source.display().to_string());
            positional.push(m.target.clone());
        }
        let user = spec
            .user
            .clone()
            .or_else(|| image.config["User"].as_str().map(str::to_string))
            .unwrap_or_else(|| "0:0".into());
        let user = if user.contains(':') {
            user
        } else {
            format!("{user}:{user}")
        };
        // chroot is the host's; the process then gets the container's PATH
        script.push_str(&format!(
            "shift {}\nc=$(command -v chroot)\nexport PATH=\"$CONTAINER_PATH\"\nunset CONTAINER_PATH\n\
             exec \"$c\" --userspec={user} --groups= \"$root\" \"$@\"\n",
            positional.len()
        ));
        let mut argv = spec
            .command
            .clone()
            .unwrap_or_else(|| string_list(&image.config["Entrypoint"]));
        argv.extend(spec.args.iter().cloned());

        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script, "sh"])
            .args(&positional)
            .args(&argv)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        // the container's environment: the image's, then the spec's
        let mut env: Vec<(String, String)> = string_list(&image.config["Env"])
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        env.push(("HOME".into(), "/".into()));
        env.extend(spec.env.iter().cloned());
        for (k, v) in env {
            if k == "PATH" {
                cmd.env("CONTAINER_PATH", v);
            } else {
                cmd.env(k, v);
            }
        }
        let out = cmd.stdin(Stdio::null()).output().expect("run the container");
        let _ = self.command().args(["rm", &name]).output();
        out
    }
}

fn string_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// buildah's human size ("17.7 MB", decimal units) in bytes.
fn parse_size(s: &str) -> u64 {
    let (n, unit) = s.trim().split_once(' ').unwrap_or((s.trim(), "B"));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("image size {s:?}"));
    let scale = match unit {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("image size unit {other:?}"),
    };
    (n * scale) as u64
}
