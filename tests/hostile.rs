//! Hostile registries: what a real registry never sends (oversized or
//! malformed answers) comes from a small stand-in server, and each is a
//! clear error for that image, never a panic or unbounded memory.

mod support;

use support::*;
use testkit::http::{Response, Server};

/// A registry stand-in whose answers depend on the repository name.
fn hostile() -> Server {
    Server::start(|req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        let json = |body: String| Response::json(200, body);
        if path == "/v2/" {
            return json("{}".into());
        }
        let repo = path
            .trim_start_matches("/v2/")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        if path.ends_with("/tags/list") {
            if repo == "huge-tags" {
                // 9 MiB of tag names
                let tags: Vec<String> = (0..400_000)
                    .map(|i| format!("\"1.0.{i}-{}\"", "x".repeat(10)))
                    .collect();
                return json(format!("{{\"tags\":[{}]}}", tags.join(",")));
            }
            return json("{\"tags\":[\"1.0.0\"]}".into());
        }
        let manifest = match repo.as_str() {
            "big-manifest" => format!("{{\"schemaVersion\":2,\"pad\":\"{}\"}}", "x".repeat(5 << 20)),
            _ => "{ not json".to_string(),
        };
        let digest = testkit::image::sha256(manifest.as_bytes());
        let headers = vec![
            (
                "Content-Type".to_string(),
                "application/vnd.oci.image.manifest.v1+json".to_string(),
            ),
            ("Docker-Content-Digest".to_string(), digest),
        ];
        let body = if req.method == "HEAD" {
            vec![]
        } else {
            manifest.into_bytes()
        };
        Response {
            status: 200,
            headers,
            body,
        }
    })
}

#[test]
fn oversized_and_malformed_answers_fail_the_image_clearly() {
    let server = hostile();
    let h = format!("127.0.0.1:{}", server.port);
    let bad_auth = Server::start(|_| Response {
        status: 401,
        headers: vec![("WWW-Authenticate".into(), "Bearer realm=\"unterminated".into())],
        body: vec![],
    });
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "mode: all\nimages:\n  big:\n    source: {h}/big-manifest\n    destination: {d}/m/big\n  tags:\n    source: {h}/huge-tags\n    destination: {d}/m/tags\n  json:\n    source: {h}/bad-json\n    destination: {d}/m/json\n  auth:\n    source: 127.0.0.1:{}/anything\n    destination: {d}/m/auth\n",
        bad_auth.port,
        d = dst.host()
    ));
    let run = ws.run(&cfg, &["--retries", "0"]);
    assert_eq!(run.code, 1, "{run:?}");
    for needle in [
        "big-manifest: GET manifest sha256:",
        "response body larger than 4194304 bytes",
        "huge-tags: list tags: unexpected response: response body larger than 8388608 bytes",
        "manifest is not valid JSON",
        "unusable WWW-Authenticate challenge \"Bearer realm=\"unterminated\"",
    ] {
        assert!(run.stdout.contains(needle), "missing {needle:?}: {run:?}");
    }
    assert!(run.stdout.contains("4 failed (big, tags, json, auth)"), "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
}
