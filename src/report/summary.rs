//! The terminal summary: one line per scenario as it finishes, then totals. The only place
//! that formats results for people; logs go through tracing, results through here. It
//! returns strings: src/app prints them (stdout, or stderr under `test --json`).

use std::fmt::Write as _;

use crate::observe::verdict::{CaseStatus, RunEnd, ScenarioResult};

/// How the cases of one result split up; the parts add up to `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Every case, `boot` included (as in JUnit).
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed or errored.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Never judged because the user interrupted the run (its errored cases).
    pub not_run: usize,
}

/// The counts of one result.
pub(crate) fn counts(r: &ScenarioResult) -> Counts {
    let interrupted = matches!(r.end, RunEnd::Interrupted);
    let mut c = Counts::default();
    for case in r.all_cases() {
        c.total += 1;
        match case.status {
            CaseStatus::Passed => c.passed += 1,
            CaseStatus::Skipped { .. } => c.skipped += 1,
            // Cut short by the user, not judged: calling them failures would blame the product.
            CaseStatus::Errored { .. } if interrupted => c.not_run += 1,
            CaseStatus::Failed { .. } | CaseStatus::Errored { .. } => c.failed += 1,
        }
    }
    c
}

/// The line printed when a scenario finishes.
pub(crate) fn scenario_line(r: &ScenarioResult) -> String {
    // Not run at all: the reason is the whole line (no cases, no time, no logs).
    if let RunEnd::NotApplicable(why) = &r.end {
        return format!("{:<5} {} — not run, not applicable: {why}", "N/A", r.name);
    }
    let c = counts(r);
    let interrupted = matches!(r.end, RunEnd::Interrupted);
    let verdict = if interrupted {
        "INTERRUPTED"
    } else if r.passed() {
        "PASS"
    } else if r.is_harness_failure() {
        "ERROR"
    } else {
        "FAIL"
    };
    // Cut short, the parts must be spelled out for the total to add up.
    let (passed, not_run) = if interrupted {
        (
            format!(" {} passed,", c.passed),
            format!(", {} not run", c.not_run),
        )
    } else {
        (String::new(), String::new())
    };
    let mut s = format!(
        "{verdict:<5} {} ({} cases,{passed} {} failed, {} skipped{not_run}, {:.1}s) — {}",
        r.name,
        c.total,
        c.failed,
        c.skipped,
        r.duration.as_secs_f64(),
        r.end.describe()
    );
    if !r.passed() {
        let listed = r.all_cases().filter(|c| match c.status {
            CaseStatus::Failed { .. } => true,
            CaseStatus::Errored { .. } => !interrupted,
            _ => false,
        });
        for c in listed.take(10) {
            let msg = match &c.status {
                CaseStatus::Failed { kind, message } | CaseStatus::Errored { kind, message } => {
                    // A bare "not ok" says nothing: the guest's first diagnostic says why.
                    let why = c
                        .diagnostics
                        .first()
                        .map(|d| d.trim_start_matches('#').trim())
                        .filter(|d| !d.is_empty());
                    match why {
                        Some(d) => format!("[{}] {message}: {d}", kind.as_str()),
                        None => format!("[{}] {message}", kind.as_str()),
                    }
                }
                _ => String::new(),
            };
            let _ = write!(s, "\n      ✗ {} {msg}", c.name);
        }
        let _ = write!(s, "\n      serial log: {}", r.serial_log.display());
        if let Some(shot) = &r.screendump {
            let _ = write!(s, "\n      screendump: {}", shot.display());
        }
        let _ = write!(s, "\n      reproduce: {}", r.qemu_cmdline);
    }
    s
}

/// The closing totals line (`N passed, N failed` is what CI log scrapers look for).
/// Interrupted scenarios are counted apart: they neither passed nor failed.
/// Not-applicable scenarios are counted apart too: they were not run, so they are not green.
pub(crate) fn totals(results: &[ScenarioResult]) -> String {
    let stopped = |r: &&ScenarioResult| matches!(r.end, RunEnd::Interrupted);
    let interrupted = results.iter().filter(stopped).count();
    let na = results.iter().filter(|r| r.is_not_applicable()).count();
    let passed = results.iter().filter(|r| r.passed() && !stopped(r)).count();
    let failed = results.len() - passed - interrupted - na;
    let cases: usize = results
        .iter()
        .filter(|r| !r.is_not_applicable())
        .map(|r| counts(r).total)
        .sum();
    let stopped = if interrupted > 0 {
        format!(", {interrupted} interrupted")
    } else {
        String::new()
    };
    let na = if na > 0 {
        format!(", {na} not applicable (not run)")
    } else {
        String::new()
    };
    format!("scenarios: {passed} passed, {failed} failed{stopped}{na} ({cases} cases)")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::observe::verdict::{CaseResult, FailureKind};

    fn result(end: RunEnd, boot: CaseResult, cases: Vec<CaseResult>) -> ScenarioResult {
        ScenarioResult {
            name: "xsc-ring".into(),
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_secs(3),
            boot,
            cases,
            end,
            crashes: vec![],
            properties: vec![],
            console_tail: String::new(),
            serial_log: PathBuf::from("/r/serial.log"),
            screendump: None,
            state_dir: PathBuf::new(),
            qemu_cmdline: "qemu".into(),
            flaky_first_attempt: None,
        }
    }

    #[test]
    fn an_interrupted_run_says_so_and_its_counts_add_up() {
        let r = result(
            RunEnd::Interrupted,
            CaseResult::passed("boot"),
            vec![
                CaseResult::passed("t.a"),
                CaseResult::errored("t.b", FailureKind::Infra, "not reported: interrupted"),
                CaseResult::errored("run", FailureKind::Infra, "interrupted"),
            ],
        );
        let c = counts(&r);
        assert_eq!(c.total, c.passed + c.failed + c.skipped + c.not_run);
        assert_eq!((c.total, c.passed, c.failed, c.not_run), (4, 2, 0, 2));
        let line = scenario_line(&r);
        assert!(
            line.starts_with(
                "INTERRUPTED xsc-ring (4 cases, 2 passed, 0 failed, 0 skipped, 2 not run"
            ),
            "{line}"
        );
        assert!(!line.contains('✗'), "nothing was judged a failure: {line}");
        assert_eq!(
            totals(&[r]),
            "scenarios: 0 passed, 0 failed, 1 interrupted (4 cases)"
        );
    }

    #[test]
    fn a_not_applicable_scenario_is_neither_passed_nor_failed() {
        let why = "the AlmaLinux 9 base ISO is not configured: add [sources.alma] …";
        let na = ScenarioResult::not_applicable("alma-install", why, PathBuf::from("/r/a"));
        assert!(!na.passed() && na.is_not_applicable());
        assert_eq!(
            scenario_line(&na),
            format!("N/A   alma-install — not run, not applicable: {why}")
        );
        let ok = result(RunEnd::PoweredOff, CaseResult::passed("boot"), vec![]);
        assert_eq!(
            totals(&[ok, na]),
            "scenarios: 1 passed, 0 failed, 1 not applicable (not run) (1 cases)"
        );
    }

    #[test]
    fn boot_counts_like_any_case() {
        let r = result(
            RunEnd::BootTimeout(Duration::from_secs(9)),
            CaseResult::failed("boot", FailureKind::Timeout, "boot timeout"),
            vec![],
        );
        let line = scenario_line(&r);
        assert!(
            line.starts_with("FAIL  xsc-ring (1 cases, 1 failed, 0 skipped, 3.0s)"),
            "{line}"
        );
        assert!(line.contains("✗ boot [timeout] boot timeout"), "{line}");
        assert_eq!(totals(&[r]), "scenarios: 0 passed, 1 failed (1 cases)");
    }
}
