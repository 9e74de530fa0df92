//! The Helm chart (charts/replicant), with a real helm 3: linted and
//! rendered for the default values, the original Go chart's values and a
//! file setting every value; the manifests validated against the Kubernetes
//! schemas (kubernetes-validate); and the rendered pod spec run as it is
//! (command, args, env, mounted config and secrets) against local registries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use base64::Engine;
use serde_json::Value;
use testkit::container::{Buildah, Mount, RunSpec, repo_root, skipped, static_binary};
use testkit::tools::tool;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn chart() -> PathBuf {
    repo_root().join("charts/replicant")
}

fn helm() -> Command {
    Command::new(tool("HELM", "helm"))
}

/// `helm template` with `args`; the output text, or helm's complaint.
fn template(args: &[&str]) -> Result<String, String> {
    let out = helm()
        .args(["template", "rel"])
        .arg(chart())
        .args(["--namespace", "mirror"])
        .args(args)
        .output()
        .expect("run helm");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The rendered objects, by "Kind/name".
fn objects(args: &[&str]) -> BTreeMap<String, Value> {
    let text = template(args).unwrap_or_else(|e| panic!("helm template {args:?}: {e}"));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("rendered YAML");
    docs.into_iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            (
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap()
                ),
                d,
            )
        })
        .collect()
}

fn values(file: &str) -> String {
    chart().join("ci").join(file).display().to_string()
}

fn pod(objects: &BTreeMap<String, Value>) -> &Value {
    &objects["CronJob/rel-replicant"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
}

fn env_of(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect()
}

/// Validates rendered manifests against the schemas of the oldest Kubernetes
/// the validator knows (1.25; the chart needs ≥ 1.24) and the newest.
fn kubernetes_validate(manifests: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, manifests).unwrap();
    for version in [Some("1.25.0"), None] {
        let mut cmd = Command::new(tool("KUBERNETES_VALIDATE", "kubernetes-validate"));
        cmd.args(["--strict", "--quiet"]);
        if let Some(v) = version {
            cmd.args(["-k", v]);
        }
        let out = cmd.arg(&file).output().expect("run kubernetes-validate");
        if !out.status.success() {
            return Err(format!(
                "kubernetes {}: {}{}",
                version.unwrap_or("latest"),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

#[test]
fn chart_lints_and_renders_valid_kubernetes_objects() {
    for file in [None, Some("original-values.yaml"), Some("all-options-values.yaml")] {
        let args: Vec<String> = file.map(|f| vec!["-f".into(), values(f)]).unwrap_or_default();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let lint = helm()
            .args(["lint", "--strict"])
            .arg(chart())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "helm lint {file:?}: {}",
            String::from_utf8_lossy(&lint.stdout)
        );
        let rendered = template(&args).unwrap();
        kubernetes_validate(&rendered).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    }
    // and the validator does reject what Kubernetes would
    let broken = template(&[]).unwrap().replace(
        "restartPolicy: Never",
        "restartPolicy: Never\n          restartPolicyy: Never",
    );
    assert!(
        kubernetes_validate(&broken).is_err(),
        "an unknown pod field passed validation"
    );
}

#[test]
fn default_values_render_a_hardened_cronjob() {
    let o = objects(&[]);
    let cron = &o["CronJob/rel-replicant"];
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(cron["spec"]["schedule"], "0 12 * * *");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cron["spec"]["startingDeadlineSeconds"], 3600);
    assert_eq!(cron["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cron["spec"]["suspend"], false);
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 1);
    assert_eq!(job["activeDeadlineSeconds"], 21600);
    assert!(job.get("completionMode").is_none(), "{job}");
    let pod = pod(&o);
    assert_eq!(pod["restartPolicy"], "Never");
    // above replicant's own 20 s shutdown grace
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 20);
    assert_eq!(pod["serviceAccountName"], "rel-replicant");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], format!("ghcr.io/replicant/replicant:{VERSION}"));
    assert!(c.get("command").is_none(), "the image's entrypoint runs: {c}");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/config");
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "rel-replicant-config");
    assert!(o.contains_key("ServiceAccount/rel-replicant"));
    assert!(o.contains_key("ConfigMap/rel-replicant-config"));
    assert_eq!(o.len(), 3, "{:?}", o.keys());
}

#[test]
fn original_chart_values_keep_their_meaning() {
    let o = objects(&["-f", &values("original-values.yaml")]);
    let pod = pod(&o);
    let c = &pod["containers"][0];
    // image.tag left empty: the chart's appVersion, as in the original
    assert_eq!(c["image"], format!("docker.io/tammert/replicant:{VERSION}"));
    assert_eq!(o["CronJob/rel-replicant"]["spec"]["schedule"], "0 12 * * *");
    let env = env_of(c);
    assert_eq!(env["REPLICANT_CONFIG"], "/config/replicant.yaml");
    assert_eq!(env["GOOGLE_APPLICATION_CREDENTIALS"], "/secrets/key.json");
    // secret variables in a Secret, all of them through envFrom
    let secret = &o["Secret/rel-replicant-env"];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["AWS_DEFAULT_REGION"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, b"eu-central-1");
    assert_eq!(secret["data"].as_object().unwrap().len(), 5);
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "rel-replicant-env");
    // the Google key where the original mounted it
    let google = &o["Secret/rel-replicant-google"];
    assert!(google["data"]["key.json"].is_string());
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "google-credentials")
        .unwrap();
    assert_eq!(mount["mountPath"], "/secrets");
    let config: Value = serde_saphyr::from_str(
        o["ConfigMap/rel-replicant-config"]["data"]["replicant.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config["images"]["cert-manager"]["mode"], "semver");
    assert!(o.contains_key("ServiceAccount/rel-replicant"));
}

#[test]
fn shards_render_an_indexed_job() {
    let o = objects(&["--set", "shards=3"]);
    let job = &o["CronJob/rel-replicant"]["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    assert_eq!(job["completions"], 3);
    assert_eq!(job["parallelism"], 3);
    assert_eq!(env_of(&pod(&o)["containers"][0])["REPLICANT_SHARDS"], "3");
    // pushes of two releases never share a Pushgateway group
    assert_eq!(
        env_of(&pod(&o)["containers"][0])["REPLICANT_PUSHGATEWAY_GROUPING"],
        "release=rel"
    );
}

#[test]
fn every_option_lands_where_it_belongs() {
    let o = objects(&["-f", &values("all-options-values.yaml")]);
    let cron = &o["CronJob/rel-replicant"];
    assert_eq!(cron["spec"]["timeZone"], "Europe/Amsterdam");
    assert_eq!(cron["spec"]["suspend"], true);
    assert_eq!(cron["spec"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"], 86400);
    let pod = pod(&o);
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        "registry.example.com/tools/replicant@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(c["args"], serde_json::json!(["--jobs", "8", "--log-format", "json"]));
    let env = env_of(c);
    assert_eq!(env["DOCKER_CONFIG"], "/docker");
    assert_eq!(env["GOOGLE_APPLICATION_CREDENTIALS"], "/secrets/key.json");
    assert_eq!(env["REPLICANT_SHARDS"], "4");
    assert_eq!(c["envFrom"][1]["secretRef"]["name"], "example-cloud-keys");
    let volumes = pod["volumes"].as_array().unwrap();
    let google = volumes.iter().find(|v| v["name"] == "google-credentials").unwrap();
    assert_eq!(google["secret"]["secretName"], "example-google-key");
    assert_eq!(google["secret"]["items"][0]["key"], "service-account.json");
    let docker = volumes.iter().find(|v| v["name"] == "docker-config").unwrap();
    assert_eq!(docker["secret"]["secretName"], "example-pull-secret");
    assert_eq!(docker["secret"]["items"][0]["path"], "config.json");
    assert!(volumes.iter().any(|v| v["name"] == "layouts"));
    let sa = &o["ServiceAccount/mirror"];
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/mirror"
    );
    assert_eq!(sa["metadata"]["labels"]["azure.workload.identity/use"], "true");
    assert_eq!(pod["serviceAccountName"], "mirror");
    assert_eq!(pod["priorityClassName"], "low-priority");
    assert_eq!(pod["imagePullSecrets"][0]["name"], "example-pull-secret");
    assert_eq!(pod["tolerations"][0]["value"], "mirror");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
}

#[test]
fn values_schema_rejects_what_cannot_work() {
    for (set, complaint) in [
        ("shards=0", "shards"),
        ("terminationGracePeriodSeconds=10", "terminationGracePeriodSeconds"),
        ("cronschedule=@daily", "cronschedule"),
        ("cronJob.concurrencyPolicy=Sometimes", "concurrencyPolicy"),
        ("image.digest=latest", "digest"),
    ] {
        let err = template(&["--set", set]).expect_err(set);
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{set}: {err}"
        );
        assert!(err.contains(complaint), "{set}: {err}");
    }
}

#[test]
fn notes_say_how_to_run_now() {
    // helm renders NOTES.txt only on install; render it as a template of a copy
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("replicant");
    let status = Command::new("cp").arg("-R").arg(chart()).arg(&copy).status().unwrap();
    assert!(status.success());
    std::fs::rename(copy.join("templates/NOTES.txt"), copy.join("templates/notes.txt")).unwrap();
    let render = |args: &[&str]| {
        let out = helm()
            .args(["template", "rel"])
            .arg(&copy)
            .args(["--namespace", "mirror", "--show-only", "templates/notes.txt", "--debug"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let notes = render(&["-f", &values("original-values.yaml"), "--set", "shards=2"]);
    assert!(
        notes.contains("kubectl create job --namespace mirror --from=cronjob/rel-replicant rel-replicant-manual-"),
        "{notes}"
    );
    assert!(
        notes.contains("4 image(s)") && notes.contains("split over 2 pods"),
        "{notes}"
    );
    assert!(!notes.contains("WARNING"), "{notes}");
    assert!(render(&[]).contains("WARNING: config.images is empty"));
    let notes = render(&["--set", "existingConfigMap=my-mirror"]);
    assert!(
        notes.contains(
            "replicant will mirror the images of the ConfigMap my-mirror (key replicant.yaml) on the schedule"
        ),
        "{notes}"
    );
    assert!(!notes.contains("WARNING"), "{notes}");
}

/// Files for the volumes a rendered pod mounts, from the rendered (or
/// `extra`) ConfigMaps and Secrets, in `dir`; returns the mounts.
fn materialise(
    pod: &Value,
    objects: &BTreeMap<String, Value>,
    extra: &BTreeMap<String, Value>,
    dir: &Path,
) -> Vec<Mount> {
    let container = &pod["containers"][0];
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        let (kind, object_name, items) = if let Some(cm) = volume.get("configMap") {
            ("ConfigMap", cm["name"].as_str().unwrap(), &cm["items"])
        } else if let Some(s) = volume.get("secret") {
            ("Secret", s["secretName"].as_str().unwrap(), &s["items"])
        } else {
            panic!("volume {volume} is neither a ConfigMap nor a Secret");
        };
        let key = format!("{kind}/{object_name}");
        let object = objects
            .get(&key)
            .or_else(|| extra.get(&key))
            .unwrap_or_else(|| panic!("{key} not rendered"));
        let data: BTreeMap<String, Vec<u8>> = object["data"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().unwrap();
                let bytes = if kind == "Secret" {
                    b64.decode(v).unwrap()
                } else {
                    v.as_bytes().to_vec()
                };
                (k.clone(), bytes)
            })
            .collect();
        let at = dir.join(name);
        std::fs::create_dir_all(&at).unwrap();
        match items.as_array() {
            Some(items) => {
                for item in items {
                    let path = at.join(item["path"].as_str().unwrap());
                    std::fs::write(path, &data[item["key"].as_str().unwrap()]).unwrap();
                }
            }
            None => {
                for (k, v) in &data {
                    std::fs::write(at.join(k), v).unwrap();
                }
            }
        }
        mounts.push(Mount {
            source: at,
            target: m["mountPath"].as_str().unwrap().to_string(),
            read_only: m["readOnly"] == true,
        });
    }
    mounts
}

/// The container's environment as Kubernetes builds it: `env` values, then
/// every key of each `envFrom` Secret.
fn environment(pod: &Value, objects: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    let container = &pod["containers"][0];
    let mut env: Vec<(String, String)> = env_of(container).into_iter().collect();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let secret = &objects[&format!("Secret/{}", from["secretRef"]["name"].as_str().unwrap())];
        for (k, v) in secret["data"].as_object().unwrap() {
            let v = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            env.push((k.clone(), String::from_utf8(v).unwrap()));
        }
    }
    env
}

#[test]
fn the_rendered_pod_spec_mirrors_local_registries() {
    let test = "the_rendered_pod_spec_mirrors_local_registries";
    let b = match Buildah::new() {
        Ok(b) => b,
        Err(reason) => return skipped(test, &reason),
    };
    let image = b.assemble(static_binary(), "localhost/replicant:chart", VERSION);

    // a TLS source with a private CA (mounted from a ConfigMap of the
    // user's, as extraVolumes), a destination that wants a password (from
    // the chart's Docker config Secret)
    let ca = testkit::tls::TestCa::new();
    let src = Registry::start_tls(Auth::None, &ca);
    let dst = Registry::start(Auth::Basic(vec![("mirror".into(), "pw-in-secret".into())]));
    let sc = TestClient::https(&src.host(), &ca.ca_pem);
    let dc = TestClient::new(&dst.host(), Some(("mirror", "pw-in-secret")));
    let mut generator = ImageGen::default();
    let names = ["alpha", "beta", "gamma", "delta"];
    for name in names {
        sc.push_image(
            &format!("lib/{name}"),
            &generator.multi_arch(Format::Oci, 1000, &[]),
            "1.0.0",
        );
    }
    let mut images = serde_json::Map::new();
    for name in names {
        images.insert(
            name.into(),
            serde_json::json!({"source": format!("{}/lib/{name}", src.host()), "destination": format!("{}/mirror/{name}", dst.host())}),
        );
    }
    let config = serde_json::json!({
        "registries": {src.host(): {"ca-file": "/etc/replicant/ca/ca.pem"}},
        "images": images,
    });
    let docker_config = serde_json::json!({"auths": {dst.host(): {"username": "mirror", "password": "pw-in-secret"}}});
    let values = serde_json::json!({
        "config": config,
        "shards": 2,
        "args": ["--max-connections", "4"],
        "environmentVariables": {"REPLICANT_DEBUG": "false"},
        "secretEnvironmentVariables": {"REPLICANT_LOG_FORMAT": "json"},
        "dockerConfig": {"json": docker_config.to_string()},
        "extraVolumes": [{"name": "ca", "configMap": {"name": "registry-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/replicant/ca", "readOnly": true}],
    });
    let ws = Workspace::new();
    let values_file = ws.path("values.json");
    std::fs::write(&values_file, values.to_string()).unwrap();
    let o = objects(&["-f", values_file.to_str().unwrap()]);
    let pod = pod(&o);
    let container = &pod["containers"][0];
    let extra = BTreeMap::from([(
        "ConfigMap/registry-ca".to_string(),
        serde_json::json!({"data": {"ca.pem": ca.ca_pem}}),
    )]);
    let files = ws.path("volumes");
    let spec_for = |index: usize| RunSpec {
        user: Some(format!(
            "{}:{}",
            pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
        )),
        env: {
            let mut env = environment(pod, &o);
            // what Kubernetes adds to each pod of an Indexed Job
            env.push(("JOB_COMPLETION_INDEX".into(), index.to_string()));
            env
        },
        mounts: materialise(pod, &o, &extra, &files.join(index.to_string())),
        command: container.get("command").map(|c| {
            c.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        }),
        args: container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
        read_only_root: container["securityContext"]["readOnlyRootFilesystem"] == true,
    };
    let mut mirrored = Vec::new();
    for index in 0..2 {
        let out = output(b.run(&image, &spec_for(index)));
        assert_eq!(out.code, 0, "pod {index}: {out:?}");
        // REPLICANT_LOG_FORMAT came from the Secret: the summary is JSON
        let report: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        assert_eq!(report["shard"]["index"], index);
        assert_eq!(report["shard"]["count"], 2);
        for img in report["images"].as_array().unwrap() {
            mirrored.push(img["name"].as_str().unwrap().to_string());
        }
        assert!(!out.all().contains("pw-in-secret"), "{out:?}");
    }
    mirrored.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(mirrored, want, "each image mirrored by exactly one pod");
    for name in names {
        assert_mirror(&sc, &format!("lib/{name}"), &dc, &format!("mirror/{name}"), &["1.0.0"]);
    }
}

#[test]
fn the_documented_alerts_install_as_a_prometheus_rule_when_asked() {
    assert!(
        !objects(&[]).keys().any(|k| k.starts_with("PrometheusRule/")),
        "off by default"
    );
    let args = [
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=prom",
    ];
    let lint = helm()
        .args(["lint", "--strict"])
        .arg(chart())
        .args(args)
        .output()
        .unwrap();
    assert!(lint.status.success(), "{}", String::from_utf8_lossy(&lint.stdout));
    let objects = objects(&args);
    let rule = &objects["PrometheusRule/rel-replicant"];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    assert_eq!(rule["metadata"]["labels"]["app.kubernetes.io/instance"], "rel");
    let documented: Value = serde_saphyr::from_str(&crate::metrics::documented_alerts()).unwrap();
    assert_eq!(rule["spec"], documented, "the rule's spec is docs/metrics.md's alerts");
    // what the Operator hands Prometheus: its spec, as rules promtool reads
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.json"),
        serde_json::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let (passed, said) = crate::metrics::promtool(&["check", "rules", "rules.json"], dir.path());
    assert!(passed, "{said}");
}
