//! README's first command works as documented, offline, and the committed
//! example image is exactly what its generator makes.

use std::path::Path;

use crate::support::*;
use testkit::layout::validate_layout;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_quickstart_mirrors_the_example_layout() {
    let ws = Workspace::new();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    copy_dir(&examples.join("quickstart"), &ws.path("quickstart"));
    std::fs::copy(examples.join("quickstart.yaml"), ws.path("quickstart.yaml")).unwrap();
    let run = ws.run(&ws.path("quickstart.yaml"), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("copied (2): 1.0.0, 1.1.0"), "{run:?}");
    let out = ws.path("out/quickstart");
    let tags = validate_layout(&out).unwrap();
    assert_eq!(
        tags,
        testkit::layout::layout_tags(&ws.path("quickstart/source"))
            .into_iter()
            .filter(|(t, _)| t.starts_with('1'))
            .collect()
    );
    let again = ws.run(&ws.path("quickstart.yaml"), &[]);
    assert!(again.stdout.contains("already present (2)"), "{again:?}");
}

#[test]
fn the_committed_example_is_what_its_generator_makes() {
    let ws = Workspace::new();
    testkit::quickstart::write(&ws.path("made"));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/source");
    assert!(
        files(&ws.path("made")) == files(&committed),
        "examples/quickstart/source differs from make-quickstart's output"
    );
}
