//! One `bisect --each-harness` step: the commit's own harness (built by `stages::harness`,
//! cached by commit) runs `test SCENARIO` on the commit's worktree and its exit code is the
//! verdict, as for the current harness (a failure is rerun once). What this harness needs
//! from an old one is only its documented command line and exit codes: `--config FILE test
//! SCENARIO --junit PATH [--accel A]`; one that does not take them exits 2 (cannot test).
//! Its failing cases and its run directory come from the JUnit it writes; the run
//! directory is moved out of the worktree into this run's `out/runs/<id>/step-N/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::bisect::step::{OwnHarness, StepRun, Stopped};
use crate::bisect::verdict::{self, Abort, Verdict};
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::stages::harness;
use crate::stages::stage::Cancel;
use crate::sys::cache::Cache;
use crate::sys::process::{self, Cmd, Output};

/// Longest run of a commit's `test` (its image builds included: a cold glibc takes hours).
const TEST_DEADLINE: Duration = Duration::from_secs(6 * 3600);

/// How long the commit's harness gets to stop its QEMU after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What the step runs: the commit and where its tree is.
pub(crate) struct Commit<'a> {
    /// The clone.
    pub repo: &'a Path,
    /// The full hash.
    pub hash: &'a str,
    /// The commit's worktree.
    pub tree: &'a Path,
    /// Its config, relative to the tree.
    pub rel: &'a Path,
}

/// `BIN --config CONFIG test SCENARIO --junit JUNIT [--accel A]` in `tree`, on this
/// run's cache.
pub(crate) fn test_cmd(
    bin: &Path,
    tree: &Path,
    config: &Path,
    scenario: &str,
    junit: &Path,
    accel: Option<&str>,
    cache: &Path,
) -> Cmd {
    let mut argv: Vec<std::ffi::OsString> = vec![
        bin.into(),
        "--config".into(),
        config.into(),
        "test".into(),
        scenario.into(),
        "--junit".into(),
        junit.into(),
    ];
    if let Some(a) = accel {
        argv.extend(["--accel".into(), a.into()]);
    }
    Cmd::new(argv)
        .cwd(tree)
        .env("XSC_CACHE_DIR", cache)
        .deadline(TEST_DEADLINE)
}

/// `cp -a FROM TO`: a run directory to another file system.
pub(crate) fn copy_cmd(from: &Path, to: &Path) -> Cmd {
    Cmd::new([
        "cp".as_ref(),
        "-a".as_ref(),
        from.as_os_str(),
        to.as_os_str(),
    ])
    .deadline(Duration::from_secs(300))
}

/// Builds (or finds) the commit's harness, runs the scenario with it, reruns a failure.
pub(crate) async fn run(
    cfg: &Config,
    commit: &Commit<'_>,
    scenario: &str,
    run_id: &str,
    accel: Option<&str>,
    cancel: watch::Receiver<bool>,
) -> Result<StepRun, Stopped> {
    let started = Instant::now();
    let built = harness::ensure(
        &Cache::new(&cfg.cache_dir),
        commit.repo,
        commit.hash,
        &Cancel::new(cancel.clone()),
        &cfg.run_dir(run_id),
    )
    .await;
    let build = started.elapsed();
    let (bin, built_now) = match built {
        Ok(b) => b,
        Err(e) => {
            if *cancel.borrow() {
                return Err(interrupted("during the harness build"));
            }
            let err = crate::error::Error::from(e);
            let why = format!(
                "its harness: {}",
                crate::error::chain(&err)
                    .trim_start_matches("error: ")
                    .replace("\n  caused by: ", ": ")
            );
            let v =
                verdict::classify(err.exit_code(), &why).map_err(|abort| Stopped { abort, why })?;
            return Ok(StepRun {
                verdict: v,
                build,
                boot: Duration::ZERO,
                failing: Vec::new(),
                result: None,
                run_dir: None,
                junit: None,
                own_harness: None,
            });
        }
    };
    let booted = Instant::now();
    let first = once(cfg, commit, &bin, scenario, run_id, accel, cancel.clone()).await?;
    let mut last = first.clone();
    let mut settled = first.verdict.clone();
    if verdict::needs_rerun(&first.verdict) {
        let second = once(
            cfg,
            commit,
            &bin,
            scenario,
            &format!("{run_id}-rerun"),
            accel,
            cancel,
        )
        .await?;
        settled = verdict::settle(first.verdict, second.verdict.clone());
        last = second;
    }
    Ok(StepRun {
        verdict: settled,
        build,
        boot: booted.elapsed(),
        failing: last.failing,
        result: None,
        run_dir: last.run_dir,
        junit: last.junit,
        own_harness: Some(OwnHarness { bin, built_now }),
    })
}

fn interrupted(when: &str) -> Stopped {
    Stopped {
        abort: Abort(ExitCode::Interrupted),
        why: format!("interrupted {when}"),
    }
}

/// One run of the commit's harness.
#[derive(Clone, Debug)]
struct Once {
    verdict: Verdict,
    failing: Vec<String>,
    run_dir: Option<PathBuf>,
    junit: Option<PathBuf>,
}

async fn once(
    cfg: &Config,
    commit: &Commit<'_>,
    bin: &Path,
    scenario: &str,
    run_id: &str,
    accel: Option<&str>,
    mut cancel: watch::Receiver<bool>,
) -> Result<Once, Stopped> {
    let dir = cfg.run_dir(run_id);
    let harness_err = |what: &str, e: &dyn std::fmt::Display| Stopped {
        abort: Abort(ExitCode::Harness),
        why: format!("{what}: {e}"),
    };
    std::fs::create_dir_all(&dir).map_err(|e| harness_err(&dir.display().to_string(), &e))?;
    let junit = dir.join("junit.xml");
    let log = dir.join("harness.log");
    let cmd = test_cmd(
        bin,
        commit.tree,
        &commit.tree.join(commit.rel),
        scenario,
        &junit,
        accel,
        &cfg.cache_dir,
    );
    let mut child = process::spawn(&cmd, Output::File(log.clone()))
        .map_err(|e| harness_err("the commit's harness", &e))?;
    let status = tokio::select! {
        s = tokio::time::timeout(TEST_DEADLINE, child.wait()) => match s {
            Ok(Ok(status)) => Some(status),
            Ok(Err(e)) => return Err(harness_err("waiting for the commit's harness", &e)),
            Err(_) => {
                child.terminate(STOP_GRACE).await;
                None
            }
        },
        _ = cancel.wait_for(|c| *c) => {
            // Its own SIGTERM handling stops its QEMU and exits 143.
            child.terminate(STOP_GRACE).await;
            return Err(interrupted("while the commit's harness ran"));
        }
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let Some(status) = status else {
        return Ok(Once {
            verdict: Verdict::Skip(format!(
                "cannot test: its harness did not finish within {} (log: {})",
                humantime::format_duration(TEST_DEADLINE),
                log.display()
            )),
            failing: Vec::new(),
            run_dir: None,
            junit: None,
        });
    };
    let why = error_of(&text).unwrap_or_else(|| format!("see {}", log.display()));
    let code = status
        .code()
        .and_then(code_of)
        .ok_or_else(|| harness_err("the commit's harness", &format!("ended with {status}")))?;
    let v = verdict::classify(code, &why).map_err(|abort| Stopped {
        abort,
        why: why.clone(),
    })?;
    let report = crate::report::merge::read(&junit).ok();
    let failing = report.as_ref().map(failing_cases).unwrap_or_default();
    let state = report.as_ref().and_then(state_dir);
    let run_dir = match state {
        Some(from) if from.is_dir() => Some(
            move_dir(&from, &dir.join(scenario))
                .await
                .map_err(|e| harness_err("moving its run directory", &e))?,
        ),
        _ => None,
    };
    Ok(Once {
        verdict: v,
        failing,
        run_dir,
        junit: report.map(|_| junit),
    })
}

/// The documented exit code numbered `n`.
fn code_of(n: i32) -> Option<ExitCode> {
    ExitCode::ALL.into_iter().find(|c| i32::from(c.code()) == n)
}

/// The harness's error message (`error: …` and its `caused by:` lines) as one line.
pub(crate) fn error_of(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().rposition(|l| l.starts_with("error: "))?;
    let mut parts = vec![lines[at].trim_start_matches("error: ").trim().to_string()];
    parts.extend(
        lines[at + 1..]
            .iter()
            .filter_map(|l| l.trim().strip_prefix("caused by: "))
            .map(str::to_string),
    );
    Some(parts.join(": "))
}

/// `case (type)` of every case that failed or errored, as the current harness lists them.
pub(crate) fn failing_cases(report: &quick_junit::Report) -> Vec<String> {
    use quick_junit::TestCaseStatus;
    report
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .filter_map(|c| match &c.status {
            TestCaseStatus::NonSuccess { ty, .. } => Some(match ty {
                Some(t) => format!("{} ({})", c.name.as_str(), t.as_str()),
                None => c.name.as_str().to_string(),
            }),
            _ => None,
        })
        .collect()
}

/// The `state-dir` property of the report's first suite that has one.
pub(crate) fn state_dir(report: &quick_junit::Report) -> Option<PathBuf> {
    report
        .test_suites
        .iter()
        .flat_map(|s| &s.properties)
        .find(|p| p.name.as_str() == "state-dir")
        .map(|p| PathBuf::from(p.value.as_str()))
}

/// Moves a run directory out of the worktree (which is removed after the step): a rename,
/// or a copy when the worktree is on another file system.
async fn move_dir(from: &Path, to: &Path) -> Result<PathBuf, String> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(to.to_path_buf());
    }
    process::run(&copy_cmd(from, to), None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(to.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_command_line() {
        let c = test_cmd(
            Path::new("/c/stages/harness/k/xsc-release"),
            Path::new("/tmp/b/step-2"),
            Path::new("/tmp/b/step-2/xsc.toml"),
            "smoke",
            Path::new("/o/runs/r/step-2/junit.xml"),
            Some("tcg"),
            Path::new("/c"),
        );
        assert_eq!(
            c.to_string(),
            "(cd /tmp/b/step-2 && XSC_CACHE_DIR=/c /c/stages/harness/k/xsc-release --config /tmp/b/step-2/xsc.toml test smoke --junit /o/runs/r/step-2/junit.xml --accel tcg)"
        );
        assert!(c.deadline.is_some());
    }

    #[test]
    fn the_error_line_of_a_harness_log() {
        let log = "kernel: build\nerror: build kernel failed\n  caused by: make failed\nexit 3\n";
        assert_eq!(
            error_of(log).as_deref(),
            Some("build kernel failed: make failed")
        );
        assert_eq!(error_of("all fine\n"), None);
    }

    #[test]
    fn exit_numbers_are_the_documented_codes() {
        assert_eq!(code_of(1), Some(ExitCode::ProductFailed));
        assert_eq!(code_of(143), Some(ExitCode::Terminated));
        assert_eq!(code_of(7), None);
    }

    #[test]
    fn failing_cases_and_the_state_dir_come_from_the_junit() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="xsc-release" tests="3" failures="1" errors="1">
  <testsuite name="smoke" tests="3" failures="1" errors="1">
    <properties><property name="state-dir" value="/w/out/runs/x/smoke"/></properties>
    <testcase name="boot" classname="xsc.smoke"/>
    <testcase name="sanity.proc.a" classname="xsc.smoke"><failure type="assertion" message="m"/></testcase>
    <testcase name="sanity.proc.b" classname="xsc.smoke"><error type="crash" message="m"/></testcase>
  </testsuite>
</testsuites>"#;
        let r = quick_junit::Report::deserialize_from_str(xml).unwrap();
        assert_eq!(
            failing_cases(&r),
            ["sanity.proc.a (assertion)", "sanity.proc.b (crash)"]
        );
        assert_eq!(state_dir(&r), Some(PathBuf::from("/w/out/runs/x/smoke")));
    }
}
