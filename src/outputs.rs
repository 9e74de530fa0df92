//! The run's outputs besides the summary: the run report file
//! (`--report`), the metrics file (`--metrics-file`) and the push to a
//! Pushgateway, all made from the one `RunReport`, whatever the outcome
//! (a run, an unusable configuration, an interruption).

use std::path::PathBuf;

use crate::metrics::RunFacts;
use crate::push::Pushgateway;
use crate::registry::Traffic;
use crate::report::RunReport;

/// The run's outputs besides the summary (report, metrics file, push), and
/// when the run started.
pub struct Outputs {
    /// `--report PATH`.
    pub path: Option<PathBuf>,
    /// `--metrics-file PATH`.
    pub metrics_file: Option<PathBuf>,
    /// `--pushgateway URL` and its settings.
    pub pushgateway: Option<Pushgateway>,
    pub started: std::time::SystemTime,
}

impl Outputs {
    /// Writes the report and the metrics file and pushes the metrics, as
    /// asked; false if any of that failed (said in the log).
    pub async fn write(
        &self,
        exit_code: u8,
        problems: &[crate::config::Problem],
        run: &RunReport,
        traffic: &Traffic,
    ) -> bool {
        let finished = std::time::SystemTime::now();
        let report = self.write_report(exit_code, problems, run, finished);
        let facts = RunFacts {
            report: run,
            traffic,
            exit_code,
            started: self.started,
            finished,
        };
        let file = self.write_metrics_file(&facts);
        let pushed = self.push_metrics(&facts).await;
        report && file && pushed
    }

    fn write_metrics_file(&self, facts: &RunFacts<'_>) -> bool {
        use crate::metrics::{Previous, render};
        let Some(path) = &self.metrics_file else { return true };
        // the file this run replaces holds the last successes to carry over
        let previous = std::fs::read_to_string(path)
            .map(|text| Previous::parse(&text, None))
            .unwrap_or_default();
        let written = crate::report::write_atomically(path, render(facts, &previous).as_bytes());
        if let Err(e) = &written {
            tracing::error!("cannot write the metrics file {}: {e}", path.display());
        }
        written.is_ok()
    }

    /// PUTs the metrics to the Pushgateway's group for this run (job,
    /// grouping labels, shard), after reading the last successes it holds
    /// for that group.
    async fn push_metrics(&self, facts: &RunFacts<'_>) -> bool {
        use crate::metrics::{Previous, render};
        let Some(gateway) = &self.pushgateway else { return true };
        let group = gateway.group(facts.report.shard.map(|s| s.index));
        let push = gateway.push(&group, |held| {
            let previous = Previous::parse(held, Some(&group));
            render(facts, &previous)
        });
        let pushed = push.await;
        if let Err(e) = &pushed {
            // the group's URL carries no credentials
            tracing::error!("cannot push the metrics to {}: {e}", gateway.group_url(&group));
        }
        pushed.is_ok()
    }

    fn write_report(
        &self,
        exit_code: u8,
        problems: &[crate::config::Problem],
        run: &RunReport,
        finished: std::time::SystemTime,
    ) -> bool {
        use crate::report::{REPORT_SCHEMA_VERSION, ReportFile, write_atomically};
        let Some(path) = &self.path else { return true };
        let file = ReportFile {
            schema_version: REPORT_SCHEMA_VERSION,
            replicant_version: env!("CARGO_PKG_VERSION"),
            started: crate::error::rfc3339(self.started),
            finished: crate::error::rfc3339(finished),
            duration_seconds: finished.duration_since(self.started).unwrap_or_default().as_secs_f64(),
            exit_code,
            config_problems: problems,
            run,
        };
        let written = serde_json::to_vec_pretty(&file)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(path, &bytes));
        if let Err(e) = &written {
            tracing::error!("cannot write the run report {}: {e}", path.display());
        }
        written.is_ok()
    }
}
