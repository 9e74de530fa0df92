//! A registry's catalog (`GET /v2/_catalog`, every page): the repositories
//! a repository pattern matches are found there. Bounded like tag lists; a
//! registry that offers none says so by its status, which is told.

use reqwest::StatusCode;

use super::client::Client;
use super::transport::Spend;
use super::wire::{PageLimits, Pages, next_link, protocol, read_limited};
use crate::error::StoreError;
use crate::model::{Registry, Repository};

/// One page of a catalog, and all pages of one registry together.
const MAX_CATALOG_PAGE: usize = 8 * 1024 * 1024;
const CATALOG: PageLimits = PageLimits {
    pages: 10_000,
    bytes: 64 * 1024 * 1024,
    items: 1_000_000,
    time: std::time::Duration::from_secs(300),
};

/// The page size asked for first.
const SIZED: &str = "?n=1000";

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
        let ctx = format!("{registry}: the catalog");
        let scopes = vec!["registry:catalog:*".to_string()];
        // the transport speaks per repository; the catalog is the
        // registry's own (its URL is built here)
        let at = Repository {
            registry: registry.clone(),
            path: "_catalog".into(),
        };
        let base = self.transport.base_url(registry);
        let mut next = Some(format!("{base}/v2/_catalog{SIZED}"));
        let mut all = Vec::new();
        let mut pages = Pages::new(CATALOG, "the catalog");
        // no page read yet: an answer that says "no catalog" is told as such
        let mut first = true;
        while let Some(url) = next.take() {
            pages.ask(&url).map_err(|e| protocol(&ctx, e))?;
            let page = self
                .transport
                .exchange(
                    &at,
                    &scopes,
                    &ctx,
                    Spend::Free,
                    || self.http(&at).get(&url),
                    |resp| async {
                        let status = resp.status();
                        let none = [
                            StatusCode::UNAUTHORIZED,
                            StatusCode::FORBIDDEN,
                            StatusCode::NOT_FOUND,
                            StatusCode::METHOD_NOT_ALLOWED,
                        ];
                        if first && none.contains(&status) {
                            return Ok(Err(status.as_u16()));
                        }
                        // a registry whose pages are smaller refuses n=1000
                        // (Distribution's `catalog.maxentries`): its own size
                        if first && status == StatusCode::BAD_REQUEST && url.ends_with(SIZED) {
                            return Ok(Err(0));
                        }
                        if !status.is_success() {
                            return Err(self.failure(resp, &ctx, &at).await);
                        }
                        let next = next_link(resp.headers(), &url);
                        let body = read_limited(resp, MAX_CATALOG_PAGE, &ctx).await?;
                        let page: Page =
                            serde_json::from_slice(&body).map_err(|e| protocol(&ctx, format!("bad catalog: {e}")))?;
                        Ok(Ok((page.repositories.unwrap_or_default(), next, body.len())))
                    },
                )
                .await?;
            let (names, link, size) = match page {
                Ok(page) => page,
                Err(0) => {
                    next = Some(format!("{base}/v2/_catalog"));
                    continue;
                }
                Err(status) => return Ok(Catalog::Unavailable(status)),
            };
            first = false;
            pages
                .read(size, names.len(), link.is_some())
                .map_err(|e| protocol(&ctx, e))?;
            next = match link {
                Some(l) => Some(self.same_registry(&at, &l, "catalog Link", &ctx)?.to_string()),
                None => None,
            };
            all.extend(names.into_iter().filter(|name| {
                let ok = Repository::parse(&format!("{registry}/{name}")).is_ok_and(|r| r.path == *name);
                if !ok {
                    tracing::warn!(%registry, "ignoring invalid repository name {:?} in the catalog", name.chars().take(200).collect::<String>());
                }
                ok
            }));
        }
        Ok(Catalog::Listed(all))
    }
}
