//! Verdict records: a gate's verdict carried from the CI shard that booted it to the job
//! that signs (`test --verdicts DIR --run-id ID` writes them, `candidate --verdicts DIR
//! --run-id ID` checks them). A record is the verdict cache's own format (the
//! `ScenarioResult` JSON of `run/gate.rs`) plus what it was judged on: the pipeline run, the
//! scenario's hash, the booted images' hashes, the harness binary's hash, and the serial log.
//!
//! The checking side trusts nothing it can recompute: every hash must equal what it would
//! boot itself, and it judges the carried serial log again with the live observers
//! (`boot::step::Watch`) and the one `judge`, so a result flipped with its hashes intact
//! is refused. Layout: `DIR/<scenario>/{record.json, serial.log, junit.xml, bench.json}`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::boot::step::{Event, Rules as WatchRules, Watch};
use crate::input::scenario::{RunUntil, Scenario};
use crate::observe::judge::{self, Observed, Rules};
use crate::observe::verdict::{CaseResult, ScenarioResult};

/// The record's format tag; a record of another format is refused, never guessed at.
pub(crate) const FORMAT: &str = "xsc-verdict-record-v1";
/// The record in a scenario's directory.
pub(crate) const RECORD: &str = "record.json";
/// The serial log the verdict was judged from.
pub(crate) const SERIAL: &str = "serial.log";
/// The scenario's JUnit, as the shard wrote it.
pub(crate) const JUNIT: &str = "junit.xml";

/// The result properties that name what was booted: their values are the SHA-256 of the
/// kernel, initramfs and ISO files (`run::prepare`). The command line appended to the
/// kernel is not here: it comes from the scenario and the harness, both hashed already.
pub(crate) const IMAGE_PROPERTIES: [&str; 3] = ["kernel.sha256", "initrd.sha256", "iso.sha256"];

/// One gate's verdict as a shard proved it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerdictRecord {
    /// [`FORMAT`].
    pub format: String,
    /// The pipeline run this record belongs to (`--run-id`).
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// SHA-256 of the scenario file.
    pub scenario_sha256: String,
    /// `kernel.sha256`/`initrd.sha256`/`iso.sha256` → hash of what was booted.
    pub image: Vec<(String, String)>,
    /// SHA-256 of the harness binary that judged it.
    pub harness_sha256: String,
    /// The verdict (pass or not), said once more so a reader need not judge the result.
    pub passed: bool,
    /// The result, in the verdict cache's format.
    pub result: ScenarioResult,
}

/// Why a record is not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// No record for a gate.
    #[error("gate {scenario}: no verdict record in {}", .dir.display())]
    Missing {
        /// The gate.
        scenario: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// The record or its log cannot be read or parsed.
    #[error("gate {scenario}: {}: {detail}", .path.display())]
    Unreadable {
        /// The gate.
        scenario: String,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A field differs from what this job would boot or judge with.
    #[error("gate {scenario}: the record's {what} is {record}, this job's is {here}")]
    Differs {
        /// The gate.
        scenario: String,
        /// Which field (`run id`, `scenario hash`, `harness`, `kernel.sha256` …).
        what: String,
        /// The record's value.
        record: String,
        /// The value here.
        here: String,
    },
    /// Judging the carried serial log again gives another verdict than the record's.
    #[error("gate {scenario}: the record's verdict is not what its serial log judges to: {detail}")]
    Rejudged {
        /// The gate.
        scenario: String,
        /// The first difference.
        detail: String,
    },
}

/// The image identity of a result: its [`IMAGE_PROPERTIES`], in that order.
pub(crate) fn image_of(properties: &[(String, String)]) -> Vec<(String, String)> {
    IMAGE_PROPERTIES
        .iter()
        .filter_map(|k| {
            properties
                .iter()
                .find(|(n, _)| n == k)
                .map(|(n, v)| (n.clone(), v.clone()))
        })
        .collect()
}

/// Writes the record of one finished scenario run under `dir/<scenario>/`: the record,
/// a copy of its serial log, its JUnit (written by `junit`), and `bench.json` if any.
pub(crate) fn write(
    dir: &Path,
    run_id: &str,
    scenario: &Scenario,
    result: &ScenarioResult,
    harness_sha256: &str,
    junit: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let out = dir.join(&scenario.name);
    std::fs::create_dir_all(&out)?;
    std::fs::copy(&result.serial_log, out.join(SERIAL))?;
    let bench = result.state_dir.join(crate::run::BENCH_JSON);
    if bench.is_file() {
        std::fs::copy(&bench, out.join(crate::run::BENCH_JSON))?;
    }
    junit(&out.join(JUNIT))?;
    let record = VerdictRecord {
        format: FORMAT.into(),
        run_id: run_id.into(),
        scenario: scenario.name.clone(),
        scenario_sha256: scenario.hash.clone(),
        image: image_of(&result.properties),
        harness_sha256: harness_sha256.into(),
        passed: result.passed(),
        result: result.clone(),
    };
    let text = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
    crate::sys::atomic_file::write(&out.join(RECORD), &text)?;
    Ok(out)
}

/// What the checking job expects of a gate's record.
pub(crate) struct Expected<'a> {
    /// `--run-id`.
    pub run_id: &'a str,
    /// The gate as this job loaded it.
    pub scenario: &'a Scenario,
    /// The image properties of what this job prepared for it ([`image_of`]).
    pub image: &'a [(String, String)],
    /// This harness binary's hash.
    pub harness_sha256: &'a str,
}

/// Reads and checks the record of one gate; the accepted result points at the record's
/// own serial log and directory.
pub(crate) fn accept(dir: &Path, want: &Expected<'_>) -> Result<ScenarioResult, RecordError> {
    let name = &want.scenario.name;
    let here = dir.join(name);
    let path = here.join(RECORD);
    let unreadable = |path: &Path, detail: String| RecordError::Unreadable {
        scenario: name.clone(),
        path: path.to_path_buf(),
        detail,
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RecordError::Missing {
                scenario: name.clone(),
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(unreadable(&path, e.to_string())),
    };
    let record: VerdictRecord =
        serde_json::from_slice(&bytes).map_err(|e| unreadable(&path, e.to_string()))?;
    let differs = |what: &str, record: &str, here: &str| RecordError::Differs {
        scenario: name.clone(),
        what: what.into(),
        record: record.into(),
        here: here.into(),
    };
    let checks: [(&str, &str, &str); 5] = [
        ("format", &record.format, FORMAT),
        ("run id", &record.run_id, want.run_id),
        ("scenario", &record.scenario, name),
        (
            "scenario hash",
            &record.scenario_sha256,
            &want.scenario.hash,
        ),
        (
            "harness binary hash",
            &record.harness_sha256,
            want.harness_sha256,
        ),
    ];
    for (what, r, h) in checks {
        if r != h {
            return Err(differs(what, r, h));
        }
    }
    // What was booted: the record's own list, and the hashes its result carries, must both
    // be what this job prepared.
    let show = |v: &[(String, String)]| {
        v.iter()
            .map(|(k, h)| format!("{k}={h}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (what, got) in [
        ("image", record.image.as_slice()),
        (
            "result's image",
            image_of(&record.result.properties).as_slice(),
        ),
    ] {
        if got != want.image {
            return Err(differs(what, &show(got), &show(want.image)));
        }
    }
    let log = here.join(SERIAL);
    let console = std::fs::read(&log).map_err(|e| unreadable(&log, e.to_string()))?;
    let verdict = rejudge(want.scenario, &record.result, &console)
        .map_err(|e| unreadable(&log, e.to_string()))?;
    let claimed = std::iter::once(&record.result.boot).chain(&record.result.cases);
    let found = std::iter::once(&verdict.boot).chain(&verdict.cases);
    if let Some(detail) = first_difference(claimed, found) {
        return Err(RecordError::Rejudged {
            scenario: name.clone(),
            detail,
        });
    }
    if record.passed != record.result.passed() {
        return Err(RecordError::Rejudged {
            scenario: name.clone(),
            detail: format!(
                "it says passed = {} over cases that say otherwise",
                record.passed
            ),
        });
    }
    let mut result = record.result;
    result.serial_log = log;
    result.state_dir = here;
    Ok(result)
}

/// A clock that a replay never reaches (no clock event is fed; a deadline must still be
/// representable).
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The scenario's cases judged again from a serial log, by the live run's observers and
/// rules: the log's lines go through the same `Watch` (ready marker, KTAP, crash scanner),
/// and the run's end is the record's (the host saw it; a log cannot say it).
pub(crate) fn rejudge(
    scenario: &Scenario,
    result: &ScenarioResult,
    console: &[u8],
) -> Result<judge::Verdict, regex::Error> {
    let at = Instant::now();
    let rules = WatchRules {
        ready: Regex::new(&scenario.ready)?,
        boot_timeout: NEVER,
        silence_timeout: NEVER,
        test_backstop: NEVER,
        stop_at_ready: scenario.until == RunUntil::Ready,
    };
    let mut watch = Watch::new(rules, &scenario.crash, at)?;
    let mut splitter = crate::boot::console::LineSplitter::default();
    let mut lines = splitter.push(console);
    lines.extend(splitter.finish());
    for line in lines {
        watch.step(at, Event::Line(line));
    }
    let observed = watch.finish(&result.end);
    Ok(judge::judge(
        Observed {
            end: &result.end,
            ready: observed.ready_at.is_some(),
            ktap: observed.ktap,
            crashes: &observed.crashes,
        },
        Rules {
            until: scenario.until,
            gate: scenario.gate.as_ref(),
            // The carried log is the run's last (testing) phase: it must print KTAP.
            ktap_required: true,
        },
    ))
}

/// The first case where the record and the replay disagree, in words.
fn first_difference<'a>(
    claimed: impl Iterator<Item = &'a CaseResult>,
    found: impl Iterator<Item = &'a CaseResult>,
) -> Option<String> {
    let (claimed, found): (Vec<_>, Vec<_>) = (claimed.collect(), found.collect());
    for (c, f) in claimed.iter().zip(&found) {
        if c.name != f.name || c.status != f.status {
            return Some(format!(
                "case {} is {:?} in the record, the log gives {} {:?}",
                c.name, c.status, f.name, f.status
            ));
        }
    }
    (claimed.len() != found.len()).then(|| {
        format!(
            "the record has {} case(s), the log gives {}",
            claimed.len(),
            found.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::verdict::{CaseStatus, FailureKind, RunEnd};

    fn smoke() -> Scenario {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::input::scenario::load(
            &root.join("scenarios/smoke.toml"),
            &root.join("guest-tests"),
        )
        .unwrap()
    }

    /// A result judged live from the recorded smoke transcript (boot/testdata).
    fn recorded(dir: &Path) -> (Scenario, ScenarioResult) {
        let s = smoke();
        let serial = dir.join("serial.log");
        std::fs::write(&serial, crate::boot::step::tests::SMOKE).unwrap();
        let end = RunEnd::PoweredOff;
        let v = rejudge(
            &s,
            &fake_result(&s, end.clone()),
            crate::boot::step::tests::SMOKE,
        )
        .unwrap();
        let mut r = fake_result(&s, end);
        r.boot = v.boot;
        r.cases = v.cases;
        r.serial_log = serial;
        r.state_dir = dir.to_path_buf();
        (s, r)
    }

    fn fake_result(s: &Scenario, end: RunEnd) -> ScenarioResult {
        ScenarioResult {
            name: s.name.clone(),
            started: std::time::SystemTime::UNIX_EPOCH,
            duration: Duration::from_secs(3),
            boot: CaseResult::passed("boot"),
            cases: vec![],
            end,
            crashes: vec![],
            properties: vec![
                ("kernel.sha256".into(), "k".repeat(64)),
                ("initrd.sha256".into(), "i".repeat(64)),
            ],
            console_tail: String::new(),
            serial_log: PathBuf::new(),
            screendump: None,
            state_dir: PathBuf::new(),
            qemu_cmdline: String::new(),
            flaky_first_attempt: None,
        }
    }

    fn expected<'a>(s: &'a Scenario, image: &'a [(String, String)]) -> Expected<'a> {
        Expected {
            run_id: "run-7",
            scenario: s,
            image,
            harness_sha256: "h",
        }
    }

    fn edit(dir: &Path, name: &str, f: impl FnOnce(&mut serde_json::Value)) {
        let p = dir.join(name).join(RECORD);
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    }

    #[test]
    fn a_written_record_is_accepted_and_each_tampering_refused() {
        let run = tempfile::tempdir().unwrap();
        let (s, r) = recorded(run.path());
        assert!(r.passed() && r.cases.len() > 30, "{:?}", r.cases);
        let image = image_of(&r.properties);
        let fresh = || {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "run-7", &s, &r, "h", |p| {
                std::fs::write(p, "<x/>")
            })
            .unwrap();
            dir
        };
        let dir = fresh();
        let ok = accept(dir.path(), &expected(&s, &image)).unwrap();
        assert!(ok.passed());
        assert_eq!(ok.serial_log, dir.path().join("smoke").join(SERIAL));

        // Another pipeline run, another harness, another image: each named.
        let other_run = Expected {
            run_id: "run-8",
            ..expected(&s, &image)
        };
        let e = accept(dir.path(), &other_run).unwrap_err();
        assert!(
            e.to_string()
                .contains("run id is run-7, this job's is run-8"),
            "{e}"
        );
        let other_harness = Expected {
            harness_sha256: "g",
            ..expected(&s, &image)
        };
        let e = accept(dir.path(), &other_harness).unwrap_err();
        assert!(e.to_string().contains("harness binary hash"), "{e}");
        let other_image = vec![("kernel.sha256".to_string(), "x".repeat(64))];
        let e = accept(dir.path(), &expected(&s, &other_image)).unwrap_err();
        assert!(
            e.to_string()
                .contains("record's image is kernel.sha256=kkk"),
            "{e}"
        );

        // The result's image hash edited in the record alone.
        let dir = fresh();
        edit(dir.path(), "smoke", |v| {
            v["result"]["properties"][0][1] = "z".repeat(64).into();
        });
        let e = accept(dir.path(), &expected(&s, &image)).unwrap_err();
        assert!(e.to_string().contains("result's image"), "{e}");

        // A failing log under a passing record: the replay says so.
        let dir = fresh();
        let log = dir.path().join("smoke").join(SERIAL);
        let text = String::from_utf8(std::fs::read(&log).unwrap()).unwrap();
        let first_ok = text
            .lines()
            .find(|l| l.trim_start().starts_with("ok "))
            .unwrap();
        std::fs::write(
            &log,
            text.replacen(first_ok, &first_ok.replacen("ok ", "not ok ", 1), 1),
        )
        .unwrap();
        let e = accept(dir.path(), &expected(&s, &image)).unwrap_err();
        assert!(matches!(e, RecordError::Rejudged { .. }), "{e}");

        // A failing verdict flipped to passing in the record, log untouched.
        let mut red = r.clone();
        red.cases[0].status = CaseStatus::Failed {
            kind: FailureKind::Assertion,
            message: "boom".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "run-7", &s, &red, "h", |_| Ok(())).unwrap();
        let e = accept(dir.path(), &expected(&s, &image)).unwrap_err();
        assert!(e.to_string().contains("is Failed"), "{e}");

        let e = accept(tempfile::tempdir().unwrap().path(), &expected(&s, &image)).unwrap_err();
        assert!(matches!(e, RecordError::Missing { .. }), "{e}");
    }
}
