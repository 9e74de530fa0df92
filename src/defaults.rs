//! Every default of a run, in one place: the flags (`main.rs`), the run's
//! options (`settings::RunOptions`), the transport's settings
//! (`registry::TransportSettings`) and the configuration (`prune-max`) all
//! read them from here. Imports nothing.

use std::time::Duration;

/// Tags copied at once (`--jobs`). Tags in flight cost little (a few
/// manifests); what goes to each registry at once is the adaptive
/// per-registry limit's business.
pub const JOBS: usize = 64;
/// Images planned at once, per job: planning an image is a tag list on
/// each side (and, with `replace-tag`, a HEAD per tag), so it is cheap, and
/// on a far registry only many at once keep the round trips full
/// (BENCHMARKS.md: the 1,000-image no-op pass at 50 ms).
pub const PLANS_PER_JOB: usize = 4;
/// The ceiling of each registry's adaptive limit (`--max-connections`;
/// BENCHMARKS.md: the sweep).
pub const MAX_CONNECTIONS: usize = 128;
/// Further attempts of one HTTP exchange (`--retries`).
pub const RETRIES: u32 = 4;
/// Connect timeout and the longest silence, in seconds (`--timeout`).
pub const TIMEOUT_SECONDS: u64 = 60;
/// The longest one small response may take in all, in seconds
/// (`--response-deadline`).
pub const RESPONSE_DEADLINE_SECONDS: u64 = 120;
/// Bytes per second below which a blob transfer is restarted
/// (`--min-transfer-rate`).
pub const MIN_TRANSFER_RATE: u64 = 10 * 1024;
/// The `prune-max` an image gets unless it sets one: a few tags gone at
/// once is routine upstream, more is more likely an accident.
pub const PRUNE_MAX: usize = 5;
/// Seconds between progress lines (`--progress-interval`).
pub const PROGRESS_INTERVAL_SECONDS: u64 = 10;

/// [`TIMEOUT_SECONDS`] as a duration.
pub const TIMEOUT: Duration = Duration::from_secs(TIMEOUT_SECONDS);
/// [`RESPONSE_DEADLINE_SECONDS`] as a duration.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(RESPONSE_DEADLINE_SECONDS);

/// What one blob's stream holds at most in the HTTP client's buffers: the
/// download's read buffer (hyper grows it to about 400 KiB on a fast link)
/// and what the upload has queued (as much again, still in the read
/// buffers it came from).
pub const STREAM_BUFFERS: u64 = 1024 * 1024;
/// What the streams of every blob transfer at once may hold in all: a
/// transfer waits for room (its blob's size, up to [`STREAM_BUFFERS`])
/// before it starts, so 32 large blobs stream at once and more small ones
/// (BENCHMARKS.md: memory at the defaults).
pub const STREAM_MEMORY: u64 = 32 * 1024 * 1024;

/// A blob transfer that broke this much further on than at its last break
/// made progress: the count of breaks in a row starts again (a long link
/// that breaks now and then still delivers a multi-gigabyte blob; one that
/// makes no headway stops after `--retries`).
pub const RESUME_PROGRESS: u64 = 1024 * 1024;

/// Blobs of at least this many bytes are uploaded to a registry in chunks
/// that survive a broken connection (only the rest is sent again); smaller
/// ones in one stream, which is fastest for them. The resumable way costs
/// one round trip more whatever the size (BENCHMARKS.md, where chunked
/// uploads start: 43 ms at 20 ms one way, 1.25 x a 32 MiB blob's upload on
/// an uncapped link, 1.19 x a 64 MiB one), so it starts as late as a
/// break may cost: 64 MiB is the most ever sent again in full.
pub const CHUNKED_FROM: u64 = 64 * 1024 * 1024;
/// The size of the chunks, held in memory to send again after a break, for
/// a registry seen dropping what arrived of a broken request.
pub const CHUNK_HELD: u64 = 16 * 1024 * 1024;
/// `--chunk-size`'s bounds; ECR refuses parts under 5 MiB but the last.
pub const CHUNK_MIN: u64 = 1024 * 1024;
pub const CHUNK_MAX: u64 = 32 * 1024 * 1024;
pub const ECR_CHUNK_MIN: u64 = 5 * 1024 * 1024;
/// What the chunks held for resending may add up to, over every upload of
/// a run: an upload waits for room before each chunk.
pub const CHUNK_MEMORY: u64 = 64 * 1024 * 1024;
