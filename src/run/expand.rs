//! Repository patterns, expanded when the run starts: each pattern entry
//! becomes one image per repository of the source's catalog it matches,
//! named `KEY/<matched part>`, with every option of its entry. The
//! catalog of each source registry is read once.

use std::collections::HashMap;

use crate::config::ImageConfig;
use crate::error::StoreError;
use crate::model::Endpoint;
use crate::registry::{Catalog, Client};

/// `images` with every pattern entry replaced by the images it matches,
/// in file order (a pattern's by name); an entry whose catalog cannot be
/// read, or that matches nothing, stays, failed.
pub async fn expand_patterns(images: Vec<ImageConfig>, client: &Client) -> Vec<ImageConfig> {
    let mut catalogs: HashMap<String, Result<Catalog, StoreError>> = HashMap::new();
    let mut out = Vec::with_capacity(images.len());
    for image in images {
        let Some(spec) = image.pattern.clone() else {
            out.push(image);
            continue;
        };
        let registry = &spec.source.registry;
        if !catalogs.contains_key(&registry.host) {
            let read = client.catalog(registry).await;
            catalogs.insert(registry.host.clone(), read);
        }
        let failed = |why: String| ImageConfig {
            pattern_failure: Some(why),
            ..image.clone()
        };
        match &catalogs[&registry.host] {
            Ok(Catalog::Listed(names)) => {
                let mut matched: Vec<ImageConfig> = names
                    .iter()
                    .filter_map(|name| spec.map(name))
                    .map(|(rest, from, to)| ImageConfig {
                        name: match image.name == image.entry {
                            true => format!("{}/{rest}", image.entry),
                            false => format!("{}/{rest} -> {to}", image.entry),
                        },
                        entry: format!("{}/{rest}", image.entry),
                        source: Endpoint::Registry(from),
                        destination: Endpoint::Registry(to),
                        pattern: None,
                        ..image.clone()
                    })
                    .collect();
                matched.sort_by(|a, b| a.name.cmp(&b.name));
                matched.dedup_by(|a, b| a.name == b.name);
                tracing::info!(
                    image = %image.name,
                    "{} matches {} of the {} repositories in {registry}'s catalog: {}",
                    spec.source,
                    matched.len(),
                    names.len(),
                    matched.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
                );
                if matched.is_empty() {
                    out.push(failed(format!(
                        "{} matches no repository of the {} in {registry}'s catalog",
                        spec.source,
                        names.len()
                    )));
                } else {
                    out.extend(matched);
                }
            }
            Ok(Catalog::Unavailable(status)) => out.push(failed(format!(
                "{registry} offers no catalog to this client (HTTP {status} to GET /v2/_catalog): \
                 a repository pattern needs one; list the repositories as images instead"
            ))),
            Err(e) => out.push(failed(format!("{}: the catalog could not be read: {e}", spec.source))),
        }
    }
    out
}
