//! What an operator sees while a run goes on: each image's result is
//! logged the moment the image finishes, not at the end of the run.

use std::time::Duration;

use crate::support::*;
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

    // in JSON logs the counts are numbers, the tags in the message
    let run = ws.run(&cfg, &["--log-format", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let done: serde_json::Value = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["image"] == "fast")
        .unwrap_or_else(|| panic!("{run:?}"));
    assert_eq!(done["message"], "done: 1 already present", "{done}");
    assert_eq!(done["present"], 1, "{done}");
    assert_eq!(done["copied"], 0, "{done}");
}

/// A run's stderr lines saying how far `image` got: (bytes done, total).
fn progress_lines(stderr: &str, image: &str) -> Vec<(u64, u64)> {
    stderr
        .lines()
        .filter(|l| l.contains(" INFO copying: ") && l.contains(&format!(" image={image} ")))
        .map(|l| {
            let field = |name: &str| -> u64 {
                let at = l.find(&format!(" {name}=")).unwrap() + name.len() + 2;
                l[at..].split(' ').next().unwrap().parse().unwrap()
            };
            (field("bytes_done"), field("bytes_total"))
        })
        .collect()
}

#[test]
fn a_long_copy_logs_its_progress_unless_asked_not_to() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let sc = TestClient::new(&src.host(), None);
    sc.push_big_layer_image("team/big", "1.0.0", 8 << 20, ws.dir.path());
    // 8 MiB over a 2 MiB/s link: about four seconds
    let link = FaultProxy::start(&src.host(), 1);
    link.set_rate(Some(2 << 20));
    let config = |dst_repo: &str| {
        ws.write_config(&format!(
            "images:\n  big:\n    source: {}/team/big\n    destination: {}/{dst_repo}\n",
            link.host(),
            dst.host()
        ))
    };
    let run = ws.run(&config("mirror/big"), &["--progress-interval", "1"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines = progress_lines(&run.stderr, "big");
    assert!(lines.len() >= 2, "{run:?}");
    // bytes move forward, toward a total of the image's blobs
    assert!(lines.windows(2).all(|w| w[0].0 <= w[1].0), "{lines:?}");
    assert!(lines.last().unwrap().0 > lines[0].0, "{lines:?}");
    assert!(
        lines.iter().all(|(done, total)| *total >= 8 << 20 && done <= total),
        "{lines:?}"
    );
    assert!(run.stderr.contains(" of 8.0 MiB ("), "{run:?}");
    // the image's result follows its progress
    let done_at = run.stderr.find("INFO done: copied 1.0.0").unwrap();
    assert!(run.stderr.rfind("INFO copying: ").unwrap() < done_at, "{run:?}");

    // --progress never: no progress lines, the rest as before
    let run = ws.run(
        &config("never/big"),
        &["--progress-interval", "1", "--progress", "never"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(progress_lines(&run.stderr, "big").is_empty(), "{run:?}");
    assert!(run.stderr.contains("INFO done: copied 1.0.0"), "{run:?}");

    // --quiet: errors and the summary only
    let run = ws.run(&config("quiet/big"), &["--progress-interval", "1", "-q"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "", "{run:?}");
    assert!(run.stdout.contains("  big [ok] "), "{run:?}");
}

/// Runs the binary with `args` on a pseudo-terminal (util-linux `script`),
/// in the workspace's clean environment; returns what the terminal received.
fn on_a_terminal(ws: &Workspace, args: &[&str]) -> Run {
    let mut line = String::from(env!("CARGO_BIN_EXE_replicant"));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let out = std::process::Command::new("script")
        .args(["-q", "-f", "-e", "-c", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", ws.dir.path())
        .env("DOCKER_CONFIG", ws.path("docker"))
        .env("TERM", "xterm")
        .current_dir(ws.dir.path())
        .output()
        .expect("run script (util-linux)");
    output(out)
}

#[test]
fn on_a_terminal_a_live_display_shows_the_bytes_moving() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let sc = TestClient::new(&src.host(), None);
    sc.push_big_layer_image("team/big", "1.0.0", 256 << 20, ws.dir.path());
    // 256 MiB at 64 MiB/s: about four seconds of display
    let link = FaultProxy::start(&src.host(), 1);
    link.set_rate(Some(64 << 20));
    let cfg = ws.write_config(&format!(
        "images:\n  big:\n    source: {}/team/big\n    destination: {}/mirror/big\n",
        link.host(),
        dst.host()
    ));
    let run = on_a_terminal(&ws, &["-c", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let screen = &run.stdout;
    let end = screen.find("replicant summary").expect("summary");
    // the image's bar, redrawn with a growing byte count before the end
    let counts: Vec<String> = screen[..end]
        .match_indices("/256.00 MiB")
        .map(|(at, _)| {
            let before: Vec<&str> = screen[..at].split_whitespace().rev().take(2).collect();
            format!("{} {}", before[1], before[0])
        })
        .collect();
    let mut distinct = counts.clone();
    distinct.dedup();
    assert!(distinct.len() >= 3, "bytes did not move on screen: {counts:?}");

    assert!(screen[..end].contains("big"), "{screen}");
    assert!(screen[..end].contains("tags"), "the overall line: {screen}");
    assert!(screen.contains("  big [ok] "), "{screen}");
    // no periodic log lines on a terminal: the display is the progress
    assert!(!screen.contains("INFO copying:"), "{screen}");
}
