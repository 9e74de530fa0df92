//! One pass over the configuration: per image, list tags on both sides,
//! select, plan, copy; collect what happened into a [`RunReport`].

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::{Config, ImageConfig};
use crate::copy::{Engine, Outcome};
use crate::registry::Client;
use crate::report::{ImageReport, RunReport, TagFailure};
use crate::select::select;
use crate::store::{Store, Stores};

/// Options of a run that are not in the config file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub dry_run: bool,
    pub exit_on_error: bool,
}

/// What to do with one image: decided before anything is written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub copy: Vec<String>,
    pub replace: Vec<String>,
    /// Selected, already in the destination (and identical, with replace-tag).
    pub present: Vec<String>,
}

/// Runs one pass. Images in file order; one image's failure does not stop
/// the others unless `exit_on_error`.
pub async fn run(config: &Config, client: Arc<Client>, options: Options) -> RunReport {
    let engine = Engine::new();
    let stores = Stores::new(client);
    let mut report = RunReport {
        dry_run: options.dry_run,
        ..RunReport::default()
    };
    for image in &config.images {
        let (src, dst) = (stores.open(&image.source, false), stores.open(&image.destination, true));
        let r = mirror_image(&engine, image, &*src, &*dst, options).await;
        let failed = r.is_failed();
        report.images.push(r);
        if failed && options.exit_on_error {
            tracing::error!(image = %image.name, "stopping at the first error (--exit-on-error)");
            report.stopped_early = true;
            break;
        }
    }
    report.totals = engine.stats.totals();
    report
}

async fn mirror_image(
    engine: &Engine,
    image: &ImageConfig,
    src: &dyn Store,
    dst: &dyn Store,
    options: Options,
) -> ImageReport {
    let mut report = ImageReport::new(image);
    tracing::info!(image = %image.name, source = %image.source, destination = %image.destination, mode = %image.mode, "mirroring");
    let plan = match plan(image, src, dst).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(image = %image.name, "{e}");
            report.error = Some(e);
            return report;
        }
    };
    report.present = plan.present.clone();
    if options.dry_run {
        report.copied = plan.copy;
        report.replaced = plan.replace;
        return report;
    }
    let jobs = plan
        .copy
        .iter()
        .map(|t| (t, false))
        .chain(plan.replace.iter().map(|t| (t, true)));
    for (tag, replacing) in jobs {
        match engine.copy_tag(src, dst, tag).await {
            Ok(Outcome::Copied) if replacing => report.replaced.push(tag.clone()),
            Ok(Outcome::Copied) => report.copied.push(tag.clone()),
            Ok(Outcome::SkippedSchema1) => report.unsupported.push(tag.clone()),
            Err(e) => {
                tracing::error!(image = %image.name, tag = %tag, "{e}");
                report.failed.push(TagFailure {
                    tag: tag.clone(),
                    error: e.to_string(),
                });
                if options.exit_on_error {
                    break;
                }
            }
        }
    }
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
    let dest_tags = dst.list_tags().await.map_err(|e| e.to_string())?.unwrap_or_default();
    let selected = select(image.mode, &image.filters, &source_tags, &dest_tags);
    tracing::debug!(image = %image.name, selected = ?selected, "selected tags");
    let in_dest: HashSet<&String> = dest_tags.iter().collect();
    let mut plan = Plan::default();
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
