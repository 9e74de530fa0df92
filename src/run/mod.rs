//! One pass over the configuration, phase by phase, each a function of
//! its own:
//!
//! 1. [`Pass::plan`] every image, [`PLANS_PER_JOB`] × `jobs` at once
//!    (list tags on both sides, select: [`plan`]);
//! 2. [`Pass::copies`]: the tag copies the plans ask for; an image with
//!    nothing to copy is logged now;
//! 3. [`Pass::copy`] every planned tag through the copy engine, `jobs` at
//!    once, stopping as a signal or `--exit-on-error` asks ([`schedule`]),
//!    each image logged when its last copy ends;
//! 4. [`Pass::referrers`]: signatures, SBOMs and attestations of what
//!    arrived (`copy::referrers`);
//! 5. [`Pass::prune`]: destination tags gone upstream, after every copy;
//! 6. [`collect`] what happened into a [`RunReport`], in file order.

mod age;
mod collect;
mod expand;
mod plan;
mod schedule;

use crate::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use expand::expand_patterns;
pub use plan::{Plan, PlanError, plan};
pub use schedule::{Interrupt, SHUTDOWN_GRACE, Slot, listen_for_signals};

use crate::config::{BackupTag, ImageConfig};
use crate::copy::referrers::{Referred, Subjects, copy_referrers};
use crate::copy::{CopyError, Engine, MinRate, Outcome, Shape};
use crate::defaults::PLANS_PER_JOB;
use crate::error::{ErrorKind, StoreError};
use crate::progress::{self, TALLY, Tally};
use crate::registry::Client;
use crate::report::{ImageReport, RunReport};
use crate::settings::{RunOptions, Settings};
use crate::store::{Deletion, Deletions, Store, Stores};
use collect::{Cost, collect, planned_into, pruned_into, record, referred_into, shown};

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

/// The shape an image's copies take (`platforms`, `layout-media-types`),
/// for the copies and for the plan's comparisons alike.
fn shape(config: &ImageConfig) -> Shape {
    Shape {
        platforms: config.options.platforms.clone(),
        oci: config.options.oci_media_types,
    }
}

/// One tag to copy.
struct TagCopy {
    image: usize,
    tag: String,
    replacing: bool,
}

type Plans = Vec<Slot<Result<Plan, PlanError>>>;
type Copied = Vec<Slot<Result<Outcome, CopyError>>>;

/// The copies a pass makes, and what is known of each image while they run.
struct Copies {
    jobs: Vec<TagCopy>,
    live: Vec<Mutex<Live>>,
    tallies: Vec<Arc<Tally>>,
    costs: Mutex<HashMap<(usize, String), Cost>>,
}

/// What every phase of one pass shares.
struct Pass<'a> {
    options: RunOptions,
    images: Vec<ImageRun<'a>>,
    engine: Engine,
    interrupt: &'a Interrupt,
    /// Something failed (`--exit-on-error` starts nothing more).
    failed: AtomicBool,
}

/// Runs one pass. One image's failure does not stop the others unless
/// `exit_on_error`, which stops starting new work at the first failure.
pub async fn run(settings: &Settings, client: Arc<Client>, interrupt: &Interrupt) -> RunReport {
    let pass = Pass::new(settings, client, interrupt);
    let plans = pass.plan().await;
    let copies = pass.copies(&plans);
    let copied = pass.copy(&copies).await;
    // referrers: after the copies, since each goes only where what it is
    // about has arrived
    let referred = pass.referrers(&plans).await;
    let copied = flush_destinations(&pass.images, &copies.jobs, copied).await;
    let (to_prune, pruned) = pass.prune(&plans).await;
    let mut report = pass.report(plans, &copies, copied, referred, to_prune, pruned);
    pass.ages_of_missing(&mut report).await;
    report
}

impl<'a> Pass<'a> {
    fn new(settings: &'a Settings, client: Arc<Client>, interrupt: &'a Interrupt) -> Pass<'a> {
        let options = settings.run;
        let stores = Stores::new(client, options.max_connections);
        let configs = &settings.config.images;
        let sources = stores.open_sources(
            &configs.iter().map(|c| &c.source).collect::<Vec<_>>(),
            &configs.iter().map(|c| &c.destination).collect::<Vec<_>>(),
        );
        let images: Vec<ImageRun> = configs
            .iter()
            .zip(sources)
            .map(|(config, src)| ImageRun {
                config,
                src,
                dst: stores.open(&config.destination, true),
                shape: shape(config),
            })
            .collect();
        let engine = Engine::new(options.retries).with_min_rate(MinRate {
            bytes_per_second: options.min_transfer_rate,
            window: options.timeout,
        });
        // a source several images read: once for all their destinations
        let mut readers: HashMap<String, Vec<Arc<dyn Store>>> = HashMap::new();
        for image in &images {
            readers.entry(image.src.name()).or_default().push(image.dst.clone());
        }
        for image in &images {
            if let Some(destinations) = readers.remove(&image.src.name())
                && destinations.len() > 1
            {
                engine.fan_out(&*image.src, &destinations);
            }
        }
        Pass {
            options,
            images,
            engine,
            interrupt,
            failed: AtomicBool::new(false),
        }
    }

    /// Whether new work may start: no stop signal, and no failure when
    /// `--exit-on-error` asks to stop at the first.
    fn may_start(&self) -> bool {
        !(self.interrupt.requested() || (self.options.exit_on_error && self.failed.load(Ordering::SeqCst)))
    }

    /// 1. Plans every image: reads only, so a stop signal abandons it at
    ///    once. A destination about to be written is made ready for it.
    async fn plan(&self) -> Plans {
        let options = self.options;
        schedule::run_all(
            &self.images,
            options.jobs.saturating_mul(PLANS_PER_JOB),
            || self.may_start(),
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
                    self.failed.store(true, Ordering::SeqCst);
                }
                plan
            },
            self.interrupt.deadline(std::time::Duration::ZERO),
        )
        .await
    }

    /// 2. The tag copies the plans ask for (none in a dry run); what each
    ///    plan says is logged, and an image with nothing to copy is
    ///    finished now, so it is said now.
    fn copies(&self, plans: &Plans) -> Copies {
        let options = self.options;
        let mut jobs = Vec::new();
        let live: Vec<Mutex<Live>> = self.images.iter().map(|_| Default::default()).collect();
        for (i, (image, plan)) in self.images.iter().zip(plans).enumerate() {
            if let Slot::Done(Ok(plan)) = plan {
                self.log_plan(image, plan);
                if !options.dry_run {
                    let copy = plan.copy.iter().map(|t| (t, false));
                    let replace = plan.replace.iter().map(|t| (t, true));
                    jobs.extend(copy.chain(replace).map(|(tag, replacing)| TagCopy {
                        image: i,
                        tag: tag.clone(),
                        replacing,
                    }));
                }
            }
            let mut planned = ImageReport::new(image.config);
            planned_into(&mut planned, plan, options);
            let remaining = jobs.iter().filter(|c| c.image == i).count();
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
        Copies {
            jobs,
            live,
            tallies: self.images.iter().map(|i| Tally::new(&i.config.name)).collect(),
            costs: Mutex::default(),
        }
    }

    /// What a plan says, in the log; a new destination told to the engine.
    fn log_plan(&self, image: &ImageRun, plan: &Plan) {
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
        if self.options.dry_run && !plan.prune.is_empty() && image.dst.kind() == "repository" {
            tracing::info!(
                image = %image.config.name,
                "dry run: no DELETE was sent, so whether the registry lets these tags be deleted \
                 (delete rights; Distribution's storage.delete.enabled) shows only in a real run"
            );
        }
        if plan.new_destination {
            self.engine.destination_is_new(&*image.dst);
        }
        for h in &plan.held {
            match h.age {
                Some(_) => tracing::info!(image = %image.config.name, tag = %h.tag, "{}: {}", h.tag, h.why),
                None => tracing::warn!(image = %image.config.name, tag = %h.tag, "{}: {}", h.tag, h.why),
            }
        }
        for m in collect::moved_tags(plan) {
            let said = m.said(self.options.dry_run);
            tracing::warn!(image = %image.config.name, tag = %m.tag, from = %m.from, to = %m.to, replaced = m.replaced, version = m.version, "{said}");
        }
    }

    /// 3. Copies every planned tag, progress shown as asked; copies in
    ///    flight get a grace period after a stop signal.
    async fn copy(&self, copies: &Copies) -> Copied {
        let dry_run = self.options.dry_run;
        let tags = progress::TagCount {
            done: Default::default(),
            of: copies.jobs.len(),
        };
        let copying = schedule::run_all(
            &copies.jobs,
            self.options.jobs,
            || self.may_start(),
            |job| async {
                let image = &self.images[job.image];
                let tally = copies.tallies[job.image].clone();
                let tag_tally = Tally::for_tag(&tally);
                let started = std::time::Instant::now();
                let copy = async {
                    if let (true, Some(backup)) = (job.replacing, &image.config.options.backup_tag) {
                        back_up(&*image.dst, &job.tag, backup).await?;
                    }
                    self.engine
                        .copy_tag_shaped(&*image.src, &*image.dst, &job.tag, &image.shape)
                        .await
                };
                let result = TALLY.scope(tag_tally.clone(), copy).await;
                let cost = Cost {
                    bytes: tag_tally.done.load(Ordering::Relaxed),
                    seconds: started.elapsed().as_secs_f64(),
                };
                lock(&copies.costs).insert((job.image, job.tag.clone()), cost);
                if let Err(e) = &result {
                    tracing::debug!(image = %image.config.name, tag = %job.tag, "{e}");
                    self.failed.store(true, Ordering::SeqCst);
                }
                if lock(&copies.live[job.image]).finished(job, &result, cost, dry_run) {
                    tally.finished.store(true, Ordering::Relaxed);
                }
                tags.done.fetch_add(1, Ordering::Relaxed);
                result
            },
            self.interrupt.deadline(SHUTDOWN_GRACE),
        );
        let results = match self.options.progress {
            progress::Display::Off => copying.await,
            progress::Display::Lines { interval } => {
                tokio::pin!(copying);
                tokio::select! {
                    results = &mut copying => results,
                    () = progress::report_lines(&copies.tallies, interval) => copying.await,
                }
            }
            progress::Display::Bars => {
                tokio::pin!(copying);
                tokio::select! {
                    results = &mut copying => results,
                    () = progress::show_bars(&copies.tallies, &tags) => copying.await,
                }
            }
        };
        if results.iter().any(|r| matches!(r, Slot::Abandoned)) {
            tracing::warn!("abandoned the copies still in flight: nothing of them is committed");
        }
        results
    }

    /// 4. The referrers of every image that asks for them.
    async fn referrers(&self, plans: &Plans) -> Vec<Slot<Option<Referred>>> {
        let dry_run = self.options.dry_run;
        schedule::run_all(
            &self.images.iter().zip(plans).collect::<Vec<_>>(),
            self.options.jobs,
            || self.may_start(),
            |(image, plan)| async move {
                let Slot::Done(Ok(plan)) = plan else { return None };
                if !image.config.options.referrers {
                    return None;
                }
                let subjects = Subjects {
                    arriving: plan.copy.iter().chain(&plan.replace).collect(),
                    present: &plan.present,
                    referrer_tags: &plan.referrer_tags,
                    artifact_types: &image.config.options.artifact_types,
                    shape: &image.shape,
                };
                let done = copy_referrers(&self.engine, &*image.src, &*image.dst, &subjects, dry_run).await;
                if !done.copied.is_empty() {
                    let what = if dry_run { "would copy" } else { "copied" };
                    tracing::info!(image = %image.config.name, referrers = done.copied.len(), "referrers: {what} {}", done.copied.join(", "));
                }
                Some(done)
            },
            self.interrupt.deadline(SHUTDOWN_GRACE),
        )
        .await
    }

    /// 5. Deletes what each plan prunes, after every copy (a tag is deleted
    ///    only once nothing of this run can still need it), unless the run
    ///    is stopping; a dry run deletes nothing. Returns the tags each
    ///    image was to prune and what became of them.
    async fn prune(&self, plans: &Plans) -> (Vec<Vec<String>>, Vec<Slot<Deletions>>) {
        let to_prune: Vec<Vec<String>> = plans
            .iter()
            .map(|p| match p {
                Slot::Done(Ok(p)) if !self.options.dry_run => p.prune.clone(),
                _ => Vec::new(),
            })
            .collect();
        let pruned = schedule::run_all(
            &self.images.iter().zip(&to_prune).collect::<Vec<_>>(),
            self.options.jobs,
            || self.may_start(),
            |(image, tags)| async move {
                if tags.is_empty() {
                    return Vec::new();
                }
                let done = image.dst.delete_tags(tags, &image.config.digests).await;
                let deleted: Vec<&str> = done
                    .iter()
                    .filter(|(_, d)| matches!(d, Ok(Deletion::Deleted)))
                    .map(|(t, _)| t.as_str())
                    .collect();
                tracing::info!(image = %image.config.name, deleted = deleted.len(), "pruned: deleted {}", deleted.join(", "));
                done
            },
            self.interrupt.deadline(SHUTDOWN_GRACE),
        )
        .await;
        (to_prune, pruned)
    }

    /// 7. How old the oldest tag each image still lacks is (freshness),
    ///    where the plan did not learn it (`min-age` did for what it
    ///    held): in a real run only (a dry run lacks everything it would
    ///    copy), asked of the source only for tags whose copy failed at
    ///    the destination (the source answered; one in trouble is never
    ///    asked more), at most [`age::MAX_ASKED`] tags an image; a source
    ///    that does not answer leaves it unknown.
    async fn ages_of_missing(&self, report: &mut RunReport) {
        if self.options.dry_run {
            return;
        }
        let asks: Vec<(usize, Vec<String>)> = report
            .images
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.freshness.as_ref()?.unaged.clone())))
            .filter(|(_, tags)| !tags.is_empty())
            .collect();
        let found = schedule::run_all(
            &asks,
            self.options.jobs,
            || !self.interrupt.requested(),
            |(i, tags)| async move { age::oldest(&*self.images[*i].src, tags, self.images[*i].config).await },
            self.interrupt.deadline(std::time::Duration::ZERO),
        )
        .await;
        for ((i, _), oldest) in asks.iter().zip(found) {
            if let (Slot::Done(Some(age)), Some(f)) = (oldest, report.images[*i].freshness.as_mut()) {
                f.oldest_missing_age_seconds = Some(f.oldest_missing_age_seconds.unwrap_or(0).max(age));
            }
        }
    }

    /// 6. The report of the pass, in file order; images that never
    ///    finished (stopped, interrupted) are logged now.
    fn report(
        &self,
        plans: Plans,
        copies: &Copies,
        copied: Copied,
        referred: Vec<Slot<Option<Referred>>>,
        to_prune: Vec<Vec<String>>,
        pruned: Vec<Slot<Deletions>>,
    ) -> RunReport {
        let options = self.options;
        let unfinished: Vec<bool> = plans
            .iter()
            .zip(&copies.live)
            .map(|(plan, l)| !matches!(plan, Slot::Done(_)) || lock(l).remaining > 0)
            .collect();
        let mut report = collect(&self.images, plans, &copies.jobs, copied, &lock(&copies.costs), options);
        for ((r, pruned), tags) in report.images.iter_mut().zip(pruned).zip(to_prune) {
            pruned_into(r, pruned, tags);
        }
        for (r, referred) in report.images.iter_mut().zip(referred) {
            if let Slot::Done(Some(done)) = referred {
                referred_into(r, done);
            }
        }
        report.stopped_early = options.exit_on_error && self.failed.load(Ordering::SeqCst);
        report.interrupted = self.interrupt.requested();
        report.totals = self.engine.stats.totals();
        for (r, unfinished) in report.images.iter().zip(unfinished) {
            if unfinished {
                r.log(options.dry_run);
            }
        }
        report
    }
}

/// Keeps the manifest a tag about to be replaced names under its backup
/// tag (`backup-tag`). Fail-closed: when the backup cannot be made, or
/// its tag already holds another manifest (replaced twice in a day), the
/// tag is not replaced.
async fn back_up(dst: &dyn Store, tag: &str, template: &BackupTag) -> Result<(), CopyError> {
    let date: String = crate::error::utc_at(std::time::SystemTime::now())
        .chars()
        .take(10)
        .filter(char::is_ascii_digit)
        .collect();
    let refused = |why: String| {
        let context = format!("{}: tag {tag} not replaced", dst.name());
        CopyError::Store(StoreError::new(context, ErrorKind::Protocol(why.into())))
    };
    let Some(name) = template.render(tag, &date) else {
        return Err(refused(format!("its backup tag would not be a valid tag ({template})")));
    };
    let old = dst.get_manifest(tag).await?;
    match crate::store::digest_of(dst, &name).await? {
        Some(d) if d == old.digest => {}
        Some(d) => {
            return Err(refused(format!(
                "its backup tag {name} already holds another manifest ({d})"
            )));
        }
        None => dst.put_manifest(&name, &old).await?,
    }
    tracing::info!(destination = %dst.name(), tag, backup = %name, digest = %old.digest, "kept as {name} before replacing {tag}");
    Ok(())
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
