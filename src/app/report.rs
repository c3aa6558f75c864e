//! `report ktap`: the same verdict machinery for console logs captured elsewhere (real
//! hardware, another lab, kselftest runs), without booting anything. `report merge` and
//! `report durations`: JUnit files of CI shards made one, and their times kept for the
//! next partition.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::boot::console::LineSplitter;
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::durations::Durations;
use crate::input::scenario::CrashPatterns;
use crate::observe::crash::CrashScanner;
use crate::observe::judge::{self, Observed, Rules};
use crate::observe::ktap::KtapParser;
use crate::observe::verdict::{FailureKind, RunEnd, ScenarioResult};
use crate::report::{junit, merge, summary};

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
            properties: vec![],
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

/// `report merge`: one JUnit from many; exit 0 when written (the verdicts are the JUnit
/// reporter's to show), 2 when the files do not merge (duplicate test, missing shard).
pub(crate) fn report_merge(
    files: &[std::path::PathBuf],
    output: &Path,
    expect_shards: Option<usize>,
) -> Result<ExitCode, Error> {
    let reports = files
        .iter()
        .map(|f| Ok((f.clone(), merge::read(f)?)))
        .collect::<Result<Vec<_>, merge::MergeError>>()?;
    let merged = merge::merge(&reports, expect_shards)?;
    let xml = merge::to_xml(&merged)?;
    // A reader (the CI's JUnit reporter) never sees half a file.
    let tmp = output.with_extension(format!("xml.tmp-{}", std::process::id()));
    std::fs::write(&tmp, xml.as_bytes()).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, output).map_err(Error::io(output))?;
    println!(
        "merged {} file(s): {} suite(s), {} test(s), {} failure(s), {} error(s), {} skipped -> {}",
        files.len(),
        merged.test_suites.len(),
        merged.tests,
        merged.failures,
        merged.errors,
        merged.skipped,
        output.display()
    );
    Ok(ExitCode::Success)
}

/// `report durations`: scenario times from JUnit into the durations file.
pub(crate) fn report_durations(
    files: &[std::path::PathBuf],
    output: &Path,
) -> Result<ExitCode, Error> {
    let mut measured = Vec::new();
    for f in files {
        measured.extend(merge::scenario_times(&merge::read(f)?));
    }
    let mut d = Durations::load(output).map_err(|e| Error::Usage(crate::error::chain(&e)))?;
    let n = measured.len();
    d.update(measured);
    d.save(output).map_err(|e| Error::Io {
        path: output.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    println!("{n} scenario time(s) -> {}", output.display());
    Ok(ExitCode::Success)
}
