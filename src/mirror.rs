//! One pass over the configuration: plan every image (list tags on both
//! sides, select), then copy every planned tag, many at once; collect what
//! happened into a [`RunReport`] in file order.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, stream};

use crate::config::{Config, ImageConfig};
use crate::copy::{CopyError, Engine, Outcome};
use crate::registry::Client;
use crate::report::{ImageReport, RunReport, TagFailure};
use crate::select::select;
use crate::store::{Store, Stores};

/// Options of a run that are not in the config file.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub dry_run: bool,
    pub exit_on_error: bool,
    /// Images planned and tags copied at once.
    pub jobs: usize,
    /// Blob transfers at once per registry.
    pub max_connections: usize,
    /// Further attempts of a failed blob transfer.
    pub retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            exit_on_error: false,
            jobs: 4,
            max_connections: 8,
            retries: 4,
        }
    }
}

/// What to do with one image: decided before anything is written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub copy: Vec<String>,
    pub replace: Vec<String>,
    /// Selected, already in the destination (and identical, with replace-tag).
    pub present: Vec<String>,
    /// The destination does not exist yet (its tag list was "not found").
    pub new_destination: bool,
}

/// How long copies in flight may go on after a stop signal before they are
/// abandoned (a Kubernetes pod gets 30 s between SIGTERM and SIGKILL).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Set by a signal handler: start nothing new, and abandon what is in flight
/// after [`SHUTDOWN_GRACE`]. Abandoning is safe: an upload cut short is never
/// committed, and a tag is written only after everything it points at.
#[derive(Debug, Default)]
pub struct Interrupt(AtomicBool);

impl Interrupt {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Resolves `grace` after an interruption was requested.
    async fn deadline(&self, grace: Duration) {
        while !self.requested() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(grace).await;
    }
}

/// One tag to copy.
struct Job {
    image: usize,
    tag: String,
    replacing: bool,
}

/// Runs one pass. One image's failure does not stop the others unless
/// `exit_on_error`, which stops starting new work at the first failure.
pub async fn run(config: &Config, client: Arc<Client>, options: Options, interrupt: &Interrupt) -> RunReport {
    let jobs = options.jobs.max(1);
    let engine = Engine::new(options.max_connections, options.retries);
    let stores = Stores::new(client.clone());
    let opened: Vec<(Arc<dyn Store>, Arc<dyn Store>)> = config
        .images
        .iter()
        .map(|i| (stores.open(&i.source, false), stores.open(&i.destination, true)))
        .collect();
    let stop = AtomicBool::new(false);
    let mut report = RunReport {
        dry_run: options.dry_run,
        ..RunReport::default()
    };

    // 1. plan every image, a few at once, results in file order
    let plans: Vec<Option<Result<Plan, String>>> = stream::iter(config.images.iter().zip(&opened))
        .map(|(image, (src, dst))| {
            let stop = &stop;
            async move {
                if stop.load(Ordering::SeqCst) || interrupt.requested() {
                    return None;
                }
                let plan = plan(image, &**src, &**dst).await;
                if plan.is_err() && options.exit_on_error {
                    stop.store(true, Ordering::SeqCst);
                }
                Some(plan)
            }
        })
        .buffered(jobs)
        .collect()
        .await;

    let mut queue = Vec::new();
    for (i, (image, plan)) in config.images.iter().zip(plans).enumerate() {
        let mut r = ImageReport::new(image);
        match plan {
            None => r.stopped = true,
            Some(Err(e)) => r.error = Some(e),
            Some(Ok(plan)) => {
                tracing::debug!(image = %image.name, copy = ?plan.copy, replace = ?plan.replace, present = plan.present.len(), "planned");
                r.present = plan.present;
                if plan.new_destination {
                    engine.destination_is_new(&*opened[i].1);
                }
                if options.dry_run {
                    r.copied = plan.copy;
                    r.replaced = plan.replace;
                } else {
                    let copy = plan.copy.into_iter().map(|t| (t, false));
                    let replace = plan.replace.into_iter().map(|t| (t, true));
                    queue.extend(copy.chain(replace).map(|(tag, replacing)| Job {
                        image: i,
                        tag,
                        replacing,
                    }));
                }
            }
        }
        report.images.push(r);
    }

    // 2. copy every planned tag, `jobs` at once
    let mut results: Vec<Option<Result<Outcome, CopyError>>> = Vec::new();
    results.resize_with(queue.len(), || None);
    let started: Vec<AtomicBool> = queue.iter().map(|_| AtomicBool::new(false)).collect();
    let mut done = stream::iter(queue.iter().enumerate())
        .map(|(n, job)| {
            let (stop, engine, (src, dst)) = (&stop, &engine, &opened[job.image]);
            let started = &started[n];
            async move {
                if stop.load(Ordering::SeqCst) || interrupt.requested() {
                    return (n, None);
                }
                started.store(true, Ordering::SeqCst);
                let result = engine.copy_tag(&**src, &**dst, &job.tag).await;
                if let Err(e) = &result {
                    tracing::debug!(image = %config.images[job.image].name, tag = %job.tag, "{e}");
                    if options.exit_on_error {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                (n, Some(result))
            }
        })
        .buffer_unordered(jobs);
    let deadline = interrupt.deadline(SHUTDOWN_GRACE);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = done.next() => match next {
                Some((n, result)) => results[n] = result,
                None => break,
            },
            () = &mut deadline => {
                tracing::warn!("abandoning the copies still in flight: nothing of them is committed");
                break;
            }
        }
    }
    drop(done);

    // 3. results into the reports, in plan order
    for ((job, result), started) in queue.iter().zip(results).zip(&started) {
        let r = &mut report.images[job.image];
        match result {
            None if started.load(Ordering::SeqCst) => r.failed.push(TagFailure {
                tag: job.tag.clone(),
                error: "abandoned when the run was interrupted: the tag is either absent or complete".into(),
            }),
            None => r.not_started.push(job.tag.clone()),
            Some(Ok(Outcome::Copied)) if job.replacing => r.replaced.push(job.tag.clone()),
            Some(Ok(Outcome::Copied)) => r.copied.push(job.tag.clone()),
            Some(Ok(Outcome::SkippedSchema1)) => r.unsupported.push(job.tag.clone()),
            Some(Err(e)) => r.failed.push(TagFailure {
                tag: job.tag.clone(),
                error: e.to_string(),
            }),
        }
    }
    report.stopped_early = stop.load(Ordering::SeqCst);
    report.interrupted = interrupt.requested();
    report.rate_limited = client
        .exhausted()
        .into_iter()
        .map(|(registry, until)| {
            let secs = until
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!(
                "{registry}: pull budget exhausted; retry after {}",
                crate::error::utc(secs)
            )
        })
        .collect();
    for r in &report.images {
        r.log();
    }
    report.totals = engine.stats.totals();
    report
}

/// Lists tags on both sides and decides what to copy and replace.
pub async fn plan(image: &ImageConfig, src: &dyn Store, dst: &dyn Store) -> Result<Plan, String> {
    let source_tags = src
        .list_tags()
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: source {} not found", src.name(), src.kind()))?;
    // A destination that does not exist yet is empty: writing creates it.
    let dest_tags = dst.list_tags().await.map_err(|e| e.to_string())?;
    let new_destination = dest_tags.is_none();
    let dest_tags = dest_tags.unwrap_or_default();
    let selected = select(image.mode, &image.filters, &source_tags, &dest_tags);
    tracing::debug!(image = %image.name, selected = ?selected, "selected tags");
    let in_dest: HashSet<&String> = dest_tags.iter().collect();
    let mut plan = Plan {
        new_destination,
        ..Plan::default()
    };
    for tag in selected {
        if !in_dest.contains(&tag) {
            plan.copy.push(tag);
        } else if image.replace_tag && differs(src, dst, &tag).await? {
            plan.replace.push(tag);
        } else {
            plan.present.push(tag);
        }
    }
    Ok(plan)
}

/// Whether the tag's manifest digest differs between source and
/// destination, by HEAD (which Docker Hub does not count as a pull).
async fn differs(src: &dyn Store, dst: &dyn Store, tag: &str) -> Result<bool, String> {
    let mut digests = Vec::with_capacity(2);
    for store in [src, dst] {
        let head = store.head_manifest(tag).await.map_err(|e| e.to_string())?;
        let head = head.ok_or_else(|| format!("{}: tag {tag} vanished while planning", store.name()))?;
        let digest = match head.digest {
            Some(d) => d,
            // Without Docker-Content-Digest, the bytes tell.
            None => store.get_manifest(tag).await.map_err(|e| e.to_string())?.digest,
        };
        digests.push(digest);
    }
    Ok(digests[0] != digests[1])
}
