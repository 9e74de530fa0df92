//! One pass over the configuration, in three steps:
//!
//! 1. **plan** every image, [`PLANS_PER_JOB`](crate::defaults::PLANS_PER_JOB) × `jobs` at once (list tags
//!    on both sides, select: [`plan`]);
//! 2. **schedule** every planned tag copy through the copy engine, `jobs`
//!    at once, stopping as a signal or `--exit-on-error` asks
//!    ([`schedule`]);
//! 3. **collect** what happened into a [`RunReport`], in file order.

mod plan;
mod referrers;
mod schedule;

use crate::lock;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use plan::{Plan, PlanError, plan};
pub use schedule::{Interrupt, SHUTDOWN_GRACE, Slot, listen_for_signals};

use crate::config::ImageConfig;
use crate::copy::{CopyError, Engine, MinRate, Outcome, Shape};
use crate::defaults::PLANS_PER_JOB;
use crate::error::{Category, ErrorKind, StoreError, printable, utc_at};
use crate::progress::{self, TALLY, Tally};
use crate::registry::Client;
use crate::report::{Action, ImageReport, RegistryTrouble, RunReport, TagFailure, TagRecord};
use crate::settings::{RunOptions, Settings};
use crate::store::{Deletion, Deletions, Store, Stores};

/// One image of the run: its config and the stores on each side.
struct ImageRun<'a> {
    config: &'a ImageConfig,
    src: Arc<dyn Store>,
    dst: Arc<dyn Store>,
    shape: Shape,
}

/// What is known of an image while its copies run: logged the moment its
/// last copy ends, so a person watching sees each image as it finishes.
#[derive(Default)]
struct Live {
    remaining: usize,
    report: Option<ImageReport>,
}

impl Live {
    /// Notes one finished copy; logs the image when it was the last (and
    /// says so).
    fn finished(&mut self, job: &TagCopy, result: &Result<Outcome, CopyError>, cost: Cost, dry_run: bool) -> bool {
        let Some(r) = self.report.as_mut() else { return false };
        record(r, job, result, cost);
        self.remaining = self.remaining.saturating_sub(1);
        if self.remaining == 0 {
            r.log(dry_run);
        }
        self.remaining == 0
    }
}

/// One tag to copy, and what became of it.
struct TagCopy {
    image: usize,
    tag: String,
    replacing: bool,
}

/// Runs one pass. One image's failure does not stop the others unless
/// `exit_on_error`, which stops starting new work at the first failure.
pub async fn run(settings: &Settings, client: Arc<Client>, interrupt: &Interrupt) -> RunReport {
    let options = settings.run;
    let stores = Stores::new(client);
    let images: Vec<ImageRun> = settings
        .config
        .images
        .iter()
        .map(|config| ImageRun {
            config,
            src: stores.open(&config.source, false),
            dst: stores.open(&config.destination, true),
            shape: Shape {
                platforms: config.options.platforms.clone(),
                oci: config.options.oci_media_types,
            },
        })
        .collect();
    let engine = Engine::new(options.max_connections, options.retries).with_min_rate(MinRate {
        bytes_per_second: options.min_transfer_rate,
        window: options.timeout,
    });
    let failed = AtomicBool::new(false);
    let may_start = || !(interrupt.requested() || (options.exit_on_error && failed.load(Ordering::SeqCst)));

    // 1. plan: reads only, so a stop signal abandons it at once
    let plans = schedule::run_all(
        &images,
        options.jobs.saturating_mul(PLANS_PER_JOB),
        may_start,
        |image| async {
            let mut plan = plan(image.config, &*image.src, &*image.dst).await;
            if let Ok(p) = &plan
                && !options.dry_run
                && (!p.copy.is_empty() || !p.replace.is_empty())
                && let Err(e) = image.dst.prepare_to_write().await
            {
                plan = Err(e.into());
            }
            if plan.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            plan
        },
        interrupt.deadline(std::time::Duration::ZERO),
    )
    .await;

    let mut copies = Vec::new();
    let live: Vec<std::sync::Mutex<Live>> = images.iter().map(|_| Default::default()).collect();
    let tallies: Vec<Arc<Tally>> = images.iter().map(|i| Tally::new(&i.config.name)).collect();
    let costs: std::sync::Mutex<std::collections::HashMap<(usize, String), Cost>> = Default::default();
    for (i, (image, plan)) in images.iter().zip(&plans).enumerate() {
        if let Slot::Done(Ok(plan)) = plan {
            tracing::debug!(
                image = %image.config.name,
                copy = plan.copy.len(),
                replace = plan.replace.len(),
                present = plan.present.len(),
                "planned: copy [{}], replace [{}]",
                plan.copy.join(", "),
                plan.replace.join(", ")
            );
            if let Some(why) = &plan.nothing_qualifies {
                tracing::warn!(image = %image.config.name, "selects no tags: {why}");
            }
            if options.dry_run && !plan.prune.is_empty() && image.dst.kind() == "repository" {
                tracing::info!(
                    image = %image.config.name,
                    "dry run: no DELETE was sent, so whether the registry lets these tags be deleted \
                     (delete rights; Distribution's storage.delete.enabled) shows only in a real run"
                );
            }
            if plan.new_destination {
                engine.destination_is_new(&*image.dst);
            }
            if !options.dry_run {
                let copy = plan.copy.iter().map(|t| (t, false));
                let replace = plan.replace.iter().map(|t| (t, true));
                copies.extend(copy.chain(replace).map(|(tag, replacing)| TagCopy {
                    image: i,
                    tag: tag.clone(),
                    replacing,
                }));
            }
        }
        // an image with nothing to copy is finished now: say so now
        let mut planned = ImageReport::new(image.config);
        planned_into(&mut planned, plan, options);
        let remaining = copies.iter().filter(|c| c.image == i).count();
        if remaining == 0 {
            if !planned.stopped {
                planned.log(options.dry_run);
            }
        } else {
            let mut l = lock(&live[i]);
            l.remaining = remaining;
            l.report = Some(planned);
        }
    }

    // 2. copy every planned tag; copies in flight get a grace period
    let tags = progress::TagCount {
        done: Default::default(),
        of: copies.len(),
    };
    let copying = schedule::run_all(
        &copies,
        options.jobs,
        may_start,
        |job| async {
            let image = &images[job.image];
            let tally = tallies[job.image].clone();
            let tag_tally = Tally::for_tag(&tally);
            let started = std::time::Instant::now();
            let result = TALLY
                .scope(
                    tag_tally.clone(),
                    engine.copy_tag_shaped(&*image.src, &*image.dst, &job.tag, &image.shape),
                )
                .await;
            let cost = Cost {
                bytes: tag_tally.done.load(Ordering::Relaxed),
                seconds: started.elapsed().as_secs_f64(),
            };
            lock(&costs).insert((job.image, job.tag.clone()), cost);
            if let Err(e) = &result {
                tracing::debug!(image = %image.config.name, tag = %job.tag, "{e}");
                failed.store(true, Ordering::SeqCst);
            }
            if lock(&live[job.image]).finished(job, &result, cost, options.dry_run) {
                tally.finished.store(true, Ordering::Relaxed);
            }
            tags.done.fetch_add(1, Ordering::Relaxed);
            result
        },
        interrupt.deadline(SHUTDOWN_GRACE),
    );
    let results = match options.progress {
        progress::Display::Off => copying.await,
        progress::Display::Lines { interval } => {
            tokio::pin!(copying);
            tokio::select! {
                results = &mut copying => results,
                () = progress::report_lines(&tallies, interval) => copying.await,
            }
        }
        progress::Display::Bars => {
            tokio::pin!(copying);
            tokio::select! {
                results = &mut copying => results,
                () = progress::show_bars(&tallies, &tags) => copying.await,
            }
        }
    };
    if results.iter().any(|r| matches!(r, Slot::Abandoned)) {
        tracing::warn!("abandoned the copies still in flight: nothing of them is committed");
    }
    // referrers: after the copies, since each goes only where what it is
    // about has arrived
    let referred = schedule::run_all(
        &images.iter().zip(&plans).collect::<Vec<_>>(),
        options.jobs,
        may_start,
        |(image, plan)| async {
            let Slot::Done(Ok(plan)) = plan else { return None };
            if !image.config.options.referrers {
                return None;
            }
            let done = referrers::copy_referrers(&engine, image.config, &*image.src, &*image.dst, plan, options.dry_run).await;
            if !done.copied.is_empty() {
                let what = if options.dry_run { "would copy" } else { "copied" };
                tracing::info!(image = %image.config.name, referrers = done.copied.len(), "referrers: {what} {}", done.copied.join(", "));
            }
            Some(done)
        },
        interrupt.deadline(SHUTDOWN_GRACE),
    )
    .await;
    let results = flush_destinations(&images, &copies, results).await;

    // prune: after every copy (a tag is deleted only once nothing of this
    // run can still need it), unless the run is stopping
    let to_prune: Vec<Vec<String>> = plans
        .iter()
        .map(|p| match p {
            Slot::Done(Ok(p)) if !options.dry_run => p.prune.clone(),
            _ => Vec::new(),
        })
        .collect();
    let prunes = schedule::run_all(
        &images.iter().zip(&to_prune).collect::<Vec<_>>(),
        options.jobs,
        may_start,
        |(image, tags)| async move {
            if tags.is_empty() {
                return Vec::new();
            }
            let done = image.dst.delete_tags(tags).await;
            let deleted: Vec<&str> = done
                .iter()
                .filter(|(_, d)| matches!(d, Ok(Deletion::Deleted)))
                .map(|(t, _)| t.as_str())
                .collect();
            tracing::info!(image = %image.config.name, deleted = deleted.len(), "pruned: deleted {}", deleted.join(", "));
            done
        },
        interrupt.deadline(SHUTDOWN_GRACE),
    )
    .await;
    // images that never finished (stopped, interrupted) are logged with the
    // summary, in file order
    let unfinished: Vec<bool> = images
        .iter()
        .zip(&plans)
        .zip(&live)
        .map(|((_, plan), l)| !matches!(plan, Slot::Done(_)) || lock(l).remaining > 0)
        .collect();

    // 3. collect, in file order
    let mut report = collect(&images, plans, &copies, results, &lock(&costs), options);
    for ((r, pruned), tags) in report.images.iter_mut().zip(prunes).zip(to_prune) {
        pruned_into(r, pruned, tags);
    }
    for (r, referred) in report.images.iter_mut().zip(referred) {
        if let Slot::Done(Some(done)) = referred {
            referred_into(r, done);
        }
    }
    report.stopped_early = options.exit_on_error && failed.load(Ordering::SeqCst);
    report.interrupted = interrupt.requested();
    report.totals = engine.stats.totals();
    for (r, unfinished) in report.images.iter().zip(unfinished) {
        if unfinished {
            r.log(options.dry_run);
        }
    }
    report
}

/// Makes every tag written visible (layouts write tags in batches); a tag
/// that could not be is a failed copy, not a copied one.
async fn flush_destinations(
    images: &[ImageRun<'_>],
    copies: &[TagCopy],
    mut results: Vec<Slot<Result<Outcome, CopyError>>>,
) -> Vec<Slot<Result<Outcome, CopyError>>> {
    let mut lost = std::collections::HashMap::new();
    let mut flushed = std::collections::HashSet::new();
    for image in images {
        if flushed.insert(image.dst.name()) {
            for (tag, e) in image.dst.flush().await {
                lost.insert((image.dst.name(), tag), e);
            }
        }
    }
    for (job, slot) in copies.iter().zip(results.iter_mut()) {
        let key = (images[job.image].dst.name(), job.tag.clone());
        if let (Slot::Done(Ok(Outcome::Copied(_) | Outcome::Rewritten { .. })), Some(e)) = (&*slot, lost.get(&key)) {
            // logged as copied when it finished; it is not
            tracing::error!(image = %images[job.image].config.name, tag = %job.tag, "{}", shown(e));
            *slot = Slot::Done(Err(CopyError::Store(e.clone())));
        }
    }
    results
}

/// The failures that concern a whole registry, grouped: which registry,
/// what went wrong, and which images it cost.
#[derive(Default)]
struct RegistryTroubles(BTreeMap<(String, Category), RegistryTrouble>);

impl RegistryTroubles {
    fn note(&mut self, image: &str, error: Option<&StoreError>) {
        let Some(e) = error else { return };
        let (registry, category, cause) = match &e.kind {
            ErrorKind::Unreachable { registry, cause } => (registry, Category::Unreachable, shown(&**cause)),
            ErrorKind::RateLimited { registry, until, .. } => {
                let cause = format!("pull budget exhausted; retry after {}", utc_at(*until));
                (registry, Category::RateLimited, cause)
            }
            _ => return,
        };
        let entry = self
            .0
            .entry((registry.clone(), category))
            .or_insert_with(|| RegistryTrouble {
                registry: registry.clone(),
                category,
                cause,
                images: Vec::new(),
            });
        if !entry.images.iter().any(|i| i == image) {
            entry.images.push(image.to_string());
        }
    }
}

/// An error as the report shows it: whatever a peer put into it (codes,
/// messages, names from a layout) cannot forge a log line or move the
/// terminal's cursor, and no message runs on for pages.
fn shown(e: &dyn std::fmt::Display) -> String {
    printable(&e.to_string(), 2000)
}

/// The image's report as its plan leaves it.
fn planned_into(r: &mut ImageReport, plan: &Slot<Result<Plan, PlanError>>, options: RunOptions) {
    match plan {
        Slot::NotStarted | Slot::Abandoned => r.stopped = true,
        Slot::Done(Err(e)) => {
            r.error = Some(shown(e));
            r.error_category = Some(e.category());
        }
        Slot::Done(Ok(plan)) => {
            r.present = plan.present.clone();
            r.tags
                .extend(plan.present.iter().map(|t| TagRecord::new(t, Action::Present)));
            if let Some(why) = &plan.nothing_qualifies {
                let why = format!("selects no tags: {why}");
                if options.fail_on_empty {
                    r.error = Some(why);
                    r.error_category = Some(Category::Selection);
                } else {
                    r.attention = Some(why);
                }
            }
            if let Some(why) = &plan.prune_refused {
                r.prune_held.push(why.clone());
            }
            for (tag, why) in &plan.prune_left {
                left_in_place(r, tag, why);
            }
            if options.dry_run {
                r.deleted = plan.prune.clone();
                r.tags
                    .extend(plan.prune.iter().map(|t| TagRecord::new(t, Action::WouldDelete)));
                r.copied = plan.copy.clone();
                r.replaced = plan.replace.clone();
                r.tags
                    .extend(plan.copy.iter().map(|t| TagRecord::new(t, Action::WouldCopy)));
                r.tags
                    .extend(plan.replace.iter().map(|t| TagRecord::new(t, Action::WouldReplace)));
            }
        }
    }
}

/// What the referrers step did, into the image's report.
fn referred_into(r: &mut ImageReport, done: referrers::Referred) {
    r.referrers = done.copied;
    for (what, e) in done.failed {
        let rec = TagRecord::new(&what, Action::Failed);
        failed_into(r, rec, e.category(), format!("referrers: {}", shown(&e)));
    }
}

/// A tag gone upstream that prune leaves, and why.
fn left_in_place(r: &mut ImageReport, tag: &str, why: &str) {
    let why = format!("prune left {tag}: {why}");
    let mut rec = TagRecord::new(tag, Action::NotDeleted);
    rec.error = Some(why.clone());
    r.tags.push(rec);
    r.prune_held.push(why);
}

/// What a prune of `tags` did, into the image's report. A prune that did
/// not start (the run stopped first) leaves its tags not started.
fn pruned_into(r: &mut ImageReport, pruned: Slot<Deletions>, tags: Vec<String>) {
    let deletions = match pruned {
        Slot::Done(d) => d,
        Slot::NotStarted | Slot::Abandoned => {
            r.tags
                .extend(tags.iter().map(|t| TagRecord::new(t, Action::NotStarted)));
            r.not_started.extend(tags);
            return;
        }
    };
    for (tag, outcome) in deletions {
        match outcome {
            Ok(Deletion::Deleted) => {
                r.tags.push(TagRecord::new(&tag, Action::Deleted));
                r.deleted.push(tag);
            }
            Ok(Deletion::Left(why)) => left_in_place(r, &tag, &why),
            Err(e) => {
                let rec = TagRecord::new(&tag, Action::Failed);
                failed_into(r, rec, e.category(), format!("prune: {}", shown(&e)));
            }
        }
    }
}

/// What one tag copy cost: blob bytes it moved, and seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    bytes: u64,
    seconds: f64,
}

/// One finished copy, into its image's report.
fn record(r: &mut ImageReport, job: &TagCopy, result: &Result<Outcome, CopyError>, cost: Cost) {
    let tag = job.tag.clone();
    let mut rec = TagRecord::new(&tag, Action::Failed);
    rec.bytes = cost.bytes;
    rec.duration_seconds = cost.seconds;
    match result {
        Ok(Outcome::Copied(source) | Outcome::Rewritten { source, .. }) => {
            let written = match result {
                Ok(Outcome::Rewritten { written, .. }) => written,
                _ => source,
            };
            rec.action = if job.replacing {
                Action::Replaced
            } else {
                Action::Copied
            };
            rec.source_digest = Some(source.to_string());
            rec.destination_digest = Some(written.to_string());
            if job.replacing {
                r.replaced.push(tag);
            } else {
                r.copied.push(tag);
            }
        }
        Ok(Outcome::SkippedPlatform(why)) => {
            rec.action = Action::Skipped;
            // it names the platforms the image has: a peer's words
            rec.error = Some(shown(why));
            r.skipped.push(tag);
        }
        Ok(Outcome::SkippedSchema1) => {
            rec.action = Action::Unsupported;
            r.unsupported.push(tag);
        }
        Err(e) => {
            failed_into(r, rec, e.category(), shown(e));
            return;
        }
    }
    r.tags.push(rec);
}

/// A failure, into the image's report: its record and its failed list.
fn failed_into(r: &mut ImageReport, mut rec: TagRecord, category: Category, error: String) {
    rec.action = Action::Failed;
    rec.error_category = Some(category);
    rec.error = Some(error.clone());
    r.failed.push(TagFailure {
        tag: rec.tag.clone(),
        category,
        error,
    });
    r.tags.push(rec);
}

fn collect(
    images: &[ImageRun],
    plans: Vec<Slot<Result<Plan, PlanError>>>,
    copies: &[TagCopy],
    results: Vec<Slot<Result<Outcome, CopyError>>>,
    costs: &std::collections::HashMap<(usize, String), Cost>,
    options: RunOptions,
) -> RunReport {
    let mut report = RunReport {
        dry_run: options.dry_run,
        ..RunReport::default()
    };
    let mut troubles = RegistryTroubles::default();
    for (image, plan) in images.iter().zip(plans) {
        let mut r = ImageReport::new(image.config);
        planned_into(&mut r, &plan, options);
        if let Slot::Done(Err(e)) = &plan {
            troubles.note(&r.name, e.store_error());
        }
        report.images.push(r);
    }
    for (job, result) in copies.iter().zip(results) {
        let r = &mut report.images[job.image];
        match result {
            Slot::Abandoned => {
                let error = "abandoned when the run was interrupted: the tag is either absent or complete";
                let rec = TagRecord::new(&job.tag, Action::Failed);
                failed_into(r, rec, Category::Interrupted, error.into());
            }
            Slot::NotStarted => {
                r.tags.push(TagRecord::new(&job.tag, Action::NotStarted));
                r.not_started.push(job.tag.clone());
            }
            Slot::Done(result) => {
                if let Err(e) = &result {
                    troubles.note(&r.name, e.store_error());
                }
                let cost = costs.get(&(job.image, job.tag.clone())).copied().unwrap_or_default();
                record(r, job, &result, cost);
            }
        }
    }
    report.registries = troubles.0.into_values().collect();
    report
}
