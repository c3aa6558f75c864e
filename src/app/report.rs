//! `report ktap`: the same verdict machinery for console logs captured elsewhere (real
//! hardware, another lab, kselftest runs), without booting anything.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::boot::console::LineSplitter;
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::scenario::CrashPatterns;
use crate::observe::crash::CrashScanner;
use crate::observe::judge::{self, Observed, Rules};
use crate::observe::ktap::KtapParser;
use crate::observe::verdict::{FailureKind, RunEnd, ScenarioResult};
use crate::report::{junit, summary};

/// Judges one captured log.
pub(crate) fn judge_log(path: &Path) -> Result<ScenarioResult, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        // A log named on the command line that is not there is bad input, like --kernel.
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::InputMissing {
                what: "log",
                path: path.to_path_buf(),
            }
        } else {
            Error::io(path)(e)
        }
    })?;
    let mut splitter = LineSplitter::default();
    let mut lines = splitter.push(&bytes);
    lines.extend(splitter.finish());
    let mut ktap = KtapParser::new();
    let mut crash =
        CrashScanner::new(&CrashPatterns::default()).map_err(|e| Error::Usage(e.to_string()))?;
    let mut fatal = false;
    for l in &lines {
        ktap.feed(l);
        if crash.feed(l).is_some_and(|c| c.fatal) {
            fatal = true;
        }
    }
    let end = if fatal {
        RunEnd::Panicked
    } else {
        RunEnd::PoweredOff
    };
    let ktap =
        ktap.finish(fatal.then_some((FailureKind::Crash, "not reported: the kernel crashed")));
    let crashes = crash.finish();
    // A captured log has no ready marker: it counts as booted, and is judged like a live
    // run that powered off (or panicked) there.
    let verdict = judge::judge(
        Observed {
            end: &end,
            ready: true,
            ktap,
            crashes: &crashes,
        },
        Rules::LOG,
    );
    let name = path.file_stem().map_or_else(
        || "log".into(),
        |s| {
            s.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        },
    );
    let tail: Vec<&str> = lines.iter().rev().take(200).map(String::as_str).collect();
    Ok(ScenarioResult {
        name,
        started: SystemTime::now(),
        duration: Duration::ZERO,
        boot: verdict.boot,
        cases: verdict.cases,
        end,
        crashes,
        properties: vec![("source.log".into(), path.display().to_string())],
        console_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        serial_log: path.to_path_buf(),
        screendump: None,
        state_dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        qemu_cmdline: String::new(),
        flaky_first_attempt: None,
    })
}

/// Judges every log, prints the summary, writes JUnit.
pub(crate) fn report_ktap(
    logs: &[std::path::PathBuf],
    junit_path: Option<&Path>,
) -> Result<ExitCode, Error> {
    let started = SystemTime::now();
    let mut results = Vec::new();
    for log in logs {
        let r = judge_log(log)?;
        println!("{}", summary::scenario_line(&r));
        results.push(r);
    }
    println!("{}", summary::totals(&results));
    if let Some(path) = junit_path {
        let info = junit::RunInfo {
            name: "xsc-release".into(),
            started,
            duration: Duration::ZERO,
            interrupted: false,
        };
        junit::write(path, &results, &info).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(if results.iter().all(ScenarioResult::passed) {
        ExitCode::Success
    } else {
        ExitCode::ProductFailed
    })
}
