//! What an operator sees while a run goes on: each image's result is
//! logged the moment the image finishes, not at the end of the run.

mod support;

use std::time::Duration;

use support::*;
use testkit::proxy::FaultProxy;

#[test]
fn each_image_is_logged_when_it_finishes() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    for repo in ["team/slow", "team/fast"] {
        sc.push_image(repo, &generator.multi_arch(Format::Oci, 2000, &[]), "1.0.0");
    }
    // the slow image's source answers every request 400 ms late
    let slow = FaultProxy::start(&src.host(), 1);
    slow.set_delay(Duration::from_millis(400));
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  slow:\n    source: {}/team/slow\n    destination: {2}/mirror/slow\n  \
         fast:\n    source: {1}/team/fast\n    destination: {2}/mirror/fast\n",
        slow.host(),
        src.host(),
        dst.host()
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let line = |image: &str| {
        run.stderr
            .lines()
            .position(|l| l.contains(" INFO done: copied 1.0.0") && l.contains(&format!(" image={image} ")))
            .unwrap_or_else(|| panic!("no done line for {image}: {run:?}"))
    };
    // file order is slow, fast; the log follows the finish
    assert!(line("fast") < line("slow"), "{run:?}");
    // the summary keeps file order
    let summary = run.stdout.find("  slow [ok]").unwrap();
    assert!(summary < run.stdout.find("  fast [ok]").unwrap(), "{run:?}");
    // each image is logged once
    assert_eq!(run.stderr.matches("image=fast").count(), 1, "{run:?}");
}
