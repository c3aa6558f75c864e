//! The machine-readable output of `status --json`, `scenarios list --json` and
//! `test --json`: one JSON document on stdout per command.
//!
//! Field names are a contract (CI keys its caches on `status`' keys, dashboards read the
//! test summary): they are spelled out here with serde, documented in docs/json.md, and
//! only ever added to. `schema` changes when a field changes meaning or goes away.

use std::path::PathBuf;

use serde::Serialize;

use crate::app::build::StageStatus;
use crate::input::scenario::Scenario;
use crate::observe::verdict::{CaseStatus, ScenarioResult};

/// The version of every document below; bump it on an incompatible change.
pub(crate) const SCHEMA: u32 = 1;

/// `status --json`.
#[derive(Debug, Serialize)]
pub(crate) struct StatusDoc<'a> {
    /// [`SCHEMA`].
    pub schema: u32,
    /// One entry per stage and variant, in `status` order.
    pub stages: Vec<StageDoc<'a>>,
}

/// One stage in `status --json`.
#[derive(Debug, Serialize)]
pub(crate) struct StageDoc<'a> {
    /// `kernel`, `glibc`, `debian-iso`.
    pub stage: &'a str,
    /// Profile or variant; `-` when the stage has none.
    pub variant: &'a str,
    /// `built`, `stale`, `not-built` or `unknown` (the key could not be computed).
    pub state: &'a str,
    /// The same in words (what `status` prints).
    pub detail: &'a str,
    /// The full cache key of the current inputs (64 hex digits); `null` when unknown.
    pub key: Option<&'a str>,
    /// When the entry for this key was built (RFC 3339).
    pub built: Option<&'a str>,
    /// The cache entry directory.
    pub artifacts: Option<&'a PathBuf>,
    /// The build log.
    pub log: Option<&'a PathBuf>,
    /// SOURCE_DATE_EPOCH the stage stamps into its output for the current inputs; `null`
    /// for a stage that stamps none.
    pub epoch: Option<i64>,
    /// Where `epoch` came from: `env`, `git`, `config` or `default`.
    pub epoch_source: Option<&'static str>,
}

/// The `status --json` document of `rows`.
pub(crate) fn status(rows: &[StageStatus]) -> StatusDoc<'_> {
    StatusDoc {
        schema: SCHEMA,
        stages: rows
            .iter()
            .map(|r| StageDoc {
                stage: &r.stage,
                variant: &r.variant,
                state: r.kind.as_str(),
                detail: &r.state,
                key: r.key.as_deref(),
                built: r.built.as_deref(),
                artifacts: r.artifacts.as_ref(),
                log: r.log.as_ref(),
                epoch: r.epoch.map(|e| e.secs),
                epoch_source: r.epoch.map(|e| e.source.name()),
            })
            .collect(),
    }
}

/// `scenarios list --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ScenarioListDoc<'a> {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Every scenario, in file order.
    pub scenarios: Vec<ScenarioDoc<'a>>,
}

/// One scenario in `scenarios list --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ScenarioDoc<'a> {
    /// The name `test NAME` takes.
    pub name: &'a str,
    /// The file it came from.
    pub file: &'a PathBuf,
    /// One line.
    pub description: &'a str,
    /// Tags (`release-gate` marks what `candidate` boots).
    pub tags: &'a [String],
}

/// The `scenarios list --json` document of `all`.
pub(crate) fn scenario_list(all: &[Scenario]) -> ScenarioListDoc<'_> {
    ScenarioListDoc {
        schema: SCHEMA,
        scenarios: all
            .iter()
            .map(|s| ScenarioDoc {
                name: &s.name,
                file: &s.file,
                description: &s.description,
                tags: &s.tags,
            })
            .collect(),
    }
}

/// `test --json`: the whole run.
#[derive(Debug, Serialize)]
pub(crate) struct TestDoc<'a> {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The run id (`out/runs/<run_id>/`).
    pub run_id: &'a str,
    /// The run's state directory.
    pub run_dir: PathBuf,
    /// The process exit code this run ends with (README, Exit codes).
    pub exit_code: u8,
    /// SIGINT/SIGTERM stopped the run.
    pub interrupted: bool,
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios that did not (failed or errored).
    pub failed: usize,
    /// KTAP cases over all scenarios.
    pub cases: usize,
    /// The JUnit file, when `--junit` wrote one.
    pub junit: Option<&'a std::path::Path>,
    /// One entry per scenario that produced a result, in finishing order.
    pub scenarios: Vec<ScenarioRunDoc<'a>>,
    /// Scenarios that could not run at all (the error chain, one string each).
    pub errors: Vec<String>,
}

/// One scenario's result in `test --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ScenarioRunDoc<'a> {
    /// Scenario name.
    pub name: &'a str,
    /// `pass`, `fail` (the product), `error` (the harness or QEMU) or `not-applicable`
    /// (not run: an EL gate without its base ISO).
    pub verdict: &'static str,
    /// KTAP cases.
    pub cases: usize,
    /// Bad cases, the synthetic `boot` case included.
    pub failed: usize,
    /// Skipped cases.
    pub skipped: usize,
    /// Wall time in seconds.
    pub duration_s: f64,
    /// How the run ended, in words.
    pub end: String,
    /// The console transcript.
    pub serial_log: &'a PathBuf,
    /// A screenshot taken on failure.
    pub screendump: Option<&'a PathBuf>,
    /// The QEMU command line, to reproduce.
    pub reproduce: &'a str,
    /// The bad cases, `boot` first.
    pub failures: Vec<FailureDoc<'a>>,
}

/// One bad case in `test --json`.
#[derive(Debug, Serialize)]
pub(crate) struct FailureDoc<'a> {
    /// Case name (nested KTAP names joined with `.`).
    pub case: &'a str,
    /// `failed` (the product) or `errored` (could not be judged).
    pub status: &'static str,
    /// The failure kind (`assertion`, `panic`, `timeout`, …).
    pub kind: &'static str,
    /// One line.
    pub message: &'a str,
}

/// `pass`, `fail`, `error` or `not-applicable`: the word `scenario_line` prints, in lower
/// case (`N/A` spelled out).
pub(crate) fn verdict(r: &ScenarioResult) -> &'static str {
    if r.is_not_applicable() {
        "not-applicable"
    } else if r.passed() {
        "pass"
    } else if r.is_harness_failure() {
        "error"
    } else {
        "fail"
    }
}

/// One scenario's entry of the `test --json` document.
pub(crate) fn scenario_run(r: &ScenarioResult) -> ScenarioRunDoc<'_> {
    ScenarioRunDoc {
        name: &r.name,
        verdict: verdict(r),
        cases: r.cases.len(),
        failed: r.all_cases().filter(|c| c.status.is_bad()).count(),
        skipped: crate::report::summary::counts(r).skipped,
        duration_s: r.duration.as_secs_f64(),
        end: r.end.describe(),
        serial_log: &r.serial_log,
        screendump: r.screendump.as_ref(),
        reproduce: &r.qemu_cmdline,
        failures: r
            .all_cases()
            .filter_map(|c| match &c.status {
                CaseStatus::Failed { kind, message } => Some(FailureDoc {
                    case: &c.name,
                    status: "failed",
                    kind: kind.as_str(),
                    message,
                }),
                CaseStatus::Errored { kind, message } => Some(FailureDoc {
                    case: &c.name,
                    status: "errored",
                    kind: kind.as_str(),
                    message,
                }),
                _ => None,
            })
            .collect(),
    }
}

/// What the `test --json` document is made of.
pub(crate) struct TestRun<'a> {
    /// The run id.
    pub run_id: &'a str,
    /// Its state directory.
    pub run_dir: PathBuf,
    /// The combined exit code.
    pub code: crate::exit_code::ExitCode,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// The JUnit file written, if any.
    pub junit: Option<&'a std::path::Path>,
    /// Results, in finishing order.
    pub results: &'a [ScenarioResult],
    /// Scenarios that could not run.
    pub errors: &'a [crate::error::Error],
}

/// The `test --json` document of a finished (or interrupted) run.
pub(crate) fn test_run<'a>(run: &TestRun<'a>) -> TestDoc<'a> {
    let passed = run.results.iter().filter(|r| r.passed()).count();
    TestDoc {
        schema: SCHEMA,
        run_id: run.run_id,
        run_dir: run.run_dir.clone(),
        exit_code: run.code.code(),
        interrupted: run.interrupted,
        passed,
        failed: run
            .results
            .iter()
            .filter(|r| !r.passed() && !r.is_not_applicable())
            .count(),
        cases: run.results.iter().map(|r| r.cases.len()).sum(),
        junit: run.junit,
        scenarios: run.results.iter().map(scenario_run).collect(),
        errors: run.errors.iter().map(|e| crate::error::chain(e)).collect(),
    }
}

/// Pretty JSON of a document, with the final newline; serialising these plain structs
/// cannot fail (no maps with non-string keys, no foreign `Serialize`).
pub(crate) fn render(doc: &impl Serialize) -> String {
    let mut s =
        serde_json::to_string_pretty(doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::build::StateKind;

    #[test]
    fn status_json_has_the_documented_fields_and_the_full_key() {
        let key = "a".repeat(64);
        let rows = vec![StageStatus {
            stage: "kernel".into(),
            variant: "qemu".into(),
            kind: StateKind::Built,
            state: "built".into(),
            key: Some(key.clone()),
            built: Some("2026-11-30T02:00:00Z".into()),
            artifacts: Some("/c/k".into()),
            log: None,
            epoch: Some(crate::sys::epoch::Epoch {
                secs: 1_700_000_000,
                source: crate::sys::epoch::EpochSource::Git,
            }),
        }];
        let v: serde_json::Value = serde_json::from_str(&render(&status(&rows))).unwrap();
        assert_eq!(v["schema"], 1);
        let s = &v["stages"][0];
        assert_eq!(s["stage"], "kernel");
        assert_eq!(s["variant"], "qemu");
        assert_eq!(s["state"], "built");
        assert_eq!(s["key"], key.as_str());
        assert_eq!(s["artifacts"], "/c/k");
        assert!(s["log"].is_null());
        assert_eq!(s["epoch"], 1_700_000_000);
        assert_eq!(s["epoch_source"], "git");
        let mut names: Vec<&String> = s.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "artifacts",
                "built",
                "detail",
                "epoch",
                "epoch_source",
                "key",
                "log",
                "stage",
                "state",
                "variant"
            ]
        );
    }
}
