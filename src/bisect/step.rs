//! One bisect step: the scenario of a project root (a commit's worktree or a series
//! prefix) built through the stage cache and booted by the ordinary runner, then judged
//! into a [`Verdict`]. A failure is rerun once (see `verdict::settle`). A step whose run
//! says nothing about the product (the harness broke, Ctrl-C) comes back as an abort.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::bisect::verdict::{self, Abort, Verdict};
use crate::error::Error;
use crate::input::config::Config;
use crate::input::scenario;
use crate::observe::verdict::ScenarioResult;
use crate::run::{self, RunOptions};
use crate::sys::cache::Cache;

/// Whether the scenario's gate limit on skipped cases (`[gate] max-skips`) judges a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skips {
    /// As the scenario says: a commit that makes cases skip fails a gate that forbids it.
    Gated,
    /// Any number: a series prefix lacks the later patches' ops by design, and the suite
    /// skips their cases (PROBE); `min-cases` still holds (skipped cases are reported).
    Allowed,
}

/// What one step found.
#[derive(Debug)]
pub(crate) struct StepRun {
    /// The settled verdict.
    pub verdict: Verdict,
    /// Time spent getting the images (a cache hit costs the key computation only).
    pub build: Duration,
    /// Time of the boot(s) that judged it.
    pub boot: Duration,
    /// `case (kind)` of every case that did not pass in the last run.
    pub failing: Vec<String>,
    /// The last run's result, for JUnit.
    pub result: Option<ScenarioResult>,
    /// The last run's state directory (serial.log, qemu.argv …).
    pub run_dir: Option<PathBuf>,
    /// The JUnit file the commit's own harness wrote (`--each-harness`).
    pub junit: Option<PathBuf>,
    /// The commit's own harness that judged the step (`--each-harness`).
    pub own_harness: Option<OwnHarness>,
}

/// The binary of a commit's own harness and whether this step built it (else: cached).
#[derive(Clone, Debug)]
pub(crate) struct OwnHarness {
    /// `<cache>/stages/harness/<key>/xsc-release`.
    pub bin: PathBuf,
    /// Built by this step (else a cache hit).
    pub built_now: bool,
}

/// A step that stopped the bisect, with what stopped it.
#[derive(Debug)]
pub(crate) struct Stopped {
    /// The exit code of the whole command.
    pub abort: Abort,
    /// Why, for the user.
    pub why: String,
}

/// The first line of an error and its causes, for a skip note.
fn note(e: &Error) -> String {
    crate::error::chain(e)
        .trim_start_matches("error: ")
        .replace("\n  caused by: ", ": ")
}

fn judged(e: &Error) -> Result<Verdict, Stopped> {
    let why = note(e);
    verdict::classify(e.exit_code(), &why).map_err(|abort| Stopped { abort, why })
}

/// A step that never got to boot.
fn unbooted(verdict: Verdict, build: Duration) -> StepRun {
    StepRun {
        verdict,
        build,
        boot: Duration::ZERO,
        failing: Vec::new(),
        result: None,
        run_dir: None,
        junit: None,
        own_harness: None,
    }
}

/// Runs scenario `name` of the project at `cfg` (its `scenarios/`), state under
/// `<out>/runs/<opts.run_id>/`.
pub(crate) async fn run(
    cfg: &Config,
    name: &str,
    skips: Skips,
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
) -> Result<StepRun, Stopped> {
    let file = cfg.scenarios_dir.join(format!("{name}.toml"));
    if !file.is_file() {
        return Ok(unbooted(
            Verdict::Skip(format!(
                "cannot test (bad input): no scenario {name} here ({})",
                file.display()
            )),
            Duration::ZERO,
        ));
    }
    let mut scenario = match scenario::load_all(&[file], &cfg.guest_tests_dir) {
        Ok(mut all) => all.remove(0),
        Err(p) => return Ok(unbooted(judged(&Error::from(p))?, Duration::ZERO)),
    };
    if let (Skips::Allowed, Some(gate)) = (skips, scenario.gate.as_mut()) {
        gate.max_skips = usize::MAX;
    }
    let started = Instant::now();
    // Built here first so the build time is its own; the run below then hits the cache.
    if let Err(e) = run::prepare(cfg, &Cache::new(&cfg.cache_dir), &scenario, opts).await {
        // A build stopped by Ctrl-C fails like a broken one: it is no skip.
        if *cancel.borrow() {
            return Err(Stopped {
                abort: Abort(crate::exit_code::ExitCode::Interrupted),
                why: "interrupted during the build".into(),
            });
        }
        return Ok(unbooted(judged(&e)?, started.elapsed()));
    }
    let build = started.elapsed();
    let booted = Instant::now();
    let (first, mut last) = once(cfg, &scenario, opts, cancel.clone()).await?;
    let mut settled = first.clone();
    if verdict::needs_rerun(&first) {
        let rerun_opts = RunOptions {
            run_id: format!("{}-rerun", opts.run_id),
            ..opts.clone()
        };
        let (second, result) = once(cfg, &scenario, &rerun_opts, cancel).await?;
        settled = verdict::settle(first, second);
        last = result;
    }
    let failing = last
        .as_ref()
        .map(|r| {
            r.all_cases()
                .filter(|c| c.status.is_bad())
                .map(|c| match &c.status {
                    crate::observe::verdict::CaseStatus::Failed { kind, .. }
                    | crate::observe::verdict::CaseStatus::Errored { kind, .. } => {
                        format!("{} ({})", c.name, kind.as_str())
                    }
                    _ => c.name.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(StepRun {
        verdict: settled,
        build,
        boot: booted.elapsed(),
        failing,
        run_dir: last.as_ref().map(|r| r.state_dir.clone()),
        result: last,
        junit: None,
        own_harness: None,
    })
}

/// One boot and its verdict.
async fn once(
    cfg: &Config,
    scenario: &scenario::Scenario,
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
) -> Result<(Verdict, Option<ScenarioResult>), Stopped> {
    let mut outcomes = run::run_all(
        cfg,
        std::slice::from_ref(scenario),
        opts,
        cancel.clone(),
        |_| {},
    )
    .await;
    let interrupted = *cancel.borrow();
    match outcomes.remove(0) {
        Ok(r) => {
            let code = if interrupted {
                crate::exit_code::ExitCode::Interrupted
            } else {
                run::exit_code_of(&r)
            };
            let why = r.end.describe();
            let v = verdict::classify(code, &why).map_err(|abort| Stopped { abort, why })?;
            Ok((v, Some(r)))
        }
        Err(e) => Ok((judged(&e)?, None)),
    }
}
