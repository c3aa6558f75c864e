//! JUnit XML report of a run: one `<testsuite>` per scenario, the synthetic `boot` case first,
//! then one `<testcase>` per judged case. Shaped for GitLab, Jenkins and the GitHub actions
//! (harness-anchors §5) and valid against the Jenkins xunit schema
//! `tests/fixtures/junit-xsd/jenkins-xunit-junit-10.xsd`.
//!
//! Rules that shape the code:
//! - GitLab ignores `message` in places: the real diagnostic goes into the element body.
//! - GitLab keeps only the first of equal names: names are made unique.
//! - Serial output is hostile (ANSI, NUL, `]]>`, CRLF): every string is cleaned first, and
//!   quick-junit escapes the rest.
//! - No testcase timestamps or properties (the schema rejects them); the `skipped` attribute
//!   quick-junit always writes on `<testsuites>` is removed from the XML text.
//! - Sizes are capped (GitLab: 30 MB per file), keeping the tail of long text.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use crate::observe::crash::clean_console_line;
use crate::observe::verdict::{CaseResult, CaseStatus, ScenarioResult};

/// `<testsuites name>` of a run (a shard's report appends ` shard K/N`).
pub(crate) const REPORT_NAME: &str = "xsc-release";

/// The run as a whole.
#[derive(Clone, Debug)]
pub(crate) struct RunInfo {
    /// The report name (`<testsuites name>`), normally `xsc-release`.
    pub name: String,
    /// When the run started.
    pub started: SystemTime,
    /// Wall time of the whole run.
    pub duration: Duration,
    /// The user interrupted the run; the results are partial.
    pub interrupted: bool,
    /// Properties of the whole run (shard, host, harness), repeated on every suite: the
    /// schema allows none on `<testsuites>`, and a merged report must still say where each
    /// suite ran.
    pub properties: Vec<(String, String)>,
}

/// Why the report could not be produced or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JunitError {
    /// quick-junit failed to serialise (not expected with in-memory output).
    #[error("cannot serialise the JUnit report: {0}")]
    Serialize(#[from] quick_junit::SerializeError),
    /// Writing or renaming the file failed.
    #[error("cannot write the JUnit report {}: {source}", path.display())]
    Io {
        /// The file being written (the temporary file or the destination).
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Suite `<system-out>` cap: the GitHub step summary limit, and plenty for a console tail.
const SYSTEM_OUT_MAX: usize = 1024 * 1024;
/// Per-section caps inside one failure body.
const BODY_SECTION_MAX: usize = 64 * 1024;
/// All failure bodies of one suite together; later ones keep only message and diagnostics.
const SUITE_BODY_BUDGET: usize = 4 * 1024 * 1024;
/// `message` attributes are one short line.
const MESSAGE_MAX: usize = 500;

/// Build the report. Scenarios in the given order; an interrupted run gets one extra suite
/// (named after the run) with an errored `interrupted` case so CI cannot mistake partial
/// results for a pass.
pub(crate) fn report(results: &[ScenarioResult], run: &RunInfo) -> Report {
    let mut report = Report::new(xml_text(&run.name));
    report.set_time(run.duration);
    let mut suite_names = Unique::default();
    for result in results {
        let name = suite_names.name(&xml_text(&result.name));
        let mut suite = scenario_suite(result, &name);
        add_run_properties(&mut suite, run);
        report.add_test_suite(suite);
    }
    if run.interrupted {
        let name = suite_names.name(&xml_text(&run.name));
        let mut suite = TestSuite::new(name.as_str());
        suite
            .set_timestamp(DateTime::<Utc>::from(run.started))
            .set_time(run.duration);
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        let message = format!(
            "the run was interrupted; only the {} scenario(s) that finished are reported",
            results.len()
        );
        status
            .set_type("interrupted")
            .set_message(message.as_str())
            .set_description(message.as_str());
        let mut case = TestCase::new("interrupted", status);
        case.set_classname(format!("xsc.{name}"));
        suite.add_test_case(case);
        add_run_properties(&mut suite, run);
        report.add_test_suite(suite);
    }
    report
}

fn add_run_properties(suite: &mut TestSuite, run: &RunInfo) {
    for (k, v) in &run.properties {
        suite.add_property(Property::new(xml_text(k), xml_text(v)));
    }
}

/// The report as XML text, valid against the Jenkins junit-10 schema.
#[cfg(test)]
pub(crate) fn to_xml(results: &[ScenarioResult], run: &RunInfo) -> Result<String, JunitError> {
    let xml = report(results, run).to_string()?;
    Ok(strip_root_skipped(xml))
}

/// Write the report atomically: a temporary file in the same directory, synced, then renamed
/// over `path`, so a reader never sees half a report (and an interrupted run keeps the last
/// complete one until the new one is whole).
pub(crate) fn write(
    path: &Path,
    results: &[ScenarioResult],
    run: &RunInfo,
) -> Result<(), JunitError> {
    write_with_suites(path, results, run, Vec::new())
}

/// [`write`] with `extra` suites after the scenarios' (read from the reports other
/// harnesses wrote: `bisect --each-harness`).
pub(crate) fn write_with_suites(
    path: &Path,
    results: &[ScenarioResult],
    run: &RunInfo,
    extra: Vec<TestSuite>,
) -> Result<(), JunitError> {
    let mut report = report(results, run);
    report.add_test_suites(extra);
    let xml = strip_root_skipped(report.to_string()?);
    crate::sys::atomic_file::write(path, xml.as_bytes()).map_err(|source| JunitError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn scenario_suite(result: &ScenarioResult, suite_name: &str) -> TestSuite {
    let mut suite = TestSuite::new(suite_name);
    suite
        .set_timestamp(DateTime::<Utc>::from(result.started))
        .set_time(result.duration);

    for (k, v) in &result.properties {
        suite.add_property(Property::new(xml_text(k), xml_text(v)));
    }
    let end = result.end.describe();
    let fixed = [
        ("serial-log", result.serial_log.display().to_string()),
        ("state-dir", result.state_dir.display().to_string()),
        ("qemu-cmdline", result.qemu_cmdline.clone()),
        ("end", end),
    ];
    for (k, v) in fixed {
        suite.add_property(Property::new(k, xml_text(&v)));
    }
    if let Some(shot) = &result.screendump {
        suite.add_property(Property::new(
            "screendump",
            xml_text(&shot.display().to_string()),
        ));
    }
    if result.flaky_first_attempt.is_some() {
        suite.add_property(Property::new("retries", "1"));
    }

    let attachments = attachment_lines(result);
    let context = FailureContext::new(result);
    let mut budget = SUITE_BODY_BUDGET;
    let mut names = Unique::default();
    let classname = format!("xsc.{suite_name}");
    for (i, case) in result.all_cases().enumerate() {
        let name = names.name(&xml_text(&case.name));
        let mut tc = TestCase::new(name.as_str(), case_status(case, &context, &mut budget));
        tc.set_classname(classname.as_str());
        let mut out = String::new();
        if case.status.is_bad() {
            // GitLab links attachments from the testcase's own system-out.
            out.push_str(&attachments);
        } else if !case.diagnostics.is_empty() {
            // A passing case with notes: an expected failure (TODO/XFAIL) worth seeing.
            out.push_str(&keep_tail(
                &xml_text(&case.diagnostics.join("\n")),
                BODY_SECTION_MAX,
            ));
        }
        if !out.is_empty() {
            tc.set_system_out(out);
        }
        if i == 0 {
            if let Some(first) = &result.flaky_first_attempt {
                add_flaky(&mut tc, first);
            }
        }
        suite.add_test_case(tc);
    }

    let tail = keep_tail(
        &xml_text(&result.console_tail),
        SYSTEM_OUT_MAX - attachments.len(),
    );
    let mut system_out = tail;
    if !system_out.is_empty() && !system_out.ends_with('\n') {
        system_out.push('\n');
    }
    system_out.push_str(&attachments);
    suite.set_system_out(system_out);
    suite
}

/// `[[ATTACHMENT|path]]` lines (Jenkins attachments plugin, GitLab), one per line.
fn attachment_lines(result: &ScenarioResult) -> String {
    let mut s = format!("[[ATTACHMENT|{}]]\n", result.serial_log.display());
    if let Some(shot) = &result.screendump {
        s.push_str(&format!("[[ATTACHMENT|{}]]\n", shot.display()));
    }
    xml_text(&s)
}

/// The first attempt failed and was re-run: Surefire's `<flakyFailure>` when the case passed
/// in the end, `<rerunFailure>` when it failed again. `type` is set because the schema needs it.
fn add_flaky(tc: &mut TestCase, first: &str) {
    let mut rerun = TestRerun::new(NonSuccessKind::Failure);
    rerun
        .set_type("rerun")
        .set_message(one_line(first))
        .set_description(keep_tail(&xml_text(first), BODY_SECTION_MAX));
    tc.status.add_rerun(rerun);
}

/// What every failure body of a scenario shares: crash excerpts and the console tail, built
/// once.
struct FailureContext {
    crashes: String,
    console: String,
}

impl FailureContext {
    fn new(result: &ScenarioResult) -> Self {
        let mut crashes = String::new();
        for c in &result.crashes {
            let fatal = if c.fatal { "fatal" } else { "non-fatal" };
            crashes.push_str(&format!("--- kernel {} ({fatal}) ---\n", c.kind));
            for line in &c.excerpt {
                crashes.push_str(line);
                crashes.push('\n');
            }
        }
        FailureContext {
            crashes: keep_tail(&xml_text(&crashes), BODY_SECTION_MAX),
            console: keep_tail(&xml_text(&result.console_tail), BODY_SECTION_MAX),
        }
    }
}

fn case_status(case: &CaseResult, context: &FailureContext, budget: &mut usize) -> TestCaseStatus {
    let (kind, ty, message) = match &case.status {
        CaseStatus::Passed => return TestCaseStatus::success(),
        CaseStatus::Skipped { reason } => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(one_line(reason));
            return s;
        }
        CaseStatus::Failed { kind, message } => (NonSuccessKind::Failure, kind.as_str(), message),
        CaseStatus::Errored { kind, message } => (NonSuccessKind::Error, kind.as_str(), message),
    };
    let mut body = xml_text(message);
    body.push('\n');
    if !case.diagnostics.is_empty() {
        body.push_str("\ndiagnostics:\n");
        body.push_str(&keep_tail(
            &xml_text(&case.diagnostics.join("\n")),
            BODY_SECTION_MAX,
        ));
        body.push('\n');
    }
    let context_len = context.crashes.len() + context.console.len();
    if context_len <= *budget {
        *budget -= context_len;
        if !context.crashes.is_empty() {
            body.push_str("\nkernel problems on the console:\n");
            body.push_str(&context.crashes);
        }
        if !context.console.is_empty() {
            body.push_str("\nconsole tail:\n");
            body.push_str(&context.console);
            body.push('\n');
        }
    } else {
        body.push_str("\n(crash excerpts and console tail omitted here: see the suite's system-out and the serial log)\n");
    }
    let mut status = TestCaseStatus::non_success(kind);
    status
        .set_type(ty)
        .set_message(one_line(message))
        .set_description(body);
    status
}

/// Clean text for XML: console noise removed line by line (ANSI, CR, control characters),
/// plus the two non-characters XML 1.0 forbids.
pub(crate) fn xml_text(s: &str) -> String {
    let cleaned: Vec<String> = s.split('\n').map(clean_console_line).collect();
    cleaned.join("\n").replace(['\u{fffe}', '\u{ffff}'], "")
}

/// The first line, cleaned and shortened: for `message` attributes.
fn one_line(s: &str) -> String {
    let first = xml_text(s.lines().next().unwrap_or(""));
    if first.len() <= MESSAGE_MAX {
        return first;
    }
    let mut cut = MESSAGE_MAX;
    while !first.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &first[..cut])
}

/// Keep the last `max` bytes of `s`, starting at a line boundary when one is near, with a note
/// saying how much was cut. The end of a console is where the failure is.
fn keep_tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    if let Some(nl) = s[start..].find('\n') {
        if nl < 1024 {
            start += nl + 1;
        }
    }
    format!("[… {start} bytes cut …]\n{}", &s[start..])
}

/// quick-junit 0.8 always writes `skipped="N"` on `<testsuites>`, which the Jenkins schema does
/// not declare; remove that one attribute from the root start tag only.
pub(crate) fn strip_root_skipped(xml: String) -> String {
    let Some(open) = xml.find("<testsuites") else {
        return xml;
    };
    // Attribute values are escaped, so the first `>` ends the start tag.
    let Some(close) = xml[open..].find('>').map(|i| open + i) else {
        return xml;
    };
    let tag = &xml[open..close];
    let Some(attr) = tag.find(" skipped=\"") else {
        return xml;
    };
    let value_start = open + attr + " skipped=\"".len();
    let Some(value_len) = xml[value_start..close].find('"') else {
        return xml;
    };
    let mut out = String::with_capacity(xml.len());
    out.push_str(&xml[..open + attr]);
    out.push_str(&xml[value_start + value_len + 1..]);
    out
}

/// Hands out unique names: a repeat gets `#2`, `#3` ….
#[derive(Default)]
struct Unique {
    seen: HashSet<String>,
}

impl Unique {
    fn name(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "(unnamed)" } else { base };
        if self.seen.insert(base.to_string()) {
            return base.to_string();
        }
        let mut k = 2;
        loop {
            let candidate = format!("{base}#{k}");
            if self.seen.insert(candidate.clone()) {
                return candidate;
            }
            k += 1;
        }
    }
}

#[cfg(test)]
// The tests validate with the real xmllint (clippy.toml: only sys spawns).
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::observe::verdict::{Crash, FailureKind, RunEnd};
    use std::process::Command;

    const XSD: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/junit-xsd/jenkins-xunit-junit-10.xsd"
    );

    fn base(name: &str) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
            duration: Duration::from_millis(12_345),
            boot: CaseResult::passed("boot"),
            cases: vec![CaseResult::passed("xsc_ring_test.fs.read_basic")],
            end: RunEnd::PoweredOff,
            crashes: Vec::new(),
            properties: vec![("qemu.version".into(), "7.2.22".into()), ("accel".into(), "kvm".into())],
            console_tail: "XSC-READY\nKTAP version 1\n1..1\nok 1 xsc_ring_test\nXSC-TEST-DONE rc=0\n".into(),
            serial_log: PathBuf::from("state/debian-bios/serial.log"),
            screendump: None,
            state_dir: PathBuf::from("state/debian-bios"),
            qemu_cmdline: "qemu-system-x86_64 -nodefaults -no-reboot -m 1G -smp 2 -append 'console=ttyS0 printk.time=1'"
                .into(),
            flaky_first_attempt: None,
        }
    }

    fn run(interrupted: bool) -> RunInfo {
        RunInfo {
            name: "xsc-release".into(),
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
            duration: Duration::from_secs(95),
            interrupted,
            properties: vec![
                ("shard".into(), "2/3".into()),
                ("host".into(), "ci-7".into()),
            ],
        }
    }

    fn passing() -> ScenarioResult {
        base("debian-bios")
    }

    fn failing() -> ScenarioResult {
        let mut r = base("debian-uefi");
        let mut f = CaseResult::failed(
            "xsc_ring_test.fs.write_basic",
            FailureKind::Assertion,
            "not ok",
        );
        f.diagnostics = vec!["write_basic: expected 5 got -14".into()];
        r.cases.push(f);
        let mut todo = CaseResult::passed("xsc_ring_test.fs.xfail");
        todo.diagnostics = vec!["expected failure (TODO): known bug 17".into()];
        r.cases.push(todo);
        r.cases.push(CaseResult {
            name: "xsc_ring_test.fs.lseek".into(),
            status: CaseStatus::Skipped {
                reason: "no big files".into(),
            },
            diagnostics: vec![],
        });
        r.cases.push(CaseResult::failed(
            "fault",
            FailureKind::Timeout,
            "TIMEOUT after 3s",
        ));
        r.end = RunEnd::PoweredOff;
        r
    }

    /// A panic with the nastiest console we can think of.
    fn crashed() -> ScenarioResult {
        let mut r = base("alpine-bios");
        r.cases.push(CaseResult::errored(
            "xsc_ring_test.#3",
            FailureKind::Crash,
            "the guest kernel panicked",
        ));
        r.cases.push(CaseResult::failed(
            "console-scan",
            FailureKind::Crash,
            "kernel panic: sysrq triggered crash",
        ));
        r.end = RunEnd::Panicked;
        let excerpt = vec![
            "[   12.341510] Kernel panic - not syncing: sysrq triggered crash".to_string(),
            "[   12.342047] CPU: 1 PID: 1 Comm: init Not tainted 6.1.0-xsc1 #1".to_string(),
            "[   12.343534] Call Trace:".to_string(),
            "[   12.343781]  <TASK> & </TASK> ]]> <![CDATA[ x ]]>".to_string(),
            "[   12.351609] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---"
                .to_string(),
        ];
        r.crashes.push(Crash {
            kind: "panic".into(),
            fatal: true,
            line: excerpt[0].clone(),
            excerpt,
        });
        r.console_tail = "\x1bc\x1b[?7l\x1b[2J\x1b[0;1;31mSeaBIOS\x1b[0m\r\n\u{0}\u{1}\u{7}\u{8}\u{b}\u{c}\u{1f}\u{7f}\u{fffe}\u{ffff}\
            ]]> <tag attr=\"x\"> & &amp; \u{fffd}\r\n[   12.341510] Kernel panic - not syncing: sysrq triggered crash\r\n"
            .into();
        r.screendump = Some(PathBuf::from("state/alpine-bios/screen.png"));
        r.serial_log = PathBuf::from("state/alpine-bios/serial.log");
        r.state_dir = PathBuf::from("state/alpine-bios");
        r.properties
            .push(("weird\u{0}key".into(), "v\x1b[31mal\"ue<>&".into()));
        r
    }

    fn skipped_and_errored() -> ScenarioResult {
        let mut r = base("fedora-bios");
        r.boot = CaseResult {
            name: "boot".into(),
            status: CaseStatus::Skipped {
                reason: "no KVM and TCG disallowed".into(),
            },
            diagnostics: vec![],
        };
        r.cases = vec![CaseResult::errored(
            "harness",
            FailureKind::Infra,
            "QEMU died: exit status 1\nstderr: could not open disk",
        )];
        r.end = RunEnd::QemuDied {
            exit: crate::observe::verdict::QemuExit::Code(1),
            at_start: true,
            stderr: "could not open disk".into(),
        };
        r
    }

    fn flaky() -> ScenarioResult {
        let mut r = base("debian-bios-smp4");
        r.flaky_first_attempt = Some(
            "silence timeout: no console output for 30s\nfirst attempt console tail ...".into(),
        );
        r
    }

    fn flaky_failed_again() -> ScenarioResult {
        let mut r = base("debian-bios-smp8");
        r.boot = CaseResult::failed(
            "boot",
            FailureKind::Timeout,
            "boot timeout: no ready marker within 60s",
        );
        r.flaky_first_attempt = Some("boot timeout: no ready marker within 60s".into());
        r
    }

    fn all() -> Vec<ScenarioResult> {
        vec![
            passing(),
            failing(),
            crashed(),
            skipped_and_errored(),
            flaky(),
            flaky_failed_again(),
        ]
    }

    fn validate(xml: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("junit.xml");
        std::fs::write(&file, xml).expect("write xml");
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(XSD)
            .arg(&file)
            .output()
            .expect(
                "xmllint must be installed (libxml2-utils): the schema check is part of the test",
            );
        assert!(
            out.status.success(),
            "xmllint rejected the report:\n{}\n---\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn full_report_validates_and_round_trips() {
        let results = all();
        let xml = to_xml(&results, &run(false)).expect("serialises");
        validate(&xml);
        let back = Report::deserialize_from_str(&xml).expect("parses back");
        assert_eq!(back.test_suites.len(), results.len());
        for (suite, result) in back.test_suites.iter().zip(&results) {
            assert_eq!(suite.name.as_str(), result.name);
            assert_eq!(suite.test_cases.len(), result.cases.len() + 1);
            assert_eq!(suite.test_cases[0].name.as_str(), "boot");
            let names: HashSet<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names.len(),
                suite.test_cases.len(),
                "unique names in {}",
                suite.name.as_str()
            );
            for c in &suite.test_cases {
                assert_eq!(
                    c.classname.as_deref(),
                    Some(format!("xsc.{}", result.name).as_str())
                );
                assert!(c.timestamp.is_none() && c.properties.is_empty());
            }
            assert_eq!(suite.time, Some(Duration::from_millis(12_345)));
        }
        assert_eq!(
            back.tests,
            results.iter().map(|r| r.cases.len() + 1).sum::<usize>()
        );
    }

    #[test]
    fn root_has_no_skipped_attribute_but_suites_do() {
        let xml = to_xml(&all(), &run(false)).expect("serialises");
        let root_start = xml.find("<testsuites").expect("root");
        let root_tag = &xml[root_start..root_start + xml[root_start..].find('>').expect("end")];
        assert!(!root_tag.contains("skipped="), "{root_tag}");
        assert!(root_tag.contains("name=\"xsc-release\""));
        assert!(xml.contains("<testsuite name=\"fedora-bios\" tests=\"2\" skipped=\"1\""));
    }

    #[test]
    fn failure_body_carries_the_diagnostics() {
        let xml = to_xml(&[failing()], &run(false)).expect("serialises");
        let back = Report::deserialize_from_str(&xml).expect("parses");
        let suite = &back.test_suites[0];
        let case = suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "xsc_ring_test.fs.write_basic")
            .expect("case");
        match &case.status {
            TestCaseStatus::NonSuccess {
                kind,
                message,
                ty,
                description,
                ..
            } => {
                assert_eq!(*kind, NonSuccessKind::Failure);
                assert_eq!(ty.as_deref(), Some("assertion"));
                assert_eq!(message.as_deref(), Some("not ok"));
                let body = description.as_deref().unwrap_or_default();
                assert!(body.contains("write_basic: expected 5 got -14"), "{body}");
                assert!(
                    body.contains("XSC-TEST-DONE rc=0"),
                    "console tail in the body: {body}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let case = suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "fault")
            .expect("case");
        assert!(
            matches!(&case.status, TestCaseStatus::NonSuccess { ty: Some(t), .. } if t.as_str() == "timeout")
        );
        let skipped = suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "xsc_ring_test.fs.lseek")
            .expect("case");
        assert!(
            matches!(&skipped.status, TestCaseStatus::Skipped { message: Some(m), .. } if m.as_str() == "no big files")
        );
        let xfail = suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "xsc_ring_test.fs.xfail")
            .expect("case");
        assert!(matches!(xfail.status, TestCaseStatus::Success { .. }));
        assert!(
            xfail
                .system_out
                .as_deref()
                .is_some_and(|s| s.contains("known bug 17"))
        );
    }

    #[test]
    fn crash_with_garbage_console() {
        let xml = to_xml(&[crashed()], &run(false)).expect("serialises");
        validate(&xml);
        assert!(!xml.contains('\u{0}') && !xml.contains('\u{1b}') && !xml.contains('\u{fffe}'));
        assert!(!xml.contains("]]> <tag"), "raw ]]> must be escaped");
        let back = Report::deserialize_from_str(&xml).expect("parses");
        let suite = &back.test_suites[0];
        let out = suite.system_out.as_deref().expect("system-out");
        assert!(out.contains("SeaBIOS"), "{out}");
        assert!(out.contains("]]> <tag attr=\"x\"> & &amp;"), "{out}");
        assert!(
            out.contains("[[ATTACHMENT|state/alpine-bios/serial.log]]"),
            "{out:?}"
        );
        assert!(out.contains("[[ATTACHMENT|state/alpine-bios/screen.png]]"));
        let props: Vec<(&str, &str)> = suite
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert!(props.contains(&("qemu.version", "7.2.22")));
        assert!(props.contains(&("serial-log", "state/alpine-bios/serial.log")));
        assert!(props.contains(&("state-dir", "state/alpine-bios")));
        assert!(props.contains(&("end", "the guest kernel panicked")));
        assert!(
            props
                .iter()
                .any(|(k, v)| *k == "qemu-cmdline" && v.starts_with("qemu-system-x86_64"))
        );
        assert!(props.contains(&("weirdkey", "val\"ue<>&")), "{props:?}");
        let case = suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "console-scan")
            .expect("case");
        match &case.status {
            TestCaseStatus::NonSuccess {
                ty, description, ..
            } => {
                assert_eq!(ty.as_deref(), Some("crash"));
                let body = description.as_deref().unwrap_or_default();
                assert!(body.contains("--- kernel panic (fatal) ---"), "{body}");
                assert!(body.contains("---[ end Kernel panic"), "{body}");
                assert!(body.contains("console tail:"), "{body}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert!(
            case.system_out
                .as_deref()
                .is_some_and(|s| s.contains("[[ATTACHMENT|state/alpine-bios/screen.png]]"))
        );
        let errored = suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "xsc_ring_test.#3")
            .expect("case");
        assert!(matches!(
            &errored.status,
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Error,
                ..
            }
        ));
    }

    #[test]
    fn skipped_boot_and_errored_harness() {
        let xml = to_xml(&[skipped_and_errored()], &run(false)).expect("serialises");
        validate(&xml);
        let back = Report::deserialize_from_str(&xml).expect("parses");
        let suite = &back.test_suites[0];
        assert_eq!(
            (suite.tests, suite.skipped, suite.errors, suite.failures),
            (2, 1, 1, 0)
        );
        match &suite.test_cases[1].status {
            TestCaseStatus::NonSuccess {
                kind,
                ty,
                message,
                description,
                ..
            } => {
                assert_eq!(*kind, NonSuccessKind::Error);
                assert_eq!(ty.as_deref(), Some("infra"));
                assert_eq!(message.as_deref(), Some("QEMU died: exit status 1"));
                assert!(
                    description
                        .as_deref()
                        .is_some_and(|d| d.contains("could not open disk"))
                );
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn flaky_boot_gets_a_typed_flaky_failure() {
        let xml = to_xml(&[flaky(), flaky_failed_again()], &run(false)).expect("serialises");
        validate(&xml);
        assert!(xml.contains("<flakyFailure message=\"silence timeout: no console output for 30s\" type=\"rerun\""), "{xml}");
        assert!(
            xml.contains(
                "<rerunFailure message=\"boot timeout: no ready marker within 60s\" type=\"rerun\""
            ),
            "{xml}"
        );
        assert!(xml.contains("<property name=\"retries\" value=\"1\"/>"));
        let back = Report::deserialize_from_str(&xml).expect("parses");
        match &back.test_suites[0].test_cases[0].status {
            TestCaseStatus::Success { flaky_runs } => {
                assert_eq!(flaky_runs.len(), 1);
                assert_eq!(flaky_runs[0].ty.as_deref(), Some("rerun"));
            }
            other => panic!("expected a flaky success, got {other:?}"),
        }
    }

    #[test]
    fn duplicate_names_are_made_unique() {
        let mut a = passing();
        a.cases = vec![
            CaseResult::passed("boot"),
            CaseResult::passed("x"),
            CaseResult::failed("x", FailureKind::Assertion, "no"),
        ];
        let b = passing();
        let xml = to_xml(&[a, b], &run(false)).expect("serialises");
        validate(&xml);
        let back = Report::deserialize_from_str(&xml).expect("parses");
        let names: Vec<&str> = back.test_suites[0]
            .test_cases
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, vec!["boot", "boot#2", "x", "x#2"]);
        assert_eq!(back.test_suites[1].name.as_str(), "debian-bios#2");
    }

    #[test]
    fn interrupted_run_reports_partial_results_as_an_error() {
        let xml = to_xml(&[passing()], &run(true)).expect("serialises");
        validate(&xml);
        let back = Report::deserialize_from_str(&xml).expect("parses");
        assert_eq!(back.test_suites.len(), 2);
        let last = &back.test_suites[1];
        assert_eq!(last.name.as_str(), "xsc-release");
        assert_eq!(last.errors, 1);
        assert!(
            matches!(&last.test_cases[0].status, TestCaseStatus::NonSuccess { ty: Some(t), .. } if t.as_str() == "interrupted")
        );
        // Nothing finished at all: still a valid report that says so.
        let xml = to_xml(&[], &run(true)).expect("serialises");
        validate(&xml);
    }

    #[test]
    fn empty_run_validates() {
        validate(&to_xml(&[], &run(false)).expect("serialises"));
    }

    #[test]
    fn huge_console_is_capped_keeping_the_tail() {
        let mut r = crashed();
        let mut tail = String::new();
        for i in 0..100_000 {
            tail.push_str(&format!(
                "[ {i}.000000] line {i} of a very chatty console\n"
            ));
        }
        r.console_tail = tail;
        r.cases = (0..200)
            .map(|i| CaseResult::failed(format!("c{i}"), FailureKind::Assertion, "no"))
            .collect();
        let xml = to_xml(&[r], &run(false)).expect("serialises");
        validate(&xml);
        let back = Report::deserialize_from_str(&xml).expect("parses");
        let out = back.test_suites[0]
            .system_out
            .as_deref()
            .expect("system-out");
        assert!(out.len() <= SYSTEM_OUT_MAX + 1024, "{}", out.len());
        assert!(out.contains("line 99999 of"));
        assert!(!out.contains("line 1 of"));
        assert!(out.starts_with("[… "));
        // 200 failing cases share the per-suite body budget.
        assert!(xml.len() < 8 * 1024 * 1024, "{}", xml.len());
        assert!(xml.contains("omitted here"));
    }

    #[test]
    fn write_is_atomic_and_reports_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junit.xml");
        std::fs::write(&path, "old").expect("seed");
        write(&path, &all(), &run(false)).expect("writes");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("<?xml"));
        validate(&text);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("readdir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != "junit.xml")
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        let err =
            write(&dir.path().join("missing/junit.xml"), &all(), &run(false)).expect_err("no dir");
        assert!(matches!(err, JunitError::Io { .. }));
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn helpers() {
        assert_eq!(keep_tail("abc", 10), "abc");
        let t = keep_tail("line1\nline2\nline3\n", 8);
        assert!(t.ends_with("line3\n") && t.starts_with("[… "), "{t}");
        assert_eq!(one_line("first\nsecond"), "first");
        assert!(one_line(&"é".repeat(600)).ends_with('…'));
        let x = r#"<testsuites name="a" tests="1" skipped="0" failures="0"><testsuite skipped="0"/></testsuites>"#;
        assert_eq!(
            strip_root_skipped(x.to_string()),
            r#"<testsuites name="a" tests="1" failures="0"><testsuite skipped="0"/></testsuites>"#
        );
        assert_eq!(xml_text("a\r\nb\u{fffe}\x1b[1mc\x1b[0m"), "a\nbc");
    }
}
