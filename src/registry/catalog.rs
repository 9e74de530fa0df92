//! A registry's catalog (`GET /v2/_catalog`, every page): the repositories
//! a repository pattern matches are found there. Bounded like tag lists; a
//! registry that offers none says so by its status, which is told.

use reqwest::StatusCode;

use super::client::{Client, MAX_TAGS_PAGE, Paged, TAG_LIST};
use super::wire::protocol;
use crate::error::StoreError;
use crate::model::{Registry, Repository};

/// The page size asked for first.
const SIZED: &str = "?n=1000";

/// What a catalog's first page said instead of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoList {
    /// No catalog for this client: its status.
    Unavailable(u16),
    /// `n=1000` refused: the registry pages smaller.
    SmallerPages,
}

/// What a registry's catalog answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catalog {
    /// Every repository it lists, in its order.
    Listed(Vec<String>),
    /// It offers no catalog to this client: the status of its first page
    /// (401 or 403 after authenticating, 404, 405...).
    Unavailable(u16),
}

impl Client {
    /// Every repository of `registry`'s catalog, following `Link` pages
    /// (which must stay on the registry). A repository name that is not
    /// one (the catalog is the registry's word) is left out, warned.
    pub async fn catalog(&self, registry: &Registry) -> Result<Catalog, StoreError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        // ECR lists its repositories through its API only
        if let Some(listed) = self.transport.ecr_repositories(registry).await {
            return Ok(Catalog::Listed(valid_names(registry, listed?)));
        }
        let ctx = format!("{registry}: the catalog");
        // the transport speaks per repository; the catalog is the
        // registry's own (its URL is built here)
        let at = Repository {
            registry: registry.clone(),
            path: "_catalog".into(),
        };
        let list = Paged {
            at: &at,
            scopes: &["registry:catalog:*".to_string()],
            ctx: &ctx,
            // bounded as a tag list is
            limits: TAG_LIST,
            what: "the catalog",
            max_page: MAX_TAGS_PAGE,
        };
        let read = |body: &[u8]| {
            let page: Page = serde_json::from_slice(body).map_err(|e| protocol(&ctx, format!("bad catalog: {e}")))?;
            Ok(page.repositories.unwrap_or_default())
        };
        let none = [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
        ];
        let early = |status: StatusCode, url: &str| {
            if none.contains(&status) {
                Some(NoList::Unavailable(status.as_u16()))
            } else if status == StatusCode::BAD_REQUEST && url.ends_with(SIZED) {
                // a registry whose pages are smaller refuses n=1000
                // (Distribution's `catalog.maxentries`): then its own size
                Some(NoList::SmallerPages)
            } else {
                None
            }
        };
        let base = self.transport.base_url(registry);
        let mut listed = self
            .paged(&list, format!("{base}/v2/_catalog{SIZED}"), read, early)
            .await?;
        if listed == Err(NoList::SmallerPages) {
            listed = self.paged(&list, format!("{base}/v2/_catalog"), read, early).await?;
        }
        match listed {
            Ok(names) => Ok(Catalog::Listed(valid_names(registry, names))),
            Err(NoList::Unavailable(status)) => Ok(Catalog::Unavailable(status)),
            // said only of a request with n=1000, which is not asked twice
            Err(NoList::SmallerPages) => Ok(Catalog::Unavailable(400)),
        }
    }
}

/// The names that are repository paths of `registry` (a catalog is the
/// registry's word); the others left out, warned.
fn valid_names(registry: &Registry, names: Vec<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|name| {
            let ok = Repository::parse(&format!("{registry}/{name}")).is_ok_and(|r| r.path == *name);
            if !ok {
                tracing::warn!(%registry, "ignoring invalid repository name {:?} in the catalog", name.chars().take(200).collect::<String>());
            }
            ok
        })
        .collect()
}
