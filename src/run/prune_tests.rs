//! The law of prune, over random destinations: whatever the destination
//! holds (tags sharing manifests, indexes, signature and referrer tags),
//! whatever the source still lists and whichever reads fail, the tags a
//! plan deletes never take along a manifest that a staying tag, a child of
//! a staying index, or a tag this run copies still needs; a failed read
//! deletes nothing; a tag about another manifest is never deleted alone.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use futures_util::future::BoxFuture;
use proptest::prelude::*;

use super::plan;
use crate::error::{ErrorKind, StoreError};
use crate::model::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::model::{Digest, FetchedManifest, ManifestHead};
use crate::store::{Blob, BlobBody, Deletions, Result, Store};

/// A repository in memory whose reads of some tags fail.
struct Repo {
    name: &'static str,
    tags: BTreeMap<String, Digest>,
    manifests: BTreeMap<Digest, FetchedManifest>,
    failing: HashSet<String>,
}

impl Repo {
    fn fail(&self, reference: &str) -> Result<()> {
        match self.failing.contains(reference) {
            true => Err(StoreError::new(
                format!("{}: {reference}", self.name),
                ErrorKind::Status {
                    status: 500,
                    errors: vec![],
                },
            )),
            false => Ok(()),
        }
    }

    fn resolve(&self, reference: &str) -> Option<&FetchedManifest> {
        let digest = Digest::parse(reference)
            .ok()
            .or_else(|| self.tags.get(reference).cloned())?;
        self.manifests.get(&digest)
    }
}

impl Store for Repo {
    fn name(&self) -> String {
        self.name.into()
    }
    fn limiter(&self) -> std::sync::Arc<crate::limit::Limiter> {
        crate::limit::Limiter::fixed(self.name, 1)
    }
    fn kind(&self) -> &'static str {
        "repository"
    }

    fn list_tags(&self) -> BoxFuture<'_, Result<Option<Vec<String>>>> {
        Box::pin(async { Ok(Some(self.tags.keys().cloned().collect())) })
    }
    fn head_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ManifestHead>>> {
        Box::pin(async move {
            self.fail(reference)?;
            Ok(self.resolve(reference).map(|m| ManifestHead {
                digest: Some(m.digest.clone()),
                media_type: m.media_type.clone(),
            }))
        })
    }
    fn get_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<FetchedManifest>> {
        Box::pin(async move {
            self.fail(reference)?;
            self.resolve(reference).cloned().ok_or_else(|| {
                StoreError::new(
                    format!("{}: {reference}", self.name),
                    ErrorKind::Status {
                        status: 404,
                        errors: vec![],
                    },
                )
            })
        })
    }
    fn put_manifest<'a>(&'a self, _: &'a str, _: &'a FetchedManifest) -> BoxFuture<'a, Result<()>> {
        unreachable!("planning writes nothing")
    }
    fn has_blob<'a>(&'a self, _: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        unreachable!("planning reads no blob")
    }
    fn get_blob<'a>(&'a self, _: &'a Digest, _: u64, _: Option<u64>) -> BoxFuture<'a, Result<Blob>> {
        unreachable!("planning reads no blob")
    }
    fn put_blob<'a>(&'a self, _: &'a Digest, _: Option<u64>, _: BlobBody) -> BoxFuture<'a, Result<()>> {
        unreachable!("planning writes nothing")
    }
    fn delete_tags<'a>(&'a self, _: &'a [String], _: &'a [Digest]) -> BoxFuture<'a, Deletions> {
        unreachable!("planning deletes nothing")
    }
}

/// Six images and three indexes over random subsets of them.
fn manifests(indexes: &[Vec<usize>]) -> Vec<FetchedManifest> {
    let mut all: Vec<FetchedManifest> = (0..6)
        .map(|i| {
            let config = Digest::sha256_of(format!("config {i}").as_bytes());
            let doc = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 2},
                "layers": []});
            FetchedManifest::made(serde_json::to_vec(&doc).unwrap(), OCI_MANIFEST)
        })
        .collect();
    for children in indexes {
        let list: Vec<_> = children
            .iter()
            .map(|&c| serde_json::json!({"mediaType": OCI_MANIFEST, "digest": all[c].digest.as_str(), "size": all[c].bytes.len()}))
            .collect();
        let doc = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list});
        all.push(FetchedManifest::made(serde_json::to_vec(&doc).unwrap(), OCI_INDEX));
    }
    all
}

/// Tag names: versions, words, and tags about manifests (a tag schema
/// index, a cosign signature).
fn names(all: &[FetchedManifest]) -> Vec<String> {
    let mut names: Vec<String> = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "latest", "edge"]
        .map(String::from)
        .to_vec();
    for m in all.iter().take(3) {
        let hex = m.digest.as_str().trim_start_matches("sha256:");
        names.push(format!("sha256-{hex}"));
        names.push(format!("sha256-{hex}.sig"));
    }
    names
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]
    #[test]
    fn a_prune_never_takes_a_manifest_that_something_staying_needs(
        indexes in proptest::collection::vec(proptest::collection::vec(0usize..6, 1..4), 3),
        dest in proptest::collection::btree_map(0usize..13, 0usize..9, 0..13),
        source in proptest::collection::btree_map(0usize..13, 0usize..9, 0..13),
        failing in proptest::collection::vec(0usize..13, 0..2),
        all_mode in any::<bool>(),
        referrers in any::<bool>(),
        prune_max in 1usize..8,
    ) {
        let all = manifests(&indexes);
        let names = names(&all);
        let repo = |name, tags: &BTreeMap<usize, usize>, failing: HashSet<String>| Repo {
            name,
            tags: tags.iter().map(|(&t, &m)| (names[t].clone(), all[m].digest.clone())).collect(),
            manifests: all.iter().map(|m| (m.digest.clone(), m.clone())).collect(),
            failing,
        };
        let failing: HashSet<String> = failing.iter().map(|&t| names[t].clone()).collect();
        let dst = repo("dst", &dest, failing.clone());
        let src = repo("src", &source, HashSet::new());
        let yaml = format!(
            "mode: {}\nreferrers: {referrers}\nprune: true\nprune-max: {prune_max}\nimages:\n  app:\n    source: s.io/a\n    destination: d.io/a\n",
            if all_mode { "all" } else { "semver" }
        );
        let config = crate::config::parse(Path::new("c.yaml"), &yaml).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let Ok(plan) = runtime.block_on(plan(&config.images[0], &src, &dst)) else {
            // a failed plan deletes nothing
            return Ok(());
        };
        prop_assert!(plan.prune.len() <= prune_max);
        for tag in &plan.prune {
            prop_assert!(!src.tags.contains_key(tag), "{} is still upstream", tag);
            prop_assert!(crate::model::referrers::referrer_tag(tag).is_none(), "{} deleted alone", tag);
        }
        if plan.prune.is_empty() {
            return Ok(());
        }
        // a read that failed while deciding: nothing may be deleted
        let staying: Vec<&String> = dst.tags.keys().filter(|t| !plan.prune.contains(t)).collect();
        prop_assert!(!staying.iter().any(|t| failing.contains(*t)), "deleted despite a failed read: {:?}", plan);
        // what a deletion takes along on a registry that deletes manifests
        let taken: HashSet<&Digest> = plan.prune.iter().map(|t| &dst.tags[t]).collect();
        let mut needed: HashSet<Digest> = HashSet::new();
        for t in &staying {
            let d = &dst.tags[*t];
            needed.insert(d.clone());
            if let Ok(crate::model::manifest::Manifest::Index { children }) =
                crate::model::manifest::Manifest::parse(OCI_INDEX, &dst.manifests[d].bytes)
            {
                needed.extend(children.into_iter().map(|(c, _)| c));
            }
        }
        for t in plan.copy.iter().chain(&plan.replace) {
            let d = &src.tags[t];
            needed.insert(d.clone());
            if let Ok(crate::model::manifest::Manifest::Index { children }) =
                crate::model::manifest::Manifest::parse(OCI_INDEX, &src.manifests[d].bytes)
            {
                needed.extend(children.into_iter().map(|(c, _)| c));
            }
        }
        for d in taken {
            prop_assert!(!needed.contains(d), "{} is still needed: {:?}", d, plan);
        }
    }
}
