//! ARCHITECTURE.md's table of layers is the truth about who may import
//! whom: every `crate::` path in `src/` is checked against it, the table
//! names every module of `lib.rs`, and its layers depend only downwards
//! (no cycle). `a_forbidden_import_is_reported` shows the check can fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The table: each layer (a top-level module) and the modules it may
/// import. A row may name several layers (`` `version.rs`, `select/` ``);
/// its last column names only modules, in backticks, or none.
fn table(markdown: &str) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut rows = BTreeMap::new();
    let mut lines = markdown.lines().skip_while(|l| !l.starts_with("| layer |"));
    lines
        .next()
        .ok_or("ARCHITECTURE.md has no table whose header is `| layer |`")?;
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [layers, _, allowed] = cells[..] else {
            return Err(format!("a row of the layer table has not three cells: {line}"));
        };
        let allowed: BTreeSet<String> = backticked(allowed).collect();
        for layer in backticked(layers) {
            rows.insert(layer, allowed.clone());
        }
    }
    Ok(rows)
}

/// The module names in backticks in a cell (`select/`, `error.rs`: the
/// module's name).
fn backticked(cell: &str) -> impl Iterator<Item = String> + '_ {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|n| n.trim_end_matches('/').trim_end_matches(".rs").to_string())
}

/// The top-level modules a source file names through `crate::`, outside
/// comments.
fn imports(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = without_comment(line);
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// A line without its `//` comment (a `//` inside a string stays).
fn without_comment(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// What breaks the table: for each file (its layer, its path, its text),
/// every module it names that its layer may not import.
fn violations(
    table: &BTreeMap<String, BTreeSet<String>>,
    modules: &BTreeSet<String>,
    files: &[(String, String, String)],
) -> Vec<String> {
    let mut out = Vec::new();
    for (layer, path, source) in files {
        let Some(allowed) = table.get(layer) else {
            out.push(format!("{path}: layer `{layer}` is not in ARCHITECTURE.md's table"));
            continue;
        };
        for name in imports(source) {
            if modules.contains(&name) && name != *layer && !allowed.contains(&name) {
                out.push(format!(
                    "{path}: `{layer}` imports `{name}`, which ARCHITECTURE.md's table does not allow"
                ));
            }
        }
    }
    out
}

/// Every source file of the library (not `lib.rs`, not the binary, not
/// this test), with
/// the layer it belongs to.
fn library_files(src: &Path) -> Vec<(String, String, String)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(src, &mut paths);
    paths
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(src).unwrap().to_string_lossy().into_owned();
            let top = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
            (top != "lib" && top != "main" && !top.ends_with("_tests"))
                .then(|| (top, format!("src/{rel}"), std::fs::read_to_string(&p).unwrap()))
        })
        .collect()
}

/// The modules `lib.rs` declares.
fn modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|l| l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';').to_string())
        .filter(|m| !m.ends_with("_tests"))
        .collect()
}

/// A layer of the table that can reach itself again, if any.
fn cycle(table: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn reaches(table: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str, seen: &mut BTreeSet<String>) -> bool {
        table
            .get(from)
            .into_iter()
            .flatten()
            .any(|next| next == to || (seen.insert(next.clone()) && reaches(table, next, to, seen)))
    }
    table
        .keys()
        .find(|layer| reaches(table, layer, layer, &mut BTreeSet::new()))
        .cloned()
}

#[test]
fn every_import_in_src_is_one_the_architecture_table_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let markdown = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let table = table(&markdown).unwrap();
    let modules = modules(&std::fs::read_to_string(root.join("src/lib.rs")).unwrap());
    for module in &modules {
        assert!(
            table.contains_key(module),
            "`{module}` (lib.rs) is not in ARCHITECTURE.md's table"
        );
    }
    for (layer, allowed) in &table {
        assert!(
            modules.contains(layer),
            "the table names `{layer}`, which lib.rs does not declare"
        );
        for name in allowed {
            assert!(
                modules.contains(name),
                "`{layer}` may import `{name}`, which is no module of ours"
            );
        }
    }
    assert_eq!(cycle(&table), None, "the table's layers must depend only downwards");
    let files = library_files(&root.join("src"));
    assert!(files.len() > 50, "the walk found the sources: {}", files.len());
    let wrong = violations(&table, &modules, &files);
    assert!(
        wrong.is_empty(),
        "imports the table does not allow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_forbidden_import_is_reported() {
    let table = table(
        "| layer | what it owns | may import |\n|---|---|---|\n| `model/` | names | nothing of ours |\n| `run/` | a pass | `model` |\n",
    )
    .unwrap();
    let modules: BTreeSet<String> = ["model", "run"].map(String::from).into();
    let file = |layer: &str, text: &str| (layer.to_string(), format!("src/{layer}/x.rs"), text.to_string());
    let files = [
        file("model", "use crate::run::Plan;\n"),
        file(
            "model",
            "// crate::run in a comment\nlet s = \"http://x\"; // crate::run\nuse crate::lock;\n",
        ),
        file("run", "fn f() { crate::model::Digest::new(); }\n"),
        file("shard", "use crate::model::Digest;\n"),
    ];
    assert_eq!(
        violations(&table, &modules, &files),
        [
            "src/model/x.rs: `model` imports `run`, which ARCHITECTURE.md's table does not allow",
            "src/shard/x.rs: layer `shard` is not in ARCHITECTURE.md's table",
        ]
    );
    let cyclic = table_with_cycle();
    assert_eq!(cycle(&cyclic).as_deref(), Some("a"));
}

fn table_with_cycle() -> BTreeMap<String, BTreeSet<String>> {
    table("| layer | owns | may import |\n|---|---|---|\n| `a` | x | `b` |\n| `b` | y | `a` |\n").unwrap()
}
