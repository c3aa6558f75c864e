//! The terminal summary: one line per scenario as it finishes, then totals. The only place
//! that formats results for people; logs go through tracing, results through here. It
//! returns strings: src/app prints them (stdout, or stderr under `test --json`).

use std::fmt::Write as _;

use crate::observe::verdict::{CaseStatus, ScenarioResult};

/// The line printed when a scenario finishes.
pub(crate) fn scenario_line(r: &ScenarioResult) -> String {
    let total = r.cases.len();
    let failed =
        r.cases.iter().filter(|c| c.status.is_bad()).count() + usize::from(r.boot.status.is_bad());
    let skipped = r.count(|s| matches!(s, CaseStatus::Skipped { .. }));
    let verdict = if r.passed() {
        "PASS"
    } else if r.is_harness_failure() {
        "ERROR"
    } else {
        "FAIL"
    };
    let mut s = format!(
        "{verdict:<5} {} ({total} cases, {failed} failed, {skipped} skipped, {:.1}s) — {}",
        r.name,
        r.duration.as_secs_f64(),
        r.end.describe()
    );
    if !r.passed() {
        for c in r.all_cases().filter(|c| c.status.is_bad()).take(10) {
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

/// Where [`print`] sends a line: installed by the app (it alone prints).
static LIVE: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Installs the printer of live summary lines (the first call wins).
pub(crate) fn set_printer(print: fn(&str)) {
    let _ = LIVE.set(print);
}

/// Hands the line of a finished scenario to the installed printer (nothing when none is).
/// Kept for run/gate.rs, which passes it as its live callback; new callers format with
/// [`scenario_line`] and print in src/app.
pub(crate) fn print(r: &ScenarioResult) {
    if let Some(print) = LIVE.get() {
        print(&scenario_line(r));
    }
}

/// The closing totals line (`N passed, N failed` is what CI log scrapers look for).
pub(crate) fn totals(results: &[ScenarioResult]) -> String {
    let passed = results.iter().filter(|r| r.passed()).count();
    let failed = results.len() - passed;
    let cases: usize = results.iter().map(|r| r.cases.len()).sum();
    format!("scenarios: {passed} passed, {failed} failed ({cases} cases)")
}
