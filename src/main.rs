//! The `replicant` binary: command line, logging, exit codes. Everything
//! else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};

use replicant::config;
use replicant::credentials::Chain;
use replicant::defaults;
use replicant::outputs::Outputs;
use replicant::progress;
use replicant::push::Pushgateway;
use replicant::registry::Client;
use replicant::report::{RunReport, ShardReport};
use replicant::run::{self, Interrupt};
use replicant::settings::{RunOptions, Settings, parse_bool, parse_chunk_size};
use replicant::shard::Shard;

/// Exit code for an unusable configuration or command line.
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Mirror container images between registries over the registry HTTP API.
///
/// Each run is one pass over the configuration file. Exit codes: 0 every
/// image succeeded, 1 at least one image failed, 2 the configuration or the
/// command line is unusable (no registry was contacted; a --pushgateway
/// still gets the failure).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The YAML configuration file.
    #[arg(
        short = 'c',
        long,
        env = "REPLICANT_CONFIG_FILE",
        default_value = "/config/replicant.yaml",
        global = true
    )]
    config_file: PathBuf,

    #[command(subcommand)]
    command: Option<Command>,

    /// Log at debug level.
    #[arg(short = 'd', long, env = "REPLICANT_DEBUG", action = ArgAction::SetTrue, value_parser = parse_bool)]
    debug: bool,

    /// Stop at the first error instead of going on with the other images.
    #[arg(short = 'e', long, env = "REPLICANT_EXIT_ON_ERROR", action = ArgAction::SetTrue, value_parser = parse_bool)]
    exit_on_error: bool,

    /// List and compare only: print what would be copied or replaced, write nothing.
    #[arg(long, env = "REPLICANT_DRY_RUN", action = ArgAction::SetTrue, value_parser = parse_bool)]
    dry_run: bool,

    /// Check that the mirror is complete, writing nothing: plan as
    /// --dry-run does, list what a run would copy, replace or delete
    /// (one line each), and exit 1 when there is anything, else 0.
    #[arg(long, env = "REPLICANT_CHECK", action = ArgAction::SetTrue, value_parser = parse_bool)]
    check: bool,

    /// Fail an image that selects no tags from a source that has some (a
    /// mistyped compatibility, a pinned-major with no release); without it,
    /// such an image is a warning and "needs attention" in the summary.
    #[arg(long, env = "REPLICANT_FAIL_ON_EMPTY", action = ArgAction::SetTrue, value_parser = parse_bool)]
    fail_on_empty: bool,

    /// Tags copied at once (images are planned four times as many at once).
    #[arg(short = 'j', long, env = "REPLICANT_JOBS", default_value_t = defaults::JOBS as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,

    /// The most requests and blob transfers in flight per registry (and
    /// blob transfers per OCI layout): the ceiling of a limit that adapts,
    /// growing while answers come back fine and halving on 429 or 503 (or
    /// no answer at all).
    #[arg(long, env = "REPLICANT_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    max_connections: u16,

    /// Further attempts after a failure that may pass (network, timeout, 408,
    /// 429, 5xx, damaged content), with backoff.
    #[arg(long, env = "REPLICANT_RETRIES", default_value_t = defaults::RETRIES, value_parser = clap::value_parser!(u32).range(0..=20))]
    retries: u32,

    /// Seconds to connect, and the longest a registry may stay silent mid-request.
    #[arg(long, env = "REPLICANT_TIMEOUT", default_value_t = defaults::TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,

    /// Seconds one small response (a manifest, a tag-list page, a token, an
    /// error) may take in all, however it trickles in.
    #[arg(long, env = "REPLICANT_RESPONSE_DEADLINE", default_value_t = defaults::RESPONSE_DEADLINE_SECONDS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    response_deadline: u64,

    /// Bytes per second, averaged over --timeout seconds, below which a blob
    /// download is cut off and resumed from where it stood (0: no minimum).
    #[arg(long, env = "REPLICANT_MIN_TRANSFER_RATE", default_value_t = defaults::MIN_TRANSFER_RATE)]
    min_transfer_rate: u64,

    /// Blobs of 64 MiB and more go to a registry as PATCH requests with a
    /// Content-Range, so that a broken upload sends only the rest again:
    /// `auto` (the whole blob in one request, the rest read again from the
    /// source after a break; 16 MiB chunks held in memory for a registry
    /// that drops a broken one) or chunks of a fixed size from 1MiB to
    /// 32MiB, each held (ECR: at least 5MiB).
    #[arg(long, env = "REPLICANT_CHUNK_SIZE", value_name = "SIZE", default_value = "auto", value_parser = parse_chunk_size)]
    chunk_size: replicant::settings::ChunkSize,

    /// Run only shard I of N (I from 0): the images whose stable hash of
    /// their name falls in it. Without it, a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX is the shard when REPLICANT_SHARDS gives N.
    #[arg(long, env = "REPLICANT_SHARD", value_name = "I/N")]
    shard: Option<Shard>,

    /// Progress while copies run: `auto` shows a live display when stderr
    /// is a terminal (text logs), else a log line per running image every
    /// --progress-interval seconds, and nothing with --quiet; `always` also
    /// with --quiet; `never` not at all.
    #[arg(
        long,
        env = "REPLICANT_PROGRESS",
        value_enum,
        ignore_case = true,
        default_value = "auto"
    )]
    progress: ProgressChoice,

    /// Seconds between progress lines.
    #[arg(long, env = "REPLICANT_PROGRESS_INTERVAL", default_value_t = defaults::PROGRESS_INTERVAL_SECONDS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    progress_interval: u64,

    /// Print only errors and the summary (no progress, no info or warnings).
    #[arg(short = 'q', long, env = "REPLICANT_QUIET", action = ArgAction::SetTrue, value_parser = parse_bool)]
    quiet: bool,

    /// Also write the run's Prometheus metrics to this file, atomically, in
    /// node-exporter's textfile-collector format (docs/metrics.md).
    #[arg(long, env = "REPLICANT_METRICS_FILE", value_name = "PATH")]
    metrics_file: Option<PathBuf>,

    /// Also push the run's metrics to this Prometheus Pushgateway (job
    /// "replicant", then the --pushgateway-grouping labels, then the shard
    /// when sharded). A user and password in the URL are used, never shown.
    #[arg(long, env = "REPLICANT_PUSHGATEWAY", value_name = "URL")]
    pushgateway: Option<String>,

    /// The Pushgateway's user (basic auth); the password comes from
    /// --pushgateway-password-file or the environment variable
    /// REPLICANT_PUSHGATEWAY_PASSWORD.
    #[arg(long, env = "REPLICANT_PUSHGATEWAY_USERNAME", value_name = "USER")]
    pushgateway_username: Option<String>,

    /// A file holding the Pushgateway's password (a mounted Secret).
    #[arg(long, env = "REPLICANT_PUSHGATEWAY_PASSWORD_FILE", value_name = "PATH")]
    pushgateway_password_file: Option<PathBuf>,

    /// More grouping labels for the push, `LABEL=VALUE[,LABEL=VALUE]`, so
    /// that several installations sharing a Pushgateway never overwrite each
    /// other (the Helm chart sets `release=<release name>`).
    #[arg(long, env = "REPLICANT_PUSHGATEWAY_GROUPING", value_name = "LABELS")]
    pushgateway_grouping: Option<String>,

    /// Also write the run report (versioned JSON, docs/report.schema.json)
    /// to this file, atomically, whatever the run's outcome.
    #[arg(long, env = "REPLICANT_REPORT", value_name = "PATH")]
    report: Option<PathBuf>,

    /// Logs (stderr) and summary (stdout) as human text or JSON lines.
    #[arg(
        long,
        env = "REPLICANT_LOG_FORMAT",
        value_enum,
        ignore_case = true,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print what makes nodes pull through the mirror, from the same
    /// config: for every image whose source and destination are
    /// registries. Images a format cannot express are listed on stderr
    /// with why, and the exit code is then 1.
    MirrorConfig {
        /// registries.conf (CRI-O, podman, skopeo), containerd (hosts.toml
        /// files, needs --output), k3s (registries.yaml), idms or itms
        /// (OpenShift ImageDigestMirrorSet / ImageTagMirrorSet).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(replicant::nodes::Format::NAMES))]
        format: String,
        /// The folder containerd's hosts.toml files go in (its config_path:
        /// one folder per source host).
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
}

/// `replicant mirror-config`: the node configuration of the config.
fn mirror_config(config_file: &std::path::Path, format: &str, output: Option<&std::path::Path>) -> ExitCode {
    use replicant::nodes::{Format, write};
    let Some(format) = Format::parse(format) else {
        return ExitCode::from(EXIT_USAGE);
    };
    let config = match config::load(config_file) {
        Ok(c) => c,
        Err(e) => {
            for p in e.problems() {
                eprintln!("{p}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let written = write(&config, format);
    match (format, output) {
        (Format::Containerd, None) => {
            eprintln!("--format containerd writes a folder of hosts.toml files: name it with --output DIR");
            return ExitCode::from(EXIT_USAGE);
        }
        (Format::Containerd, Some(dir)) => {
            for (path, text) in &written.files {
                let file = dir.join(path);
                let made = file.parent().map_or(Ok(()), std::fs::create_dir_all);
                if let Err(e) = made.and_then(|()| std::fs::write(&file, text)) {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(1);
                }
                println!("{}", file.display());
            }
        }
        _ => print!("{}", written.text),
    }
    for left in &written.left {
        eprintln!("{}: not in the output: {}", left.image, left.why);
    }
    match written.left.iter().any(|l| l.unexpressed) {
        true => ExitCode::from(1),
        false => ExitCode::SUCCESS,
    }
}

fn init_logging(debug: bool, quiet: bool, format: LogFormat) {
    // Our own debug detail, without the HTTP stack's frame-level chatter;
    // of the AWS SDK only which credentials its chain loaded.
    let filter = if debug {
        "debug,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=info,\
         aws_smithy_runtime=info,aws_smithy_http_client=info,aws_sdk_ecr=info,aws_sdk_ecrpublic=info,\
         aws_sdk_sts=info,aws_sigv4=info,aws_runtime=info,aws_config::fs_util=info,aws_config::profile=info,\
         aws_config::meta::region=info,aws_config::imds=info"
    } else if quiet {
        // with --progress always, its lines still show
        "error,replicant::progress=info"
    } else {
        "info"
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(progress::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// A config problem: one readable line in text logs; in JSON, its place as
/// fields (`file`, `line`, `column`, `image`, `key`) and the bare message.
fn log_problem(p: &config::Problem, level: tracing::Level, format: LogFormat) {
    if format == LogFormat::Text {
        match level {
            tracing::Level::ERROR => tracing::error!("{p}"),
            _ => tracing::warn!("{p}"),
        }
        return;
    }
    let (file, image, key) = (p.file.display().to_string(), p.image.as_deref(), p.key.as_deref());
    let (line, column) = (p.line, p.column);
    match level {
        tracing::Level::ERROR => tracing::error!(file, line, column, image, key, "{}", p.message),
        _ => tracing::warn!(file, line, column, image, key, "{}", p.message),
    }
}

/// Whether JSON logs were asked for, by flag or variable, read from the raw
/// command line (for errors found before the command line is understood).
fn json_asked() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let by_flag = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--log-format") {
            Some("") => args.get(i + 1).cloned(),
            Some(v) => v.strip_prefix('=').map(str::to_string),
            None => None,
        });
    by_flag
        .or_else(|| std::env::var("REPLICANT_LOG_FORMAT").ok())
        .is_some_and(|f| f.eq_ignore_ascii_case("json"))
}

/// Reports a command-line error: clap's text, or with JSON logs asked for,
/// one JSON log line (`kind: "usage"`).
fn report_usage_error(e: &clap::Error) {
    let text = usage_error(e);
    if !json_asked() {
        eprint!("{text}");
        return;
    }
    init_logging(false, false, LogFormat::Json);
    let first = text.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    tracing::error!(kind = "usage", "{message}; see --help");
}

/// A command-line error as clap words it, except that a bad value which
/// came from an environment variable (not typed on the command line) names
/// the variable: `REPLICANT_JOBS=0` is not a `--jobs` the user never passed.
fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.render().to_string();
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return text;
    };
    let Some(long) = arg.split_whitespace().next().and_then(|a| a.strip_prefix("--")) else {
        return text;
    };
    let command = Cli::command();
    let Some(spec) = command.get_arguments().find(|a| a.get_long() == Some(long)) else {
        return text;
    };
    let Some(var) = spec.get_env().and_then(|v| v.to_str()) else {
        return text;
    };
    let typed = std::env::args().skip(1).any(|a| {
        a == format!("--{long}")
            || a.starts_with(&format!("--{long}="))
            || spec
                .get_short()
                .is_some_and(|s| a.starts_with(&format!("-{s}")) && !a.starts_with("--"))
    });
    if typed || std::env::var_os(var).is_none() {
        return text;
    }
    text.replace(
        &format!("for '{arg}'"),
        &format!("in the environment variable {var} (for --{long})"),
    )
}

/// glibc raises its mmap threshold whenever a large block is freed (up to
/// 32 MiB); from then on the HTTP client's read buffers (up to about
/// 400 KiB, one per connection) come from the per-thread arenas, whose
/// freed space is seldom given back, and peak RSS on the realistic set
/// grows by a third (BENCHMARKS.md: memory at the defaults). A fixed
/// threshold keeps large blocks in mappings of their own, returned when
/// freed, as the static (musl) build's allocator does anyway.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    // SAFETY: sets one of the allocator's parameters (no pointer is
    // passed), before any other thread exists
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}

fn main() -> ExitCode {
    fixed_mmap_threshold();
    replicant::http::install_crypto();
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    report_usage_error(&e);
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            report_usage_error(&e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(Command::MirrorConfig { format, output }) = &cli.command {
        return mirror_config(&cli.config_file, format, output.as_deref());
    }
    let config_given = matches.value_source("config_file") != Some(clap::parser::ValueSource::DefaultValue);
    init_logging(cli.debug, cli.quiet, cli.log_format);
    // one runtime for the run and its outputs (the push)
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let started = std::time::SystemTime::now();
    let mut outputs = Outputs {
        path: cli.report.clone(),
        metrics_file: cli.metrics_file.clone(),
        pushgateway: None,
        started,
    };
    if let Some(url) = &cli.pushgateway {
        match Pushgateway::new(
            url,
            cli.pushgateway_username.clone(),
            std::env::var("REPLICANT_PUSHGATEWAY_PASSWORD").ok(),
            cli.pushgateway_password_file.as_deref(),
            cli.pushgateway_grouping.as_deref(),
        ) {
            Ok(p) => outputs.pushgateway = Some(p),
            Err(e) => {
                tracing::error!(kind = "usage", "{e}; nothing was copied");
                let nothing = replicant::registry::Traffic::default();
                runtime.block_on(outputs.write(EXIT_USAGE, &[], &RunReport::default(), &nothing));
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let outputs = outputs;
    // a configuration that cannot be used: said, reported, exit 2
    let unusable = |problems: &[config::Problem]| {
        let nothing = replicant::registry::Traffic::default();
        runtime.block_on(outputs.write(EXIT_USAGE, problems, &RunReport::default(), &nothing));
        ExitCode::from(EXIT_USAGE)
    };
    let whole_file = |message: String| config::Problem {
        file: cli.config_file.clone(),
        line: 0,
        column: 0,
        image: None,
        key: None,
        message,
    };

    let config = match config::load(&cli.config_file) {
        Ok(c) => c,
        Err(e) => {
            for p in e.problems() {
                log_problem(p, tracing::Level::ERROR, cli.log_format);
            }
            if !config_given && !cli.config_file.exists() {
                tracing::error!(
                    "no config file given: replicant reads {} unless -c/--config-file or REPLICANT_CONFIG_FILE names another",
                    cli.config_file.display()
                );
            }
            tracing::error!(
                "configuration {} has {} problem(s); nothing was copied",
                cli.config_file.display(),
                e.problems().len()
            );
            return unusable(e.problems());
        }
    };
    for w in &config.warnings {
        log_problem(w, tracing::Level::WARN, cli.log_format);
    }
    let shard = match Shard::resolve(cli.shard, |k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}; nothing was copied");
            return unusable(&[whole_file(e.to_string())]);
        }
    };

    let options = RunOptions {
        dry_run: cli.dry_run || cli.check,
        fail_on_empty: cli.fail_on_empty,
        progress: match (cli.progress, cli.quiet) {
            (ProgressChoice::Never, _) | (ProgressChoice::Auto, true) => progress::Display::Off,
            // a live display where a person watches text logs
            _ if std::io::IsTerminal::is_terminal(&std::io::stderr()) && cli.log_format == LogFormat::Text => {
                progress::Display::Bars
            }
            _ => progress::Display::Lines {
                interval: std::time::Duration::from_secs(cli.progress_interval),
            },
        },
        exit_on_error: cli.exit_on_error,
        jobs: usize::from(cli.jobs),
        max_connections: usize::from(cli.max_connections),
        retries: cli.retries,
        timeout: std::time::Duration::from_secs(cli.timeout),
        response_deadline: std::time::Duration::from_secs(cli.response_deadline),
        min_transfer_rate: cli.min_transfer_rate,
        chunk_size: cli.chunk_size.0,
    };
    // The files of the `registries:` section: still configuration problems,
    // found before any network traffic.
    let mut settings = match Settings::new(config, options) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}; nothing was copied");
            return unusable(&[whole_file(e.to_string())]);
        }
    };
    let client = match Client::new(
        Arc::new(Chain::standard(settings.credentials.clone())),
        &settings.transport,
    ) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!("{}: {e}; nothing was copied", cli.config_file.display());
            return unusable(&[whole_file(e.to_string())]);
        }
    };
    // repository patterns become the images they match (the source's
    // catalog), before sharding: each matched repository is an image of
    // its own there too
    if settings.config.images.iter().any(|i| i.pattern.is_some()) {
        let images = std::mem::take(&mut settings.config.images);
        settings.config.images = runtime.block_on(run::expand_patterns(images, &client));
    }
    let shard_report = shard.map(|shard| {
        let images = &mut settings.config.images;
        let total = images.len();
        images.retain(|i| shard.owns(&i.entry));
        let report = ShardReport {
            index: shard.index,
            count: shard.count,
            images: images.len(),
            of: total,
        };
        tracing::info!("shard {shard}: {} of {total} images", report.images);
        report
    });
    let interrupt = Arc::new(Interrupt::default());
    let signal = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let report = runtime.block_on(async {
        run::listen_for_signals(interrupt.clone(), signal.clone());
        run::run(&settings, client.clone(), &interrupt).await
    });
    let report = RunReport {
        shard: shard_report,
        check: cli.check.then(|| report.differences()),
        ..report
    };
    match cli.log_format {
        LogFormat::Text => print!("{}", report.to_text()),
        LogFormat::Json => println!("{}", report.to_json()),
    }
    // 128 + the signal's number, as shells report a death by signal
    let code = match signal.load(std::sync::atomic::Ordering::SeqCst) {
        0 => report.exit_code() as u8,
        n => 128 + n,
    };
    // a report that was asked for and could not be written fails the run
    let written = runtime.block_on(outputs.write(code, &[], &report, client.traffic()));
    // A file-system call stuck in the blocking pool must not hold the exit.
    runtime.shutdown_background();
    match written {
        false if code == 0 => ExitCode::from(1),
        _ => ExitCode::from(code),
    }
}
