//! The documentation's examples and references hold: the systemd units
//! verify, every config key the program knows is in the reference, and
//! every option of `--help` is in the README's table.

use crate::support::*;
use testkit::container::{repo_root, skipped};

fn doc(name: &str) -> String {
    std::fs::read_to_string(repo_root().join(name)).unwrap()
}

#[test]
fn the_systemd_service_and_timer_verify() {
    let Ok(found) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        return skipped(
            "the_systemd_service_and_timer_verify",
            "systemd-analyze is not installed",
        );
    };
    assert!(found.status.success());
    let text = doc("docs/operations.md");
    let blocks: Vec<&str> = text
        .split("```ini\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 2, "a service and a timer");
    let dir = tempfile::tempdir().unwrap();
    // the binary's path is the one place the unit depends on this machine
    let service = blocks[0].replace("/usr/local/bin/replicant", env!("CARGO_BIN_EXE_replicant"));
    std::fs::write(dir.path().join("replicant.service"), service).unwrap();
    std::fs::write(dir.path().join("replicant.timer"), blocks[1]).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("replicant.service"))
        .arg(dir.path().join("replicant.timer"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && !said.contains("replicant."), "{said}");
}

#[test]
fn every_config_key_is_in_the_reference() {
    use replicant::config::keys::{KEYS, Section};
    let reference = doc("docs/configuration.md");
    assert!(KEYS.len() >= 20, "the table of keys: {}", KEYS.len());
    for key in KEYS {
        assert!(
            reference.contains(&format!("`{}`", key.name)),
            "{} is not in docs/configuration.md",
            key.name
        );
    }
    // the program names the same keys when it meets an unknown one
    let ws = Workspace::new();
    let run = ws.run(
        &ws.write_config("registries:\n  r.io:\n    zzzzzz: 1\nimages:\n  a:\n    source: a/b\n    destination: c/d\n"),
        &[],
    );
    let listed = run
        .stderr
        .split("known keys are ")
        .nth(1)
        .unwrap_or_else(|| panic!("{run:?}"));
    let names = replicant::config::keys::names(Section::Registry).join(", ");
    assert!(listed.starts_with(&names), "{run:?}");
}

#[test]
fn every_option_is_in_the_readme() {
    let ws = Workspace::new();
    let help = output(ws.command().arg("--help").output().unwrap()).stdout;
    let readme = doc("README.md");
    // the long flag of each option line (`  -c, --config-file <…>`)
    let flags: Vec<&str> = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(','))
        .filter(|w| !matches!(*w, "--help" | "--version"))
        .collect();
    assert!(flags.len() >= 15, "{flags:?}");
    for flag in flags {
        assert!(
            readme.contains(&format!("`{flag}")),
            "{flag} is not in the README's options"
        );
    }
}

#[test]
fn the_config_examples_are_valid_configs() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for name in ["docs/configuration.md", "docs/cookbook.md", "README.md"] {
        let text = doc(name);
        for block in text.split("```yaml\n").skip(1).map(|b| b.split("```").next().unwrap()) {
            // whole files only; the README's key list shows choices (`a|b`)
            // and the TLS example names files that are not here
            if !block.contains("images:") || block.contains('|') || block.contains("-file:") {
                continue;
            }
            let path = dir.path().join("replicant.yaml");
            // the examples' variables have defaults but MIRROR (docs:
            // "Variables", cookbook: staging and production)
            let env = |name: &str| (name == "MIRROR").then(|| "mirror.example".to_string());
            match replicant::config::parse_with(&path, block, &env) {
                Ok(c) => {
                    // the one warning an example may carry on purpose: index
                    // signatures and `platforms` (the cookbook explains it)
                    let unexpected: Vec<_> = c
                        .warnings
                        .iter()
                        .filter(|w| {
                            !(w.key.as_deref() == Some("platforms") && text.contains("not copied; to keep them"))
                        })
                        .collect();
                    assert!(unexpected.is_empty(), "{name}:\n{block}\n{unexpected:?}")
                }
                Err(e) => panic!("{name}:\n{block}\n{e}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} examples checked");
}
