//! What a pass did, into its report: each tag's outcome is recorded once
//! (`ImageReport::record`), from the plan (present, and everything a dry
//! run would do), the copies, the referrers and the prune; registries that
//! failed as a whole are grouped.

use std::collections::BTreeMap;

use super::{ImageRun, Plan, PlanError, Slot, TagCopy};
use crate::config::is_full_version;
use crate::copy::referrers::Referred;
use crate::copy::{CopyError, Outcome};
use crate::error::{Category, ErrorKind, StoreError, printable, utc_at};
use crate::report::{Action, Freshness, ImageReport, MovedTag, RegistryTrouble, RunReport, TagRecord};
use crate::settings::RunOptions;
use crate::store::{Deletion, Deletions};
use crate::version::Version;

/// The failures that concern a whole registry, grouped: which registry,
/// what went wrong, and which images it cost.
#[derive(Default)]
struct RegistryTroubles(BTreeMap<(String, Category), RegistryTrouble>);

impl RegistryTroubles {
    fn note(&mut self, image: &str, error: Option<&StoreError>) {
        let Some(e) = error else { return };
        let (registry, category, cause) = match &e.kind {
            ErrorKind::Unreachable { registry, cause } => (registry, e.category(), shown(&**cause)),
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
pub(super) fn shown(e: &dyn std::fmt::Display) -> String {
    printable(&e.to_string(), 2000)
}

/// The image's report as its plan leaves it.
pub(super) fn planned_into(r: &mut ImageReport, plan: &Slot<Result<Plan, PlanError>>, options: RunOptions) {
    match plan {
        Slot::NotStarted | Slot::Abandoned => r.stopped = true,
        Slot::Done(Err(e)) => {
            r.error = Some(shown(e));
            r.error_category = Some(e.category());
        }
        Slot::Done(Ok(plan)) => {
            for t in &plan.present {
                r.record(TagRecord::new(t, Action::Present));
            }
            for t in &plan.missing {
                let why = format!("listed in \"tags\", but the source has no tag {t}");
                failed_into(r, TagRecord::new(t, Action::Failed), Category::NotFound, why);
            }
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
            r.moved = moved_tags(plan);
            for h in &plan.held {
                let mut rec = TagRecord::new(&h.tag, Action::Held);
                rec.error = Some(h.why.clone());
                r.record(rec);
            }
            for (tag, why) in &plan.prune_left {
                left_in_place(r, tag, why);
            }
            if options.dry_run {
                let would = [
                    (&plan.prune, Action::WouldDelete),
                    (&plan.copy, Action::WouldCopy),
                    (&plan.replace, Action::WouldReplace),
                ];
                for (tags, action) in would {
                    for t in tags {
                        r.record(TagRecord::new(t, action));
                    }
                }
            }
        }
    }
}

/// The tags of a plan that moved upstream, as the report and the log
/// tell them.
pub(super) fn moved_tags(plan: &Plan) -> Vec<MovedTag> {
    plan.moved
        .iter()
        .map(|m| MovedTag {
            tag: m.tag.clone(),
            from: m.from.to_string(),
            to: m.to.to_string(),
            replaced: m.replaced,
            version: is_full_version(&m.tag),
        })
        .collect()
}

/// What the referrers step did, into the image's report.
pub(super) fn referred_into(r: &mut ImageReport, done: Referred) {
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
    r.record(rec);
    r.prune_held.push(why);
}

/// What a prune of `tags` did, into the image's report. A prune that did
/// not start (the run stopped first) leaves its tags not started.
pub(super) fn pruned_into(r: &mut ImageReport, pruned: Slot<Deletions>, tags: Vec<String>) {
    let deletions = match pruned {
        Slot::Done(d) => d,
        Slot::NotStarted | Slot::Abandoned => {
            for t in &tags {
                r.record(TagRecord::new(t, Action::NotStarted));
            }
            return;
        }
    };
    for (tag, outcome) in deletions {
        match outcome {
            Ok(Deletion::Deleted) => r.record(TagRecord::new(&tag, Action::Deleted)),
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
pub(super) struct Cost {
    pub(super) bytes: u64,
    pub(super) seconds: f64,
}

/// One finished copy, into its image's report.
pub(super) fn record(r: &mut ImageReport, job: &TagCopy, result: &Result<Outcome, CopyError>, cost: Cost) {
    let mut rec = TagRecord::new(&job.tag, Action::Failed);
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
        }
        Ok(Outcome::SkippedPlatform(why)) => {
            rec.action = Action::Skipped;
            // it names the platforms the image has: a peer's words
            rec.error = Some(shown(why));
        }
        Ok(Outcome::SkippedSchema1) => rec.action = Action::Unsupported,
        Err(e) => return failed_into(r, rec, e.category(), shown(e)),
    }
    r.record(rec);
}

/// A failure, into the image's report.
fn failed_into(r: &mut ImageReport, mut rec: TagRecord, category: Category, error: String) {
    rec.action = Action::Failed;
    rec.error_category = Some(category);
    rec.error = Some(error);
    r.record(rec);
}

pub(super) fn collect(
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
    for (image, plan) in images.iter().zip(&plans) {
        let mut r = ImageReport::new(image.config);
        planned_into(&mut r, plan, options);
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
            Slot::NotStarted => r.record(TagRecord::new(&job.tag, Action::NotStarted)),
            Slot::Done(result) => {
                if let Err(e) = &result {
                    troubles.note(&r.name, e.store_error());
                }
                let cost = costs.get(&(job.image, job.tag.clone())).copied().unwrap_or_default();
                record(r, job, &result, cost);
            }
        }
    }
    for (r, plan) in report.images.iter_mut().zip(&plans) {
        if let Slot::Done(Ok(plan)) = plan {
            r.freshness = Some(freshness(r, plan));
        }
    }
    report.registries = troubles.0.into_values().collect();
    report
}

/// How far behind its source an image's destination is, once its copies
/// are recorded: what the plan wanted that did not arrive, and the
/// newest versions on each side. The oldest missing one's age is known
/// here for the versions `min-age` held; the run asks the source for
/// those whose copy failed at the destination (`Pass::ages_of_missing`).
fn freshness(r: &ImageReport, plan: &Plan) -> Freshness {
    let wanted: std::collections::HashSet<&String> = plan
        .copy
        .iter()
        .chain(&plan.replace)
        .chain(plan.held.iter().map(|h| &h.tag))
        .collect();
    let missing: Vec<&str> = r
        .missing()
        .into_iter()
        .filter(|t| wanted.iter().any(|w| w.as_str() == *t))
        .collect();
    // asked after the run only where the source answered and the
    // destination failed: never more requests of a source in trouble
    let at_destination = format!("{}: ", r.destination);
    let unaged = r
        .tags
        .iter()
        .filter(|t| t.action == Action::Failed && missing.contains(&t.tag.as_str()))
        .filter(|t| t.error.as_deref().is_some_and(|e| e.starts_with(&at_destination)))
        .map(|t| t.tag.clone())
        .collect();
    let arrived = r
        .tags
        .iter()
        .filter(|t| matches!(t.action, Action::Copied | Action::Replaced));
    let newest_mirrored = arrived
        .filter_map(|t| Version::parse(&t.tag))
        .chain(plan.newest_destination.as_deref().and_then(Version::parse))
        .max()
        .map(|v| v.tag);
    Freshness {
        missing: missing.len(),
        unaged,
        newest_source: plan.newest_source.clone(),
        newest_mirrored,
        oldest_missing_age_seconds: plan.held.iter().filter_map(|h| h.age).max().map(|a| a.as_secs()),
    }
}
