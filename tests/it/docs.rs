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

/// The backquoted words of `text` (`a`, `b` -> [a, b]).
fn quoted_words(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn the_error_categories_of_the_docs_are_those_of_the_code() {
    let categories: Vec<String> = replicant::error::Category::ALL.iter().map(|c| c.to_string()).collect();
    // the README's sentence listing them
    let readme = doc("README.md");
    let start = readme
        .find("be planned, one of\n")
        .expect("the README's list of categories");
    let list = &readme[start..start + readme[start..].find(". ").unwrap()];
    assert_eq!(quoted_words(list), categories, "README.md");
    // troubleshooting's table, a row each
    let table: Vec<String> = doc("docs/troubleshooting.md")
        .lines()
        .filter(|l| l.starts_with("| `"))
        .take_while(|_| true)
        .filter_map(|l| quoted_words(l).into_iter().next())
        .filter(|w| categories.contains(w) || !w.contains(' '))
        .take(categories.len())
        .collect();
    assert_eq!(table, categories, "docs/troubleshooting.md");
    // and the report's schema
    let schema: serde_json::Value = serde_json::from_str(&doc("docs/report.schema.json")).unwrap();
    let listed: Vec<String> = schema["$defs"]["category"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, categories, "docs/report.schema.json");
}

#[test]
fn the_metrics_of_the_docs_are_those_replicant_writes() {
    let documented: Vec<String> = doc("docs/metrics.md")
        .lines()
        .filter(|l| l.starts_with("| `replicant_"))
        .filter_map(|l| quoted_words(l).into_iter().next())
        .collect();
    // every family a run writes, failed or not (a metrics file of each)
    let ws = Workspace::new();
    let cfg = ws.write_config("images:\n  a:\n    source: 127.0.0.1:1/x/y\n    destination: 127.0.0.1:1/z/y\n");
    let file = ws.path("metrics.prom");
    let run = ws.run(&cfg, &["--metrics-file", file.to_str().unwrap(), "--retries", "0"]);
    assert_eq!(run.code, 1, "{run:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut written: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    written.sort();
    // the pull budget is written only where a registry states one
    let mut listed: Vec<String> = documented
        .into_iter()
        .filter(|m| m != "replicant_registry_pull_budget_remaining")
        .collect();
    listed.sort();
    assert_eq!(listed, written, "docs/metrics.md's table against what a run writes");
}

#[test]
fn what_exit_2_promises_is_what_it_does() {
    // a --pushgateway gets an unusable config's failure (tests/it/metrics.rs):
    // so no text may say nothing was contacted
    let ws = Workspace::new();
    let help = output(ws.command().arg("--help").output().unwrap()).stdout;
    for (name, text) in [
        ("--help", help),
        ("README.md", doc("README.md")),
        ("docs/troubleshooting.md", doc("docs/troubleshooting.md")),
    ] {
        let text = text
            .replace("///", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(!text.contains("nothing was contacted"), "{name}");
        assert!(text.contains("no registry was contacted"), "{name}");
    }
}

#[test]
fn every_option_has_the_readme_s_variable_and_default() {
    let ws = Workspace::new();
    let help = output(ws.command().arg("--help").output().unwrap()).stdout;
    let readme = doc("README.md");
    // --help's blocks: an option line, then its text, `[env: …]`, `[default: …]`
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with('-') && line.starts_with("  ") && !line.starts_with("          ") {
            let flag = t
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .unwrap_or("")
                .trim_end_matches(',');
            blocks.push((flag.to_string(), String::new()));
        } else if let Some((_, text)) = blocks.last_mut() {
            text.push_str(t);
            text.push('\n');
        }
    }
    let mut compared = 0;
    for (flag, text) in blocks
        .iter()
        .filter(|(f, _)| !matches!(f.as_str(), "--help" | "--version"))
    {
        // the row whose flag cell names it
        let row = readme
            .lines()
            .filter(|l| l.starts_with('|'))
            .find(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
                cells.len() == 4 && (cells[2].contains(&format!("`{flag}`")) || cells[2].contains(&format!("`{flag} ")))
            })
            .unwrap_or_else(|| panic!("{flag} has no row in the README's options"));
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let between = |text: &str, start: &str| {
            text.find(start).map(|i| {
                text[i + start.len()..]
                    .split(']')
                    .next()
                    .unwrap()
                    .trim_end_matches('=')
                    .to_string()
            })
        };
        if let Some(var) = between(text, "[env: ") {
            assert!(cells[1].contains(&format!("`{var}`")), "{flag}: {var} not in {row}");
        }
        if let Some(default) = between(text, "[default: ") {
            assert!(cells[3].contains(&default), "{flag}: default {default} not in {row}");
            compared += 1;
        }
    }
    assert!(compared >= 8, "{compared} defaults compared: {blocks:?}");
}
