//! Progress while a run goes on: the bytes each image has moved and still
//! has to move, shown on a terminal as a live display (indicatif: a bar per
//! running image with bytes, rate and ETA, and one for the whole run), and
//! otherwise as one log line per running image every `interval`.
//!
//! The copy engine finds the image it works for through a task-local
//! [`Tally`] that `run/` sets around each tag copy; bodies stream inside
//! the HTTP client's own tasks, so the engine captures the tally before it
//! hands a body over.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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
    /// The image's tally, for the tally of one of its tags.
    parent: Option<Arc<Tally>>,
}

impl Tally {
    pub fn new(image: &str) -> Arc<Tally> {
        Arc::new(Tally {
            image: image.to_string(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            parent: None,
        })
    }

    /// A tally for one tag of `image`: what it counts, its image counts too.
    pub fn for_tag(image: &Arc<Tally>) -> Arc<Tally> {
        Arc::new(Tally {
            image: image.image.clone(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            parent: Some(image.clone()),
        })
    }

    fn each(&self, f: impl Fn(&Tally)) {
        f(self);
        if let Some(p) = &self.parent {
            f(p);
        }
    }

    /// A blob transfer of `n` bytes starts.
    pub fn expect(&self, n: u64) {
        self.each(|t| {
            t.total.fetch_add(n, Ordering::Relaxed);
        });
    }

    /// `n` bytes streamed.
    pub fn moved(&self, n: u64) {
        self.each(|t| {
            t.done.fetch_add(n, Ordering::Relaxed);
        });
    }

    /// A broken attempt's `n` bytes no longer count.
    pub fn give_back(&self, n: u64) {
        self.each(|t| {
            t.done
                .fetch_sub(n.min(t.done.load(Ordering::Relaxed)), Ordering::Relaxed);
        });
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
    /// The live display on stderr, a terminal.
    Bars,
}

/// The live display's bars; log lines are written around them.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)))
}

/// Where log lines go: stderr, each line written whole, above the live
/// display when there is one (instead of through it).
pub struct LogWriter;

/// One log line on its way to stderr.
pub struct LogLine(Vec<u8>);

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let mut line = std::mem::take(&mut self.0);
        // one event, one line: a line break inside it (a peer's words that
        // reached a message without `error::printable`) cannot start a
        // forged line of its own
        let body = line.strip_suffix(b"\n").map_or(line.len(), <[u8]>::len);
        for b in &mut line[..body] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        // and no URL in it shows a password
        if line.contains(&b'@')
            && let Ok(text) = std::str::from_utf8(&line)
            && let std::borrow::Cow::Owned(clean) = crate::error::without_userinfo(text)
        {
            line = clean.into_bytes();
        }
        bars().suspend(|| {
            let _ = std::io::stderr().lock().write_all(&line);
        });
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// Tags copied so far, of how many, for the live display's overall bar.
#[derive(Debug, Default)]
pub struct TagCount {
    pub done: AtomicUsize,
    pub of: usize,
}

/// Draws the live display until dropped: a bar per running image (bytes,
/// rate, ETA) and an overall one (tags done, bytes).
pub async fn show_bars(tallies: &[Arc<Tally>], tags: &TagCount) {
    let style = ProgressStyle::with_template(
        "{prefix:>16.bold} [{bar:24}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let overall = bars().add(ProgressBar::new(tags.of as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>16.bold} {pos}/{len} tags, {msg} moved, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    overall.set_prefix("replicant");
    overall.set_message(human_bytes(0));
    let _cleared = Clear(overall.clone());
    let mut shown: Vec<Option<ProgressBar>> = tallies.iter().map(|_| None).collect();
    loop {
        let mut moved = 0;
        for (t, bar) in tallies.iter().zip(shown.iter_mut()) {
            let (done, total) = (t.done.load(Ordering::Relaxed), t.total.load(Ordering::Relaxed));
            moved += done;
            if t.finished.load(Ordering::Relaxed) {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                    bars().remove(&b);
                }
                continue;
            }
            if total == 0 {
                continue;
            }
            let b = bar.get_or_insert_with(|| {
                let b = bars().insert_before(&overall, ProgressBar::new(total));
                b.set_style(style.clone());
                b.set_prefix(t.image.clone());
                b
            });
            b.set_length(total);
            b.set_position(done.min(total));
        }
        overall.set_position(tags.done.load(Ordering::Relaxed) as u64);
        overall.set_message(human_bytes(moved));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Takes the live display off the screen when the copies end.
struct Clear(ProgressBar);

impl Drop for Clear {
    fn drop(&mut self) {
        self.0.finish_and_clear();
        let _ = bars().clear();
    }
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
