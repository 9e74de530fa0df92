//! External programs some tests drive (helm, kubernetes-validate,
//! check-jsonschema): `scripts/test` installs them into its cache folder
//! and names them in environment variables.

use std::path::PathBuf;

/// The program named by the environment variable `var`, else `program` in
/// `scripts/test`'s default cache folder, else on PATH. Panics saying how to
/// get it.
pub fn tool(var: &str, program: &str) -> PathBuf {
    find_tool(var, program).unwrap_or_else(|| {
        panic!("{program} not found: ./scripts/test installs it (into ~/.cache/replicant/test-tools); or set {var}")
    })
}

/// [`tool`], or `None` where it is not.
pub fn find_tool(var: &str, program: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(installed) = cache.map(|c| c.join("replicant/test-tools/bin").join(program))
        && installed.is_file()
    {
        return Some(installed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// A Go tool of the interop tests (crane, oras, cosign, regctl, the
/// registries), when `scripts/test` could build it. In CI a missing one
/// fails the test; elsewhere the test says it did not run (on stderr and in
/// `target/skipped-tests.txt`) and returns `None`.
pub fn interop_tool(var: &str, program: &str, test: &str) -> Option<PathBuf> {
    let found = find_tool(var, program);
    if found.is_none() {
        let why = format!("{program} not found (scripts/test builds it with `go install`: is Go installed?)");
        crate::container::skipped(test, &why);
    }
    found
}

/// Runs a tool, returning its exit code and everything it printed.
pub fn run_tool(program: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}
