//! External programs some tests drive (helm, kubernetes-validate,
//! check-jsonschema): `scripts/test` installs them into `target/test-tools`
//! and names them in environment variables.

use std::path::PathBuf;

/// The program named by the environment variable `var`, else `program` in
/// `target/test-tools/bin`, else on PATH. Panics saying how to get it.
pub fn tool(var: &str, program: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let installed = crate::container::repo_root()
        .join("target/test-tools/bin")
        .join(program);
    if installed.is_file() {
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
        panic!("{program} not found: ./scripts/test installs it into target/test-tools/bin; or set {var}")
    })
}
