//! The registry client against a real registry: pagination, uploads of
//! unknown length, errors for missing things.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;
use replicant::credentials::Chain;
use replicant::model::Digest;
use replicant::model::Repository;
use replicant::registry::{Client, Mount};

fn client() -> Client {
    Client::new(Arc::new(Chain::without_docker_config()), &Default::default()).unwrap()
}

/// A whole body as a stream of one chunk.
fn one_chunk(data: Vec<u8>) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::iter([Ok(bytes::Bytes::from(data))])
}

/// The test client is blocking, so async parts run on their own runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

/// Distribution 2.8 ignores `n` on tag lists, so a small proxy in front of
/// the real registry pages its full list: `n` tags a page, `Link` to the next.
fn paging_proxy(upstream: String, page: usize, served: Arc<AtomicUsize>) -> testkit::http::Server {
    testkit::http::Server::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        if path == "/v2/" {
            return testkit::http::Response::json(200, "{}".into());
        }
        served.fetch_add(1, Ordering::SeqCst);
        testkit::crypto();
        let full: serde_json::Value = reqwest::blocking::get(format!("{upstream}{path}"))
            .unwrap()
            .json()
            .unwrap();
        let mut tags: Vec<String> = full["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        tags.sort();
        let q = req.query();
        let n: usize = q
            .iter()
            .find(|(k, _)| k == "n")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(page)
            .min(page);
        let last = q.iter().find(|(k, _)| k == "last").map(|(_, v)| v.clone());
        let rest: Vec<String> = tags
            .into_iter()
            .filter(|t| last.as_ref().is_none_or(|l| t > l))
            .collect();
        let this: Vec<String> = rest.iter().take(n).cloned().collect();
        let mut resp = testkit::http::Response::json(200, serde_json::json!({"name": "x", "tags": this}).to_string());
        if rest.len() > n {
            let link = format!("<{path}?n={n}&last={}>; rel=\"next\"", this.last().unwrap());
            resp.headers.push(("Link".into(), link));
        }
        resp
    })
}

#[test]
fn tag_lists_follow_link_pagination() {
    let reg = Registry::start(Auth::None);
    let tc = TestClient::new(&reg.host(), None);
    let img = ImageGen::default().image(Format::Oci, &[1], &[], ("linux", "amd64"));
    tc.push_image("many/tags", &img, "seed");
    for i in 0..250 {
        tc.push_manifest("many/tags", &format!("1.0.{i}"), &img.bytes, &img.media_type);
    }
    let served = Arc::new(AtomicUsize::new(0));
    let proxy = paging_proxy(reg.url(), 100, served.clone());
    let repo = Repository::parse(&format!("127.0.0.1:{}/many/tags", proxy.port)).unwrap();
    let mut listed = block_on(client().list_tags(&repo)).unwrap().unwrap();
    listed.sort();
    let mut want: Vec<String> = (0..250).map(|i| format!("1.0.{i}")).collect();
    want.push("seed".into());
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(
        served.load(Ordering::SeqCst),
        3,
        "251 tags at 100 a page take three pages"
    );
    let missing = Repository::parse(&format!("{}/no/such", reg.host())).unwrap();
    assert_eq!(block_on(client().list_tags(&missing)).unwrap(), None);
}

#[test]
fn uploads_of_unknown_length_use_a_streamed_patch() {
    let reg = Registry::start(Auth::None);
    let repo = Repository::parse(&format!("{}/up/load", reg.host())).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let c = client();
    block_on(async {
        let location = c.start_upload(&repo).await.unwrap();
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
            .chunks(65536)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let body = futures_util::stream::iter(chunks);
        c.upload_blob(&repo, location, &digest, None, body).await.unwrap();
        assert!(c.blob_exists(&repo, &digest, false).await.unwrap());
        assert!(
            reg.log().contains("\"PATCH /v2/up/load/blobs/uploads/"),
            "a PATCH was used"
        );

        // a known length goes in one PUT
        let small = b"known length".to_vec();
        let d2 = Digest::sha256_of(&small);
        let location = c.start_upload(&repo).await.unwrap();
        c.upload_blob(&repo, location, &d2, Some(small.len() as u64), one_chunk(small))
            .await
            .unwrap();
        assert!(c.blob_exists(&repo, &d2, false).await.unwrap());

        // a missing manifest is None on HEAD and a clear error on GET
        assert_eq!(c.head_manifest(&repo, "nope", false).await.unwrap(), None);
        let err = c.get_manifest(&repo, "nope").await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{}/up/load: GET manifest nope: HTTP 404 MANIFEST_UNKNOWN",
                reg.host()
            )),
            "{err}"
        );
    });
}

#[test]
fn a_refused_mount_falls_back_to_the_upload_session_it_opened() {
    let reg = Registry::start(Auth::None);
    let tc = TestClient::new(&reg.host(), None);
    let img = ImageGen::default().image(Format::Oci, &[5000], &[], ("linux", "amd64"));
    tc.push_image("has/blob", &img, "1.0.0");
    let layer = &img.blobs[1];
    let digest = Digest::parse(&layer.digest).unwrap();
    let c = client();
    let target = Repository::parse(&format!("{}/wants/blob", reg.host())).unwrap();
    let wrong_source = Repository::parse(&format!("{}/empty/repo", reg.host())).unwrap();
    let right_source = Repository::parse(&format!("{}/has/blob", reg.host())).unwrap();
    block_on(async {
        // the blob is not in `empty/repo`: the registry answers 202 with a session
        let location = match c.mount_blob(&target, &digest, &wrong_source).await.unwrap() {
            Mount::Upload(location) => location,
            Mount::Mounted => panic!("mounted from a repository without the blob"),
        };
        let body = one_chunk(layer.data.clone());
        c.upload_blob(&target, location, &digest, Some(layer.data.len() as u64), body)
            .await
            .unwrap();
        assert!(c.blob_exists(&target, &digest, false).await.unwrap());
        // from the right repository it is a real mount
        let other = Repository::parse(&format!("{}/also/wants", reg.host())).unwrap();
        assert!(matches!(
            c.mount_blob(&other, &digest, &right_source).await.unwrap(),
            Mount::Mounted
        ));
        assert!(c.blob_exists(&other, &digest, false).await.unwrap());
    });
}
