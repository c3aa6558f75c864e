//! The result model of a scenario run: what the observers (KTAP parser, crash scanner,
//! clocks, QMP events) concluded, in a shape the reporters (summary, JUnit, release gate)
//! consume. No I/O here.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Why a case did not pass; becomes the JUnit `type` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum FailureKind {
    /// The guest program reported `not ok`.
    Assertion,
    /// A clock expired: boot, per-test, or silence.
    Timeout,
    /// The guest kernel crashed, oopsed, warned, or a program segfaulted.
    Crash,
    /// The harness could not do its job (QEMU died, QMP broke).
    Infra,
}

impl FailureKind {
    /// The JUnit `type` attribute value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FailureKind::Assertion => "assertion",
            FailureKind::Timeout => "timeout",
            FailureKind::Crash => "crash",
            FailureKind::Infra => "infra",
        }
    }
}

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CaseStatus {
    /// `ok`.
    Passed,
    /// `ok … # SKIP reason`.
    Skipped {
        /// The reason the guest gave.
        reason: String,
    },
    /// A product failure (JUnit `<failure>`).
    Failed {
        /// What kind of failure.
        kind: FailureKind,
        /// A one-line message.
        message: String,
    },
    /// The case could not be judged, e.g. it never ran because the guest died first, or
    /// the harness broke (JUnit `<error>`).
    Errored {
        /// What kind of error.
        kind: FailureKind,
        /// A one-line message.
        message: String,
    },
}

impl CaseStatus {
    /// True for anything but pass and skip.
    pub(crate) fn is_bad(&self) -> bool {
        matches!(self, CaseStatus::Failed { .. } | CaseStatus::Errored { .. })
    }
}

/// One judged case: a KTAP leaf, or a synthetic case such as `boot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CaseResult {
    /// Unique within the scenario; nested KTAP names joined with `.`.
    pub name: String,
    /// The verdict.
    pub status: CaseStatus,
    /// KTAP diagnostic lines (`# …`) that belong to this case.
    pub diagnostics: Vec<String>,
}

impl CaseResult {
    /// A passing case.
    pub(crate) fn passed(name: impl Into<String>) -> Self {
        CaseResult {
            name: name.into(),
            status: CaseStatus::Passed,
            diagnostics: Vec::new(),
        }
    }

    /// A failing case.
    pub(crate) fn failed(
        name: impl Into<String>,
        kind: FailureKind,
        message: impl Into<String>,
    ) -> Self {
        CaseResult {
            name: name.into(),
            status: CaseStatus::Failed {
                kind,
                message: message.into(),
            },
            diagnostics: Vec::new(),
        }
    }

    /// A case that could not be judged.
    pub(crate) fn errored(
        name: impl Into<String>,
        kind: FailureKind,
        message: impl Into<String>,
    ) -> Self {
        CaseResult {
            name: name.into(),
            status: CaseStatus::Errored {
                kind,
                message: message.into(),
            },
            diagnostics: Vec::new(),
        }
    }
}

/// How the guest's run ended, as seen from the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RunEnd {
    /// The guest powered off by itself.
    PoweredOff,
    /// The kernel panicked (console or pvpanic); the excerpt is in `crashes`.
    Panicked,
    /// The ready marker did not appear within the boot clock.
    BootTimeout(Duration),
    /// No console output for this long.
    Silent(Duration),
    /// A guest program outlived its clock on the host-side backstop.
    TestTimeout(Duration),
    /// The guest rebooted although `-no-reboot` was given (triple fault, reboot request).
    Reset,
    /// QEMU exited or was killed without the guest shutting down.
    QemuDied {
        /// How its process ended.
        exit: QemuExit,
        /// True when it ended before the machine was running (bad argv, missing file …).
        at_start: bool,
        /// The last lines of its stderr (its own words for why).
        stderr: String,
    },
    /// The harness failed (QMP broke, spawn failed …).
    HarnessError {
        /// Which part of the harness.
        fault: HarnessFault,
        /// What the OS or the failing part said, for people.
        detail: String,
    },
    /// The user interrupted the run.
    Interrupted,
    /// The scenario ends at the ready marker (`until = "ready"`): the harness stopped the
    /// guest there, as asked. A normal end, like a power-off.
    StoppedAtReady,
    /// Never booted: the scenario does not apply here (an EL install gate whose base ISO is
    /// not configured), for the reason given. Not a pass and not a failure.
    NotApplicable(String),
}

/// How QEMU's process ended, as the OS reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum QemuExit {
    /// It exited with this code.
    Code(i32),
    /// This signal killed it.
    Signal(i32),
    /// Its status could not be read.
    Unknown,
}

impl QemuExit {
    /// From a wait status (`None`: waiting failed).
    pub(crate) fn of(status: Option<std::process::ExitStatus>) -> QemuExit {
        use std::os::unix::process::ExitStatusExt;
        match status {
            Some(s) => s
                .code()
                .map(QemuExit::Code)
                .or_else(|| s.signal().map(QemuExit::Signal))
                .unwrap_or(QemuExit::Unknown),
            None => QemuExit::Unknown,
        }
    }
}

impl std::fmt::Display for QemuExit {
    /// As the standard library words a wait status (`exit status: 1`, `signal: 9 (SIGKILL)`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::os::unix::process::ExitStatusExt;
        match *self {
            QemuExit::Code(c) => {
                write!(f, "{}", std::process::ExitStatus::from_raw((c & 0xff) << 8))
            }
            QemuExit::Signal(s) => write!(f, "{}", std::process::ExitStatus::from_raw(s & 0x7f)),
            QemuExit::Unknown => write!(f, "unknown status"),
        }
    }
}

/// The part of the harness that failed a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum HarnessFault {
    /// A scenario's crash pattern does not compile.
    CrashPattern,
    /// The serial or QMP socket could not be bound.
    Sockets,
    /// QEMU could not be started.
    Spawn,
    /// The serial console did not connect or could not be read.
    Console,
    /// QEMU did not connect to the QMP socket in time.
    QmpTimeout,
    /// Accepting the QMP connection failed.
    QmpAccept,
    /// Negotiating QMP or resuming the machine failed.
    Qmp,
    /// The QMP connection closed while QEMU kept running.
    QmpGone,
}

impl RunEnd {
    /// A human sentence for summaries and JUnit messages.
    pub(crate) fn describe(&self) -> String {
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            RunEnd::PoweredOff => "the guest powered off".into(),
            RunEnd::Panicked => "the guest kernel panicked".into(),
            RunEnd::BootTimeout(t) => format!("boot timeout: no ready marker within {}", d(t)),
            RunEnd::Silent(t) => format!("silence timeout: no console output for {}", d(t)),
            RunEnd::TestTimeout(t) => format!("test timeout: the guest program ran past {}", d(t)),
            RunEnd::Reset => "the guest reset unexpectedly".into(),
            RunEnd::QemuDied {
                exit,
                at_start,
                stderr,
            } => {
                let when = if *at_start { " during start-up" } else { "" };
                if stderr.is_empty() {
                    format!("QEMU died: QEMU exited{when} ({exit}) without a guest shutdown")
                } else {
                    format!("QEMU died: QEMU exited{when} ({exit}): {stderr}")
                }
            }
            RunEnd::HarnessError { detail, .. } => format!("harness error: {detail}"),
            RunEnd::Interrupted => "interrupted".into(),
            RunEnd::StoppedAtReady => "stopped by the harness at the ready marker".into(),
            RunEnd::NotApplicable(why) => format!("not run, not applicable: {why}"),
        }
    }
}

/// A kernel problem found on the console.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Crash {
    /// Short kind, e.g. `panic`, `oops`, `warning`, `bug`, `soft-lockup`, `segfault`.
    pub kind: String,
    /// A fatal crash ends the scenario at once; a non-fatal one fails it but lets it finish.
    pub fatal: bool,
    /// The line that matched (printk prefix kept).
    pub line: String,
    /// The matched line plus what followed, up to the end of the trace.
    pub excerpt: Vec<String>,
}

/// Console crashes as cases of their own (`console.<kind>`, later ones suffixed `#N`), so a
/// warning after the last KTAP line still fails the run.
pub(crate) fn crash_cases(crashes: &[Crash]) -> Vec<CaseResult> {
    crashes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let suffix = if i == 0 {
                String::new()
            } else {
                format!("#{}", i + 1)
            };
            let mut case = CaseResult::failed(
                format!("console.{}{suffix}", c.kind),
                FailureKind::Crash,
                c.line.trim(),
            );
            case.diagnostics = c.excerpt.clone();
            case
        })
        .collect()
}

/// Everything known about one scenario run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ScenarioResult {
    /// Scenario name (JUnit suite name and classname).
    pub name: String,
    /// When the run started.
    pub started: SystemTime,
    /// Wall time of the whole run.
    pub duration: Duration,
    /// The synthetic `boot` case: did the guest reach the ready marker.
    pub boot: CaseResult,
    /// Judged cases in console order, then synthetic ones (crash, end of run).
    pub cases: Vec<CaseResult>,
    /// How the run ended.
    pub end: RunEnd,
    /// Kernel problems seen on the console.
    pub crashes: Vec<Crash>,
    /// Suite properties: qemu version, accel and why, kernel release, scenario hash …
    pub properties: Vec<(String, String)>,
    /// The last lines of the console, for the report.
    pub console_tail: String,
    /// The full console transcript.
    pub serial_log: PathBuf,
    /// A screenshot taken on failure, when QEMU could still give one.
    pub screendump: Option<PathBuf>,
    /// Directory with argv, logs and sockets of this run.
    pub state_dir: PathBuf,
    /// The exact QEMU command line, for reproducing.
    pub qemu_cmdline: String,
    /// A failed first attempt that was re-run (release gates allow one rerun).
    pub flaky_first_attempt: Option<String>,
}

impl ScenarioResult {
    /// All cases including `boot`, in report order.
    pub(crate) fn all_cases(&self) -> impl Iterator<Item = &CaseResult> {
        std::iter::once(&self.boot).chain(self.cases.iter())
    }

    /// True when nothing failed or errored, and the scenario ran: a not-applicable one is
    /// not green.
    pub(crate) fn passed(&self) -> bool {
        !self.is_not_applicable() && self.all_cases().all(|c| !c.status.is_bad())
    }

    /// True when the scenario did not run because it does not apply here.
    pub(crate) fn is_not_applicable(&self) -> bool {
        matches!(self.end, RunEnd::NotApplicable(_))
    }

    /// The result of a scenario that does not apply here: its `boot` case skipped with
    /// the reason (JUnit `<skipped message>`), nothing else.
    pub(crate) fn not_applicable(name: &str, why: &str, state_dir: PathBuf) -> ScenarioResult {
        ScenarioResult {
            name: name.to_string(),
            started: SystemTime::now(),
            duration: Duration::ZERO,
            boot: CaseResult {
                name: "boot".into(),
                status: CaseStatus::Skipped {
                    reason: format!("not applicable: {why}"),
                },
                diagnostics: vec![],
            },
            cases: vec![],
            end: RunEnd::NotApplicable(why.to_string()),
            crashes: vec![],
            properties: vec![("not-applicable".into(), why.to_string())],
            console_tail: String::new(),
            serial_log: state_dir.join("serial.log"),
            screendump: None,
            state_dir,
            qemu_cmdline: String::new(),
            flaky_first_attempt: None,
        }
    }

    /// True when the harness, not the product, is to blame for a non-pass.
    pub(crate) fn is_harness_failure(&self) -> bool {
        matches!(
            self.end,
            RunEnd::QemuDied { .. } | RunEnd::HarnessError { .. }
        )
    }
}
