//! Progress while a run goes on: the bytes each image has moved and still
//! has to move, reported every `interval` as one log line per running image
//! (for logs that are not a terminal).
//!
//! The copy engine finds the image it works for through a task-local
//! [`Tally`] that `run/` sets around each tag copy; bodies stream inside
//! the HTTP client's own tasks, so the engine captures the tally before it
//! hands a body over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes of one image: `total` grows as its blob transfers start, `done`
/// as their bodies stream (a restarted transfer gives its partial bytes
/// back).
#[derive(Debug)]
pub struct Tally {
    pub image: String,
    pub done: AtomicU64,
    pub total: AtomicU64,
    /// The image's copies have all ended.
    pub finished: AtomicBool,
}

impl Tally {
    pub fn new(image: &str) -> Arc<Tally> {
        Arc::new(Tally {
            image: image.to_string(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        })
    }
}

tokio::task_local! {
    /// The tally of the image the current task copies for.
    pub static TALLY: Arc<Tally>;
}

/// The current task's tally, if it copies for an image.
pub fn current() -> Option<Arc<Tally>> {
    TALLY.try_with(Arc::clone).ok()
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Display {
    /// No progress output (`--progress never`, `--quiet`).
    #[default]
    Off,
    /// A log line per running image every interval.
    Lines { interval: Duration },
}

/// Logs a line per running image every `interval`, until dropped.
pub async fn report_lines(tallies: &[Arc<Tally>], interval: Duration) {
    let mut last: Vec<u64> = vec![0; tallies.len()];
    let mut at = Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let elapsed = at.elapsed().as_secs_f64().max(0.001);
        at = Instant::now();
        for (t, last) in tallies.iter().zip(last.iter_mut()) {
            let done = t.done.load(Ordering::Relaxed);
            let total = t.total.load(Ordering::Relaxed);
            if t.finished.load(Ordering::Relaxed) || total == 0 {
                continue;
            }
            let rate = (done.saturating_sub(*last) as f64 / elapsed) as u64;
            *last = done;
            tracing::info!(
                image = %t.image,
                bytes_done = done,
                bytes_total = total,
                bytes_per_second = rate,
                "copying: {} of {} ({}/s)",
                human_bytes(done),
                human_bytes(total),
                human_bytes(rate)
            );
        }
    }
}

/// `1.5 MiB`, `300 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
