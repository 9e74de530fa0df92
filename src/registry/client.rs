//! The Distribution API operations: tags, manifests, blobs, uploads. Each
//! says *what* to ask and how to read the answer; the [`Transport`] decides
//! how it travels (auth, retries, limits).

use std::sync::Arc;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, LOCATION, RANGE};
use reqwest::{Response, StatusCode};
use url::Url;

use super::connect::TransportSettings;
use super::ranges::{content_range, is_rest};
use super::transport::{Spend, Transport};
use super::wire::{PageLimits, Pages, header, next_link, protocol, read_limited, same_origin};
use crate::credentials::Chain;
use crate::error::{ErrorKind, StoreError, printable};
use crate::lock;
use crate::model::manifest::{ACCEPT as MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, OCI_INDEX};
use crate::model::referrers::Referrer;
use crate::model::{Digest, FetchedManifest, ManifestHead, Repository, is_valid_tag};

/// One page of a tag list, and all pages of one repository together: a
/// registry that pages on forever is stopped here.
pub(super) const MAX_TAGS_PAGE: usize = 8 * 1024 * 1024;
pub(super) const TAG_LIST: PageLimits = PageLimits {
    pages: 10_000,
    bytes: 64 * 1024 * 1024,
    items: 1_000_000,
    time: std::time::Duration::from_secs(300),
};
/// The referrers of one manifest, and of all manifests of a run together:
/// what a referrers API may make this process hold.
const REFERRERS: PageLimits = PageLimits {
    pages: 16,
    bytes: 4 * 1024 * 1024,
    items: 1_000,
    time: std::time::Duration::from_secs(120),
};
pub const MAX_REFERRERS_PER_RUN: usize = 100_000;
pub const MAX_REFERRER_BYTES_PER_RUN: usize = 64 * 1024 * 1024;
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

type Result<T> = std::result::Result<T, StoreError>;

/// A paged list to read ([`Client::paged`]): where, with what rights,
/// within what bounds.
pub(super) struct Paged<'a> {
    pub at: &'a Repository,
    pub scopes: &'a [String],
    pub ctx: &'a str,
    pub limits: PageLimits,
    /// How the list is named in messages ("the tag list").
    pub what: &'static str,
    /// The most one page may be, in bytes.
    pub max_page: usize,
}

/// The outcome of a cross-repository mount request.
#[derive(Debug)]
pub enum Mount {
    Mounted,
    /// The registry declined and opened an upload session instead.
    Upload(Url),
}

/// What a manifest DELETE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delete {
    Done,
    /// There was nothing under that reference.
    Absent,
    /// The registry deletes manifests by digest only.
    NotByTag,
}

/// Every registry operation of a run, over one shared transport.
pub struct Client {
    pub(super) transport: Transport,
    /// Referrer descriptors and bytes read in this run (bounded).
    referrers_read: std::sync::Mutex<(usize, usize)>,
    /// Registries that answered a range with another one: asked for whole
    /// blobs only for the rest of the run.
    no_ranges: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Registries that refused a chunked upload: one stream for the rest
    /// of the run.
    pub(super) no_chunks: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Registries seen dropping what arrived of a broken chunk: chunks
    /// held whole for the rest of the run.
    pub(super) drops_partial: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Upload sessions a break left to go on with (`repository@digest`:
    /// location, bytes held), until the copy engine sends the rest.
    pub(super) resumable: std::sync::Mutex<std::collections::HashMap<String, (Url, u64)>>,
    pub(super) chunking: super::upload::Chunking,
    /// The chunks held for resending, in MiB, over every upload of the run.
    pub(super) chunk_memory: tokio::sync::Semaphore,
}

fn pull(repo: &Repository) -> Vec<String> {
    vec![format!("repository:{}:pull", repo.path)]
}

pub(super) fn push(repo: &Repository) -> Vec<String> {
    vec![format!("repository:{}:pull,push", repo.path)]
}

fn rights(repo: &Repository, write: bool) -> Vec<String> {
    if write { push(repo) } else { pull(repo) }
}

impl Client {
    pub fn new(credentials: Arc<Chain>, settings: &TransportSettings) -> Result<Client> {
        Ok(Client {
            transport: Transport::new(credentials, settings)?,
            referrers_read: Default::default(),
            no_ranges: Default::default(),
            no_chunks: Default::default(),
            drops_partial: Default::default(),
            resumable: Default::default(),
            chunking: super::upload::Chunking {
                fixed: settings.chunk_size,
            },
            chunk_memory: tokio::sync::Semaphore::new((crate::defaults::CHUNK_MEMORY / (1024 * 1024)) as usize),
        })
    }

    /// How many requests may go to `registry` at once (adapting).
    pub fn limiter(&self, registry: &crate::model::Registry) -> Arc<crate::limit::Limiter> {
        self.transport.limiter(registry)
    }

    /// Requests made so far, and pull budgets announced (for metrics).
    pub fn traffic(&self) -> &super::Traffic {
        &self.transport.traffic
    }

    fn url(&self, repo: &Repository, rest: &str) -> String {
        format!("{}/v2/{}/{}", self.transport.base_url(&repo.registry), repo.path, rest)
    }

    pub(super) fn http(&self, repo: &Repository) -> &reqwest::Client {
        self.transport.http(&repo.registry)
    }

    pub(super) async fn failure(&self, resp: Response, ctx: &str, repo: &Repository) -> StoreError {
        self.transport.failure(resp, ctx, &repo.registry).await
    }

    /// A refused write, told as what it is where the registry's answer
    /// says so: a missing ECR repository, an immutable tag.
    pub(super) async fn write_failure(&self, resp: Response, ctx: &str, repo: &Repository) -> StoreError {
        let e = self.failure(resp, ctx, repo).await;
        let ErrorKind::Status { status, errors } = &e.kind else {
            return e;
        };
        let immutable = errors
            .iter()
            .find(|a| a.message.to_ascii_lowercase().contains("immutable"));
        let kind = if let Some(a) = immutable.filter(|_| (400..500).contains(status)) {
            ErrorKind::ImmutableTag {
                repository: repo.to_string(),
                message: crate::error::printable(&a.message, 300),
            }
        } else if *status == 404
            && errors.iter().any(|a| a.code == "NAME_UNKNOWN")
            && self.transport.is_ecr(&repo.registry)
        {
            ErrorKind::RepositoryMissing {
                registry: repo.registry.host.clone(),
                repository: repo.path.clone(),
            }
        } else {
            return e;
        };
        StoreError::new(ctx, kind)
    }

    /// Creates the repository first where the registry needs that (ECR
    /// with `create-repositories: true`).
    pub async fn prepare_repository(&self, repo: &Repository) -> Result<()> {
        self.transport.ensure_repository(repo).await
    }

    // ---- tags ------------------------------------------------------------

    /// All tags of a repository, following `Link` pagination; `None` when
    /// the repository does not exist. Each page is one exchange.
    pub async fn list_tags(&self, repo: &Repository) -> Result<Option<Vec<String>>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let ctx = format!("{repo}: list tags");
        let list = Paged {
            at: repo,
            scopes: &pull(repo),
            ctx: &ctx,
            limits: TAG_LIST,
            what: "the tag list",
            max_page: MAX_TAGS_PAGE,
        };
        let read = |body: &[u8]| {
            let page: Page = serde_json::from_slice(body).map_err(|e| protocol(&ctx, format!("bad tag list: {e}")))?;
            Ok(page.tags.unwrap_or_default())
        };
        let early = |status: StatusCode, _: &str| (status == StatusCode::NOT_FOUND).then_some(());
        let Ok(all) = self
            .paged(&list, self.url(repo, "tags/list?n=1000"), read, early)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(
            all.into_iter()
                .filter(|t| {
                    let ok = is_valid_tag(t);
                    if !ok {
                        tracing::warn!(repository = %repo, "ignoring invalid tag name {:?}", t.chars().take(140).collect::<String>());
                    }
                    ok
                })
                .collect(),
        ))
    }

    /// Every item of a `Link`-paginated list (tag lists, the catalog),
    /// from `first` on: each page read by `read` from its JSON body, the
    /// pages bounded by `list.limits`, every `Link` kept on the registry.
    /// `early` may answer a first page's status (and URL) itself, before
    /// anything is read: that answer is returned instead of a list.
    pub(super) async fn paged<E>(
        &self,
        list: &Paged<'_>,
        first: String,
        read: impl Fn(&[u8]) -> Result<Vec<String>>,
        early: impl Fn(StatusCode, &str) -> Option<E>,
    ) -> Result<std::result::Result<Vec<String>, E>> {
        let (repo, ctx) = (list.at, list.ctx);
        let mut next = Some(first);
        let mut all = Vec::new();
        let mut pages = Pages::new(list.limits, list.what);
        while let Some(url) = next.take() {
            pages.ask(&url).map_err(|e| protocol(ctx, e))?;
            let first = pages.count() == 1;
            let page = self
                .transport
                .exchange(
                    repo,
                    list.scopes,
                    ctx,
                    Spend::Free,
                    || self.http(repo).get(&url),
                    |resp| async {
                        if let Some(answer) = first.then(|| early(resp.status(), &url)).flatten() {
                            return Ok(Err(answer));
                        }
                        if !resp.status().is_success() {
                            return Err(self.failure(resp, ctx, repo).await);
                        }
                        let next = next_link(resp.headers(), &url);
                        let body = read_limited(resp, list.max_page, ctx).await?;
                        Ok(Ok((read(&body)?, next, body.len())))
                    },
                )
                .await?;
            let (items, link, size) = match page {
                Ok(page) => page,
                Err(answer) => return Ok(Err(answer)),
            };
            pages
                .read(size, items.len(), link.is_some())
                .map_err(|e| protocol(ctx, e))?;
            next = match link {
                Some(l) => Some(
                    self.same_registry(repo, &l, &format!("{} Link", list.what), ctx)?
                        .to_string(),
                ),
                None => None,
            };
            all.extend(items);
        }
        Ok(Ok(all))
    }

    // ---- manifests -------------------------------------------------------

    /// HEAD a manifest: `None` when the tag or digest does not exist. Any
    /// other failure is an error, never taken for "present" or "absent".
    pub async fn head_manifest(&self, repo: &Repository, reference: &str, write: bool) -> Result<Option<ManifestHead>> {
        let ctx = format!("{repo}: HEAD manifest {reference}");
        let url = self.url(repo, &format!("manifests/{reference}"));
        let build = || self.http(repo).head(&url).header(ACCEPT, MANIFEST_ACCEPT);
        let scopes = rights(repo, write);
        self.transport
            .exchange(repo, &scopes, &ctx, Spend::Free, build, |resp| async {
                match resp.status() {
                    StatusCode::NOT_FOUND => Ok(None),
                    s if s.is_success() => Ok(Some(ManifestHead {
                        digest: header(resp.headers(), DOCKER_CONTENT_DIGEST).and_then(|d| Digest::parse(&d).ok()),
                        media_type: header(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default(),
                    })),
                    _ => Err(self.failure(resp, &ctx, repo).await),
                }
            })
            .await
    }

    /// GET a manifest's bytes and verify them: against `reference` when it
    /// is a digest, else against the registry's `Docker-Content-Digest`.
    /// Damaged content is retried like any other failed exchange.
    pub async fn get_manifest(&self, repo: &Repository, reference: &str) -> Result<FetchedManifest> {
        let ctx = format!("{repo}: GET manifest {reference}");
        let url = self.url(repo, &format!("manifests/{reference}"));
        let build = || self.http(repo).get(&url).header(ACCEPT, MANIFEST_ACCEPT);
        let scopes = pull(repo);
        self.transport
            .exchange(repo, &scopes, &ctx, Spend::Pull, build, |resp| async {
                if !resp.status().is_success() {
                    return Err(self.failure(resp, &ctx, repo).await);
                }
                let media_type = header(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
                let claimed = match header(resp.headers(), DOCKER_CONTENT_DIGEST) {
                    Some(d) => Some(Digest::parse(&d).map_err(|e| protocol(&ctx, e))?),
                    None => None,
                };
                let bytes = bytes::Bytes::from(read_limited(resp, MAX_MANIFEST_BYTES, &ctx).await?);
                let digest = match (Digest::parse(reference).ok(), claimed) {
                    (Some(d), _) | (None, Some(d)) => d,
                    (None, None) => Digest::sha256_of(&bytes),
                };
                let mut v = digest.verifier();
                v.update(&bytes);
                v.finish().map_err(|actual| {
                    let expected = digest.to_string();
                    let actual = actual.to_string();
                    StoreError::new(&ctx, ErrorKind::DigestMismatch { expected, actual })
                })?;
                Ok(FetchedManifest {
                    bytes,
                    media_type,
                    digest,
                })
            })
            .await
    }

    /// PUT the original bytes of a manifest under a tag or its digest.
    pub async fn put_manifest(&self, repo: &Repository, reference: &str, m: &FetchedManifest) -> Result<()> {
        let ctx = format!("{repo}: PUT manifest {reference}");
        let url = self.url(repo, &format!("manifests/{reference}"));
        let build = || {
            self.http(repo)
                .put(&url)
                .header(CONTENT_TYPE, &m.media_type)
                .body(m.bytes.clone())
        };
        self.transport
            .exchange(repo, &push(repo), &ctx, Spend::Free, build, |resp| async {
                if !resp.status().is_success() {
                    return Err(self.write_failure(resp, &ctx, repo).await);
                }
                match header(resp.headers(), DOCKER_CONTENT_DIGEST) {
                    Some(stored)
                        if stored.split(':').next() == Some(m.digest.algorithm()) && stored != m.digest.as_str() =>
                    {
                        let expected = m.digest.to_string();
                        let kind = ErrorKind::DigestMismatch {
                            expected,
                            actual: stored,
                        };
                        // the registry stored other bytes: retrying will not help
                        let mut e = StoreError::new(&ctx, kind);
                        e.retries_spent = true;
                        Err(e)
                    }
                    _ => Ok(()),
                }
            })
            .await
    }

    /// The referrers of a manifest through the OCI 1.1 referrers API,
    /// every page of it, as the descriptors listed; `None` when the
    /// registry does not offer the API (Distribution 2.8 answers 404).
    /// Bounded per manifest ([`REFERRERS`]) and per run
    /// ([`MAX_REFERRERS_PER_RUN`], [`MAX_REFERRER_BYTES_PER_RUN`]).
    pub async fn referrers(&self, repo: &Repository, digest: &Digest) -> Result<Option<Vec<Referrer>>> {
        let ctx = format!("{repo}: referrers of {digest}");
        let scopes = pull(repo);
        let mut next = Some(self.url(repo, &format!("referrers/{digest}")));
        let mut all = Vec::new();
        let mut pages = Pages::new(REFERRERS, "the referrers list");
        while let Some(url) = next.take() {
            pages.ask(&url).map_err(|e| protocol(&ctx, e))?;
            let first = pages.count() == 1;
            let build = || self.http(repo).get(&url).header(ACCEPT, OCI_INDEX);
            let page = self
                .transport
                .exchange(repo, &scopes, &ctx, Spend::Free, build, |resp| async {
                    match resp.status() {
                        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST if first => {
                            return Ok(None);
                        }
                        s if s.is_success() => {}
                        _ => return Err(self.failure(resp, &ctx, repo).await),
                    }
                    let link = next_link(resp.headers(), &url);
                    let body = read_limited(resp, REFERRERS.bytes, &ctx).await?;
                    let list = crate::model::referrers::descriptors(&body).map_err(|e| protocol(&ctx, e))?;
                    Ok(Some((list, link, body.len())))
                })
                .await?;
            let Some((list, link, size)) = page else {
                return Ok(None);
            };
            pages
                .read(size, list.len(), link.is_some())
                .map_err(|e| protocol(&ctx, e))?;
            {
                let mut read = lock(&self.referrers_read);
                read.0 = read.0.saturating_add(list.len());
                read.1 = read.1.saturating_add(size);
                if read.0 > MAX_REFERRERS_PER_RUN || read.1 > MAX_REFERRER_BYTES_PER_RUN {
                    let why = format!(
                        "this run has read more than {MAX_REFERRERS_PER_RUN} referrer descriptors or {} MiB of \
                         referrers lists: refused",
                        MAX_REFERRER_BYTES_PER_RUN >> 20
                    );
                    return Err(protocol(&ctx, why));
                }
            }
            all.extend(list);
            next = match link {
                Some(l) => Some(self.same_registry(repo, &l, "referrers Link", &ctx)?.to_string()),
                None => None,
            };
        }
        Ok(Some(all))
    }

    /// DELETE a manifest by tag or digest (prune). A registry that deletes
    /// only by digest (Distribution 2.8 answers a tag with 400
    /// `DIGEST_INVALID`; others with 405) says [`Delete::NotByTag`].
    pub async fn delete_manifest(&self, repo: &Repository, reference: &str) -> Result<Delete> {
        let ctx = format!("{repo}: DELETE manifest {reference}");
        let url = self.url(repo, &format!("manifests/{reference}"));
        let by_tag = Digest::parse(reference).is_err();
        let scopes = vec![format!("repository:{}:delete", repo.path)];
        let build = || self.http(repo).delete(&url);
        self.transport
            .exchange(repo, &scopes, &ctx, Spend::Free, build, |resp| async {
                match resp.status() {
                    s if s.is_success() => Ok(Delete::Done),
                    StatusCode::NOT_FOUND => Ok(Delete::Absent),
                    StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED if by_tag => Ok(Delete::NotByTag),
                    StatusCode::METHOD_NOT_ALLOWED => {
                        let ctx = format!(
                            "{ctx}: the registry does not allow deletes (Distribution: storage.delete.enabled)"
                        );
                        Err(self.failure(resp, &ctx, repo).await)
                    }
                    _ => Err(self.write_failure(resp, &ctx, repo).await),
                }
            })
            .await
    }

    // ---- blobs -----------------------------------------------------------

    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest, write: bool) -> Result<bool> {
        let ctx = format!("{repo}: HEAD blob {digest}");
        let url = self.url(repo, &format!("blobs/{digest}"));
        let scopes = rights(repo, write);
        self.transport
            .exchange(
                repo,
                &scopes,
                &ctx,
                Spend::Free,
                || self.http(repo).head(&url),
                |resp| async {
                    match resp.status() {
                        s if s.is_success() => Ok(true),
                        StatusCode::NOT_FOUND => Ok(false),
                        _ => Err(self.failure(resp, &ctx, repo).await),
                    }
                },
            )
            .await
    }

    /// GET a blob from `offset` on (`Range: bytes=OFFSET-` when that is
    /// not 0); the caller streams and verifies the body. Only the response
    /// head is retried here: a body that breaks later is the copy engine's
    /// to resume. Returns the answer and where its body starts in the
    /// blob: `offset` for a 206 with exactly the rest of a blob of `size`
    /// bytes, 0 for a 200 (the whole blob, from a registry or object store
    /// that ignores ranges). A 206 with any other range or length is
    /// refused: the blob is asked for again whole, and this registry is
    /// asked for no more ranges in this run.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        offset: u64,
        size: Option<u64>,
    ) -> Result<(Response, u64)> {
        let ranged = offset > 0 && !lock(&self.no_ranges).contains(&repo.registry.host);
        let resp = self.get_blob_once(repo, digest, ranged.then_some(offset)).await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            return Ok((resp, 0));
        }
        let range = header(resp.headers(), CONTENT_RANGE.as_str());
        let parsed = range.as_deref().and_then(content_range);
        let length_fits = match (resp.content_length(), parsed) {
            (Some(len), Some(r)) => len == r.last - r.first + 1,
            _ => true,
        };
        if parsed.is_some_and(|r| is_rest(&r, offset, size)) && length_fits {
            return Ok((resp, offset));
        }
        drop(resp);
        let shown = printable(range.as_deref().unwrap_or("none"), 100);
        tracing::warn!(
            "{repo}: GET blob {digest}: asked for bytes {offset}- and the answer's Content-Range is {shown}: refused; \
             the blob is read again whole, and no more ranges are asked of {} in this run",
            repo.registry
        );
        lock(&self.no_ranges).insert(repo.registry.host.clone());
        Ok((self.get_blob_once(repo, digest, None).await?, 0))
    }

    async fn get_blob_once(&self, repo: &Repository, digest: &Digest, from: Option<u64>) -> Result<Response> {
        let ctx = match from {
            Some(offset) => format!("{repo}: GET blob {digest} from byte {offset}"),
            None => format!("{repo}: GET blob {digest}"),
        };
        let url = self.url(repo, &format!("blobs/{digest}"));
        let build = || {
            let get = self.http(repo).get(&url);
            match from {
                Some(offset) => get.header(RANGE, format!("bytes={offset}-")),
                None => get,
            }
        };
        self.transport
            .exchange(repo, &pull(repo), &ctx, Spend::Pull, build, |resp| async {
                let status = resp.status();
                // a 206 only to a range asked for
                if !status.is_success() || (status == StatusCode::PARTIAL_CONTENT && from.is_none()) {
                    return Err(self.failure(resp, &ctx, repo).await);
                }
                Ok(resp)
            })
            .await
    }

    /// Asks the registry to mount `digest` from `from` (same registry).
    pub async fn mount_blob(&self, repo: &Repository, digest: &Digest, from: &Repository) -> Result<Mount> {
        let ctx = format!("{repo}: mount blob {digest} from {}", from.path);
        let mut scopes = push(repo);
        scopes.extend(pull(from));
        let mut url = Url::parse(&self.url(repo, "blobs/uploads/")).map_err(|e| protocol(&ctx, e))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", &from.path);
        let build = || self.http(repo).post(url.clone()).header(CONTENT_LENGTH, "0");
        self.transport
            .exchange(repo, &scopes, &ctx, Spend::Free, build, |resp| async {
                match resp.status() {
                    StatusCode::CREATED => Ok(Mount::Mounted),
                    StatusCode::ACCEPTED => Ok(Mount::Upload(self.location(repo, resp.headers(), &ctx)?)),
                    _ => Err(self.write_failure(resp, &ctx, repo).await),
                }
            })
            .await
    }

    /// Opens an upload session and returns its location.
    pub async fn start_upload(&self, repo: &Repository) -> Result<Url> {
        let ctx = format!("{repo}: start upload");
        let url = self.url(repo, "blobs/uploads/");
        let build = || self.http(repo).post(&url).header(CONTENT_LENGTH, "0");
        self.transport
            .exchange(repo, &push(repo), &ctx, Spend::Free, build, |resp| async {
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.write_failure(resp, &ctx, repo).await);
                }
                self.location(repo, resp.headers(), &ctx)
            })
            .await
    }

    /// An upload `Location`, resolved against the registry's URL.
    pub(super) fn location(&self, repo: &Repository, headers: &HeaderMap, ctx: &str) -> Result<Url> {
        let loc = header(headers, LOCATION.as_str()).ok_or_else(|| protocol(ctx, "upload response has no Location"))?;
        let base =
            Url::parse(&format!("{}/", self.transport.base_url(&repo.registry))).map_err(|e| protocol(ctx, e))?;
        let url = base.join(&loc).map_err(|e| protocol(ctx, e))?;
        self.same_registry(repo, url.as_str(), "upload Location", ctx)
    }

    /// A URL the registry told us to use next (`Link`, `Location`), only if
    /// it stays on the registry's own scheme, host and port: following it
    /// elsewhere would either carry our credentials there or (without
    /// them) fail with a misleading "unauthorized".
    pub(super) fn same_registry(&self, repo: &Repository, url: &str, what: &str, ctx: &str) -> Result<Url> {
        let base = Url::parse(&self.transport.base_url(&repo.registry)).map_err(|e| protocol(ctx, e))?;
        let url = Url::parse(url).map_err(|e| protocol(ctx, format!("{what}: {e}")))?;
        if !same_origin(&url, &base) {
            let shown = printable(url.as_str(), 200);
            let why =
                format!("{what} points to {shown}, away from {base}: refused (credentials never leave the registry)");
            return Err(protocol(ctx, why));
        }
        Ok(url)
    }
}
