//! External programs some tests drive (helm, kubernetes-validate,
//! check-jsonschema): `scripts/test` installs them into its cache folder
//! and names them in environment variables.

use std::path::PathBuf;

/// The program named by the environment variable `var`, else `program` in
/// `scripts/test`'s default cache folder, else on PATH. Panics saying how to
/// get it.
pub fn tool(var: &str, program: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(installed) = cache.map(|c| c.join("replicant/test-tools/bin").join(program))
        && installed.is_file()
    {
        return installed;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path.unwrap_or_else(|| {
        panic!("{program} not found: ./scripts/test installs it (into ~/.cache/replicant/test-tools); or set {var}")
    })
}
