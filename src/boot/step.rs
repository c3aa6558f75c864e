//! The machine run's decisions as a pure step function: a [`Watch`] takes one [`Event`]
//! (a console line, a QMP event, QEMU's exit, a clock, Ctrl-C) at a given instant and
//! answers with [`Action`]s for the I/O loop in `machine.rs`. No sockets, no timers, no
//! processes here, so every way a run ends is tested as data (transcripts recorded from
//! real QEMU runs, `boot/testdata/`).
//!
//! A run has three phases: running (every event counts), draining (the end is decided; only
//! the console is still read, for the last KTAP lines and the rest of a panic trace), and
//! done. The clocks are deadlines the loop asks for with [`Watch::next_clock`].

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::time::Duration;

use regex::Regex;
use tokio::time::Instant;

use crate::boot::qmp::QmpEvent;
use crate::input::scenario::CrashPatterns;
use crate::observe::crash::CrashScanner;
use crate::observe::ktap::{KtapOutcome, KtapParser};
use crate::observe::verdict::{Crash, FailureKind, HarnessFault, QemuExit, RunEnd};

/// Lines of console kept for reports.
const TAIL_LINES: usize = 200;
/// How long to keep reading the console after the end is known (the last lines and the
/// rest of a panic trace are usually in flight).
pub(crate) const DRAIN_WAIT: Duration = Duration::from_secs(3);
/// How long QEMU may live on after closing QMP (QEMU closes it only when exiting, so
/// anything longer means the connection broke under a running QEMU), and how long QMP may
/// stay open after QEMU's exit (its last events are still being read).
pub(crate) const QMP_GONE_WAIT: Duration = Duration::from_secs(3);

/// The clocks and options that decide a run's end.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    /// Regex that marks the end of boot.
    pub ready: Regex,
    /// Boot clock, from spawn to the ready marker.
    pub boot_timeout: Duration,
    /// Silence clock: longest gap between console lines once the guest is up.
    pub silence_timeout: Duration,
    /// Host-side backstop from the ready marker to the end.
    pub test_backstop: Duration,
    /// End the run as soon as the ready marker appears.
    pub stop_at_ready: bool,
}

/// Something the I/O loop saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// One console line (no line end).
    Line(String),
    /// The console reached end of stream (QEMU closed the port).
    ConsoleEof,
    /// An event from QMP.
    Qmp(QmpEvent),
    /// The QMP connection ended.
    QmpClosed,
    /// QEMU's process exited (`None`: its status could not be read).
    QemuExited(Option<ExitStatus>),
    /// A clock asked for by [`Watch::next_clock`] fired.
    Clock(Clock),
    /// The user pressed Ctrl-C.
    Cancel,
}

/// The deadlines a run keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Clock {
    /// Spawn to the ready marker.
    Boot,
    /// Since the last console line (only once the guest is up).
    Silence,
    /// Ready marker to the end of all guest programs.
    Backstop,
    /// The end is known; the console has this long to deliver its last lines.
    Drain,
    /// QMP closed; QEMU has this long to exit.
    QmpGone,
}

/// What the I/O loop must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// The end is decided: from now on read only the console, feeding its lines, until its
    /// end of stream or the [`Clock::Drain`] deadline.
    Drain,
    /// Take a screenshot over QMP (the run failed and QEMU is still alive).
    Screendump,
    /// Stop QEMU: QMP `quit`, then SIGTERM/SIGKILL if it lingers.
    Quit,
    /// Stop QEMU without QMP (it is gone): SIGTERM, then SIGKILL.
    Terminate,
    /// The run is over; nothing more will be asked.
    Finish(End),
}

/// How a run ended, typed; `machine.rs` turns it into a [`RunEnd`] (adding what only I/O
/// knows, such as QEMU's stderr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The guest powered off by itself.
    PoweredOff,
    /// A fatal crash on the console, pvpanic, or a `guest-panic` shutdown.
    Panicked,
    /// The guest reset although `-no-reboot` was given.
    Reset,
    /// No ready marker within the boot clock.
    BootTimeout(Duration),
    /// No console line for this long after ready.
    Silent(Duration),
    /// The host-side backstop expired.
    Backstop(Duration),
    /// Stopped at the ready marker, as the scenario asked.
    StoppedAtReady,
    /// Ctrl-C.
    Interrupted,
    /// QEMU exited without a guest shutdown.
    QemuExited(Option<ExitStatus>),
    /// QMP closed and QEMU did not exit within [`QMP_GONE_WAIT`].
    QmpBroken,
}

impl End {
    /// The run's end for the reports; `stderr_tail` is the last lines QEMU printed.
    pub(crate) fn into_run_end(self, stderr_tail: &str) -> RunEnd {
        match self {
            End::PoweredOff => RunEnd::PoweredOff,
            End::Panicked => RunEnd::Panicked,
            End::Reset => RunEnd::Reset,
            End::BootTimeout(d) => RunEnd::BootTimeout(d),
            End::Silent(d) => RunEnd::Silent(d),
            End::Backstop(d) => RunEnd::TestTimeout(d),
            End::StoppedAtReady => RunEnd::StoppedAtReady,
            End::Interrupted => RunEnd::Interrupted,
            End::QemuExited(status) => RunEnd::QemuDied {
                exit: QemuExit::of(status),
                at_start: false,
                stderr: stderr_tail.to_string(),
            },
            End::QmpBroken => RunEnd::HarnessError {
                fault: HarnessFault::QmpGone,
                detail: format!(
                    "the QMP connection closed but QEMU kept running for {}",
                    humantime::format_duration(QMP_GONE_WAIT)
                ),
            },
        }
    }

    /// Whether a screenshot is worth taking: every end but the normal ones and Ctrl-C.
    fn wants_screendump(&self) -> bool {
        !matches!(
            self,
            End::PoweredOff | End::Interrupted | End::StoppedAtReady
        )
    }

    /// Whether the console gets its drain: not when the user or the scenario stopped the
    /// run on purpose (nothing more is wanted from it).
    fn drains(&self) -> bool {
        !matches!(self, End::Interrupted | End::StoppedAtReady)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Draining(End),
    Done,
}

/// What the observers gathered, handed over when the run is done.
pub(crate) struct Observed {
    /// When the ready marker appeared.
    pub ready_at: Option<Instant>,
    /// Parsed KTAP results.
    pub ktap: KtapOutcome,
    /// Kernel problems on the console.
    pub crashes: Vec<Crash>,
    /// The last console lines.
    pub console_tail: String,
}

/// The state of one run: observers, clocks, and what is still pending.
pub(crate) struct Watch {
    rules: Rules,
    ktap: KtapParser,
    crash: CrashScanner,
    tail: VecDeque<String>,
    ready_at: Option<Instant>,
    fatal: Option<Crash>,
    boot_deadline: Instant,
    silence_deadline: Instant,
    drain_deadline: Option<Instant>,
    qmp_gone_deadline: Option<Instant>,
    console_open: bool,
    qmp_open: bool,
    qemu_exited: bool,
    exit_status: Option<ExitStatus>,
    /// A guest shutdown seen on QMP while the console still had lines to deliver.
    shutdown: Option<End>,
    phase: Phase,
}

impl Watch {
    /// A run whose QEMU was spawned at `started` (the boot clock counts from there). The
    /// silence clock needs no start: it is armed only once the ready marker's line has
    /// reset it.
    pub(crate) fn new(
        rules: Rules,
        crash: &CrashPatterns,
        started: Instant,
    ) -> Result<Watch, regex::Error> {
        Ok(Watch {
            ktap: KtapParser::new(),
            crash: CrashScanner::new(crash)?,
            tail: VecDeque::new(),
            ready_at: None,
            fatal: None,
            boot_deadline: started + rules.boot_timeout,
            silence_deadline: started,
            drain_deadline: None,
            qmp_gone_deadline: None,
            console_open: true,
            qmp_open: true,
            qemu_exited: false,
            exit_status: None,
            shutdown: None,
            phase: Phase::Running,
            rules,
        })
    }

    /// True while the I/O loop should still read the console.
    pub(crate) fn console_open(&self) -> bool {
        self.console_open && self.phase != Phase::Done
    }

    /// True while the I/O loop should still read QMP events.
    pub(crate) fn wants_qmp(&self) -> bool {
        self.qmp_open && self.phase == Phase::Running
    }

    /// True while the I/O loop should still watch QEMU's exit.
    pub(crate) fn wants_exit(&self) -> bool {
        !self.qemu_exited && self.phase == Phase::Running
    }

    /// The earliest armed clock: the loop sleeps until it and then feeds
    /// [`Event::Clock`].
    pub(crate) fn next_clock(&self) -> Option<(Clock, Instant)> {
        self.armed().into_iter().min_by_key(|(_, at)| *at)
    }

    fn armed(&self) -> Vec<(Clock, Instant)> {
        let mut clocks = Vec::new();
        match &self.phase {
            Phase::Running => {
                match self.ready_at {
                    None => clocks.push((Clock::Boot, self.boot_deadline)),
                    // Silence counts once the guest is up: before that, firmware and kernel
                    // decompression print nothing for seconds under TCG, and the boot clock
                    // rules.
                    Some(t) => {
                        clocks.push((Clock::Silence, self.silence_deadline));
                        clocks.push((Clock::Backstop, t + self.rules.test_backstop));
                    }
                }
                if let Some(t) = self.qmp_gone_deadline {
                    clocks.push((Clock::QmpGone, t));
                }
            }
            Phase::Draining(_) => clocks.extend(self.drain_deadline.map(|t| (Clock::Drain, t))),
            Phase::Done => {}
        }
        clocks
    }

    /// Feeds one event seen at `at`; returns what the I/O loop must do.
    pub(crate) fn step(&mut self, at: Instant, event: Event) -> Vec<Action> {
        match self.phase.clone() {
            Phase::Running => self.running(at, event),
            Phase::Draining(end) => self.draining(at, end, event),
            Phase::Done => Vec::new(),
        }
    }

    fn running(&mut self, at: Instant, event: Event) -> Vec<Action> {
        let end = match event {
            Event::Line(line) => {
                self.silence_deadline = at + self.rules.silence_timeout;
                self.feed(at, line);
                if let Some(c) = &self.fatal {
                    tracing::debug!(line = %c.line, "fatal crash on the console");
                    Some(End::Panicked)
                } else if self.rules.stop_at_ready && self.ready_at.is_some() {
                    Some(End::StoppedAtReady)
                } else {
                    None
                }
            }
            Event::ConsoleEof => {
                self.console_open = false;
                self.shutdown.take()
            }
            Event::Qmp(ev) => self.qmp_event(ev),
            Event::QmpClosed => {
                // QEMU closes QMP when it exits: its exit decides, unless it never comes.
                self.qmp_open = false;
                if self.qemu_exited {
                    Some(self.exited())
                } else {
                    self.qmp_gone_deadline = Some(at + QMP_GONE_WAIT);
                    None
                }
            }
            Event::QemuExited(status) => {
                self.qemu_exited = true;
                self.exit_status = status;
                if self.qmp_open {
                    // The SHUTDOWN that explains the exit may still be unread: QMP's end
                    // of stream says every event is in.
                    self.qmp_gone_deadline.get_or_insert(at + QMP_GONE_WAIT);
                    None
                } else {
                    Some(self.exited())
                }
            }
            Event::Clock(clock) => self.clock(at, clock),
            Event::Cancel => Some(End::Interrupted),
        };
        match end {
            Some(end) => self.decided(at, end),
            None => Vec::new(),
        }
    }

    /// QEMU is gone and QMP said all it had: a guest shutdown seen on the way explains it.
    fn exited(&mut self) -> End {
        self.shutdown
            .take()
            .unwrap_or(End::QemuExited(self.exit_status))
    }

    fn qmp_event(&mut self, ev: QmpEvent) -> Option<End> {
        match ev {
            QmpEvent::GuestPanicked { .. } => Some(End::Panicked),
            QmpEvent::Shutdown { reason, .. } if reason == "guest-panic" => Some(End::Panicked),
            QmpEvent::Shutdown {
                guest: true,
                reason,
            } if reason == "guest-reset" => Some(End::Reset),
            QmpEvent::Shutdown { guest: true, .. } => {
                // The console may still hold the last lines: finish on its EOF.
                if self.console_open {
                    self.shutdown = Some(End::PoweredOff);
                    None
                } else {
                    Some(End::PoweredOff)
                }
            }
            QmpEvent::Reset { guest: true, .. } => Some(End::Reset),
            // Unknown events, host-side shutdowns, STOP/RESUME: never an end by themselves.
            _ => None,
        }
    }

    fn clock(&mut self, at: Instant, clock: Clock) -> Option<End> {
        // A clock whose deadline moved (a line came in meanwhile) or that is no longer
        // armed is stale.
        let due = self
            .armed()
            .into_iter()
            .any(|(c, deadline)| c == clock && at >= deadline);
        if !due {
            return None;
        }
        match clock {
            Clock::Boot => Some(End::BootTimeout(self.rules.boot_timeout)),
            Clock::Silence => Some(End::Silent(self.rules.silence_timeout)),
            Clock::Backstop => Some(End::Backstop(self.rules.test_backstop)),
            Clock::QmpGone if self.qemu_exited => Some(self.exited()),
            Clock::QmpGone => Some(self.shutdown.take().unwrap_or(End::QmpBroken)),
            Clock::Drain => None,
        }
    }

    /// The end is known: drain the console if it is still open, else wrap up.
    fn decided(&mut self, at: Instant, end: End) -> Vec<Action> {
        if self.console_open && end.drains() {
            self.drain_deadline = Some(at + DRAIN_WAIT);
            self.phase = Phase::Draining(end);
            vec![Action::Drain]
        } else {
            self.wrap_up(end)
        }
    }

    fn draining(&mut self, at: Instant, end: End, event: Event) -> Vec<Action> {
        match event {
            Event::Line(line) => {
                self.feed(at, line);
                Vec::new()
            }
            Event::ConsoleEof => {
                self.console_open = false;
                self.wrap_up(end)
            }
            Event::Clock(Clock::Drain) if self.drain_deadline.is_some_and(|t| at >= t) => {
                self.wrap_up(end)
            }
            // Only whether QEMU is still alive matters now (no screendump from the dead).
            Event::QemuExited(_) => {
                self.qemu_exited = true;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn wrap_up(&mut self, end: End) -> Vec<Action> {
        self.phase = Phase::Done;
        // `panic=-1` reboots at once, so QEMU's reset or exit can overtake the console
        // lines that say why: a fatal crash on the console is the real end.
        let end = match end {
            End::Reset | End::QemuExited(_) | End::PoweredOff | End::QmpBroken
                if self.fatal.is_some() =>
            {
                End::Panicked
            }
            other => other,
        };
        let mut actions = Vec::new();
        if !self.qemu_exited {
            if end.wants_screendump() && self.qmp_open {
                actions.push(Action::Screendump);
            }
            actions.push(if self.qmp_open {
                Action::Quit
            } else {
                Action::Terminate
            });
        }
        actions.push(Action::Finish(end));
        actions
    }

    fn feed(&mut self, at: Instant, line: String) {
        if self.ready_at.is_none() && self.rules.ready.is_match(&line) {
            self.ready_at = Some(at);
        }
        // Every line, not only after ready: in-kernel KUnit results print during boot, and
        // the parser ignores whatever is not KTAP.
        self.ktap.feed(&line);
        if let Some(crash) = self.crash.feed(&line) {
            if crash.fatal && self.fatal.is_none() {
                self.fatal = Some(crash);
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// What the observers gathered; `end` names the cases that never reported.
    pub(crate) fn finish(self, end: &RunEnd) -> Observed {
        let abort = abort_reason(end);
        Observed {
            ready_at: self.ready_at,
            ktap: self
                .ktap
                .finish(abort.as_ref().map(|(k, m)| (*k, m.as_str()))),
            crashes: self.crash.finish(),
            console_tail: self.tail.into_iter().collect::<Vec<_>>().join("\n"),
        }
    }
}

/// What to call cases that never reported, by how the run ended.
fn abort_reason(end: &RunEnd) -> Option<(FailureKind, String)> {
    let kind = match end {
        RunEnd::PoweredOff | RunEnd::StoppedAtReady => return None,
        RunEnd::Panicked | RunEnd::Reset => FailureKind::Crash,
        RunEnd::BootTimeout(_) | RunEnd::Silent(_) | RunEnd::TestTimeout(_) => FailureKind::Timeout,
        RunEnd::QemuDied { .. }
        | RunEnd::HarnessError { .. }
        | RunEnd::Interrupted
        | RunEnd::NotApplicable(_) => FailureKind::Infra,
    };
    Some((kind, format!("not reported: {}", end.describe())))
}

#[cfg(test)]
pub(crate) mod tests {
    //! Every way a run ends, driven by transcripts recorded from real QEMU runs
    //! (`testdata/README.md` says how each was made). Where the recording cannot fix the
    //! order in which QEMU's exit, the console's EOF and QMP's events reach the loop, the
    //! test says the order it assumes, and the orders that matter are tested both ways.

    use super::*;
    use crate::boot::console::LineSplitter;
    use crate::observe::verdict::CaseStatus;
    use std::os::unix::process::ExitStatusExt as _;

    pub(crate) const SMOKE: &[u8] = include_bytes!("testdata/smoke.serial");
    pub(crate) const SMOKE_QMP: &str = include_str!("testdata/smoke.qmp");
    pub(crate) const PANIC: &[u8] = include_bytes!("testdata/panic.serial");
    pub(crate) const PANIC_QMP: &str = include_str!("testdata/panic.qmp");
    pub(crate) const HANG: &[u8] = include_bytes!("testdata/hang.serial");
    pub(crate) const HANG_QMP: &str = include_str!("testdata/hang.qmp");
    const TIMEOUT: &[u8] = include_bytes!("testdata/timeout.serial");
    const TIMEOUT_QMP: &str = include_str!("testdata/timeout.qmp");
    const GARBAGE: &[u8] = include_bytes!("testdata/garbage.serial");
    const GARBAGE_QMP: &str = include_str!("testdata/garbage.qmp");
    const KILLED: &[u8] = include_bytes!("testdata/killed.serial");
    const KILLED_QMP: &str = include_str!("testdata/killed.qmp");
    const BOOT: &[u8] = include_bytes!("testdata/boot-timeout.serial");
    const BOOT_QMP: &str = include_str!("testdata/boot-timeout.qmp");
    const FAIL: &[u8] = include_bytes!("testdata/fail.serial");
    const FAIL_QMP: &str = include_str!("testdata/fail.qmp");

    /// A transcript as the console hands it over (same splitter).
    pub(crate) fn lines(bytes: &[u8]) -> Vec<String> {
        let mut s = LineSplitter::default();
        let mut out = s.push(bytes);
        out.extend(s.finish());
        out
    }

    /// The bytes of a transcript up to and including the first line containing `marker`.
    pub(crate) fn upto(bytes: &[u8], marker: &str) -> Vec<u8> {
        let text = String::from_utf8_lossy(bytes);
        let at = text.find(marker).expect("marker in transcript") + marker.len();
        let end = text[at..].find('\n').map_or(text.len(), |n| at + n + 1);
        text.as_bytes()[..end].to_vec()
    }

    /// The events of a recorded `qmp.log` (replies and the greeting skipped).
    fn qmp(log: &str) -> Vec<QmpEvent> {
        log.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|m| m.get("event").is_some())
            .map(|m| QmpEvent::from_message(&m))
            .collect()
    }

    fn rules() -> Rules {
        Rules {
            ready: Regex::new(crate::input::scenario::DEFAULT_READY).unwrap(),
            boot_timeout: Duration::from_secs(120),
            silence_timeout: Duration::from_secs(60),
            test_backstop: Duration::from_secs(300),
            stop_at_ready: false,
        }
    }

    /// A run driven by hand: each event 10 ms after the previous one.
    struct Drive {
        watch: Watch,
        now: Instant,
        actions: Vec<Action>,
    }

    impl Drive {
        fn new(rules: Rules) -> Drive {
            let now = Instant::now();
            Drive {
                watch: Watch::new(rules, &CrashPatterns::default(), now).unwrap(),
                now,
                actions: Vec::new(),
            }
        }

        fn feed(&mut self, event: Event) -> Vec<Action> {
            self.now += Duration::from_millis(10);
            let a = self.watch.step(self.now, event);
            self.actions.extend(a.clone());
            a
        }

        fn serial(&mut self, bytes: &[u8]) -> &mut Self {
            for l in lines(bytes) {
                self.feed(Event::Line(l));
            }
            self
        }

        fn qmp(&mut self, log: &str) -> &mut Self {
            for ev in qmp(log) {
                self.feed(Event::Qmp(ev));
            }
            self
        }

        /// Lets the earliest armed clock fire.
        fn clock(&mut self) -> Clock {
            let (clock, at) = self.watch.next_clock().expect("a clock is armed");
            self.now = at;
            let a = self.watch.step(at, Event::Clock(clock));
            self.actions.extend(a);
            clock
        }

        fn finished(&self) -> Option<&End> {
            self.actions.iter().find_map(|a| match a {
                Action::Finish(e) => Some(e),
                _ => None,
            })
        }

        fn observed(self) -> (End, Vec<Action>, Observed) {
            let end = self.finished().expect("the run finished").clone();
            let observed = self.watch.finish(&end.clone().into_run_end(""));
            (end, self.actions, observed)
        }
    }

    fn status(cases: &[crate::observe::verdict::CaseResult], name: &str) -> CaseStatus {
        cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}: {cases:#?}"))
            .status
            .clone()
    }

    #[test]
    fn poweroff_waits_for_the_consoles_last_lines() {
        let mut d = Drive::new(rules());
        // QEMU's SHUTDOWN comes while the console still holds the last lines.
        let cut = upto(SMOKE, "ok 1 sanity");
        d.serial(&cut).qmp(SMOKE_QMP);
        assert_eq!(d.finished(), None, "a shutdown alone does not end the run");
        d.serial(&SMOKE[cut.len()..]);
        assert_eq!(
            d.feed(Event::ConsoleEof),
            [Action::Quit, Action::Finish(End::PoweredOff)]
        );
        let (_, _, o) = d.observed();
        assert!(o.ready_at.is_some());
        assert!(o.ktap.saw_ktap);
        assert!(o.ktap.cases.len() > 30, "{:#?}", o.ktap.cases);
        assert!(o.ktap.cases.iter().all(|c| c.status == CaseStatus::Passed));
        assert!(o.crashes.is_empty());
        assert!(
            o.console_tail.ends_with("reboot: Power down"),
            "{}",
            o.console_tail
        );
    }

    #[test]
    fn poweroff_after_the_consoles_eof_ends_at_once() {
        let mut d = Drive::new(rules());
        d.serial(SMOKE).feed(Event::ConsoleEof);
        assert_eq!(d.finished(), None);
        d.qmp(SMOKE_QMP);
        assert_eq!(d.finished(), Some(&End::PoweredOff));
        // QEMU's exit overtaking the EOF: the shutdown still decides, after the drain.
        let mut d = Drive::new(rules());
        d.serial(SMOKE).qmp(SMOKE_QMP);
        assert_eq!(d.feed(Event::QemuExited(None)), [], "QMP's end comes first");
        assert_eq!(d.feed(Event::QmpClosed), [Action::Drain]);
        assert_eq!(
            d.feed(Event::ConsoleEof),
            [Action::Finish(End::PoweredOff)],
            "QEMU is gone: nothing to quit"
        );
        // QEMU's exit seen before its SHUTDOWN event was read: QMP's end settles it.
        let mut d = Drive::new(rules());
        d.serial(SMOKE);
        d.feed(Event::QemuExited(Some(ExitStatus::from_raw(0))));
        d.qmp(SMOKE_QMP).feed(Event::QmpClosed);
        d.feed(Event::ConsoleEof);
        assert_eq!(d.finished(), Some(&End::PoweredOff));
        // … and if QMP never ends, the exit decides after a short wait.
        let mut d = Drive::new(rules());
        d.serial(&upto(SMOKE, "xsc-init: ready"));
        d.feed(Event::QemuExited(None));
        assert_eq!(d.clock(), Clock::QmpGone);
        d.feed(Event::ConsoleEof);
        assert_eq!(d.finished(), Some(&End::QemuExited(None)));
    }

    #[test]
    fn stopping_at_ready_quits_without_drain_or_screendump() {
        let mut d = Drive::new(Rules {
            stop_at_ready: true,
            ..rules()
        });
        d.serial(SMOKE);
        let (end, actions, o) = d.observed();
        assert_eq!(end, End::StoppedAtReady);
        assert_eq!(actions, [Action::Quit, Action::Finish(End::StoppedAtReady)]);
        assert!(
            o.console_tail.ends_with("xsc-init: ready"),
            "{}",
            o.console_tail
        );
        assert!(o.ktap.cases.is_empty());
    }

    #[test]
    fn a_console_panic_ends_at_once_and_drains_the_trace() {
        let mut d = Drive::new(rules());
        let before = upto(PANIC, "sysrq: Trigger a crash");
        d.serial(&before);
        assert_eq!(d.finished(), None);
        let panic_line = upto(PANIC, "Kernel panic");
        let panic_line = &panic_line[before.len()..];
        assert_eq!(lines(panic_line).len(), 1);
        d.serial(panic_line);
        assert_eq!(
            d.actions,
            [Action::Drain],
            "the panic line alone ends the run"
        );
        let before = upto(PANIC, "Kernel panic");
        // The rest of the trace arrives during the drain; QEMU's reset is not waited for.
        d.serial(&PANIC[before.len()..]);
        assert_eq!(d.feed(Event::QemuExited(None)), []);
        assert_eq!(d.feed(Event::ConsoleEof), [Action::Finish(End::Panicked)]);
        let (_, _, o) = d.observed();
        assert_eq!(o.crashes[0].kind, "panic");
        assert!(o.crashes[0].excerpt.len() > 10, "{:#?}", o.crashes[0]);
        assert_eq!(
            status(&o.ktap.cases, "fault.before_panic"),
            CaseStatus::Passed
        );
    }

    #[test]
    fn a_reset_that_overtakes_the_panic_lines_is_judged_a_panic() {
        // `panic=-1`: the recorded guest-reset can reach the loop before the console lines
        // that say why.
        let mut d = Drive::new(rules());
        let before = upto(PANIC, "sysrq: Trigger a crash");
        d.serial(&before).qmp(PANIC_QMP);
        assert_eq!(
            d.actions.last(),
            Some(&Action::Drain),
            "the recorded SHUTDOWN (guest-reset) decides"
        );
        d.serial(&PANIC[before.len()..]);
        d.feed(Event::ConsoleEof);
        assert_eq!(d.finished(), Some(&End::Panicked));
    }

    #[test]
    fn a_reset_without_a_crash_is_a_reset_and_gets_a_screendump() {
        // The recorded guest-reset of the panic run, after a healthy console: a triple
        // fault or a reboot request looks like this.
        let mut d = Drive::new(rules());
        d.serial(&upto(SMOKE, "ok 1 proc")).qmp(PANIC_QMP);
        assert_eq!(d.clock(), Clock::Drain);
        assert_eq!(
            d.actions[d.actions.len() - 3..],
            [Action::Screendump, Action::Quit, Action::Finish(End::Reset)]
        );
        let mut d = Drive::new(rules());
        d.serial(&upto(SMOKE, "ok 1 proc"));
        d.feed(Event::Qmp(QmpEvent::Reset {
            guest: true,
            reason: "guest-reset".into(),
        }));
        d.feed(Event::ConsoleEof);
        let (end, _, o) = d.observed();
        assert_eq!(end, End::Reset);
        // Cases that never reported are crashes, not timeouts.
        assert!(
            o.ktap.cases.iter().any(|c| matches!(
                &c.status,
                CaseStatus::Errored {
                    kind: FailureKind::Crash,
                    ..
                } | CaseStatus::Failed {
                    kind: FailureKind::Crash,
                    ..
                }
            )),
            "{:#?}",
            o.ktap.cases
        );
    }

    #[test]
    fn pvpanic_and_guest_panic_shutdowns_are_panics() {
        for ev in [
            QmpEvent::GuestPanicked {
                action: "pause".into(),
            },
            QmpEvent::Shutdown {
                guest: true,
                reason: "guest-panic".into(),
            },
        ] {
            let mut d = Drive::new(rules());
            d.serial(&upto(SMOKE, "xsc-init: ready"));
            assert_eq!(d.feed(Event::Qmp(ev)), [Action::Drain]);
            d.feed(Event::ConsoleEof);
            assert_eq!(d.finished(), Some(&End::Panicked));
        }
    }

    #[test]
    fn silence_after_ready_ends_the_run_with_a_screendump() {
        let mut d = Drive::new(Rules {
            silence_timeout: Duration::from_secs(8),
            ..rules()
        });
        d.serial(HANG);
        let last_line = d.now;
        // A silence clock from before the last line is stale.
        assert_eq!(
            d.watch.step(last_line, Event::Clock(Clock::Silence)),
            [],
            "stale clock"
        );
        assert_eq!(
            d.watch.next_clock(),
            Some((Clock::Silence, last_line + Duration::from_secs(8)))
        );
        assert_eq!(d.clock(), Clock::Silence);
        assert_eq!(d.actions.last(), Some(&Action::Drain));
        assert_eq!(d.clock(), Clock::Drain);
        // The harness's own quit is what the recording shows next (host-qmp-quit).
        d.qmp(HANG_QMP);
        let (end, actions, o) = d.observed();
        assert_eq!(end, End::Silent(Duration::from_secs(8)));
        assert_eq!(
            actions[actions.len() - 3..],
            [
                Action::Screendump,
                Action::Quit,
                Action::Finish(end.clone())
            ]
        );
        // The hung program's cases never reported: they are timeouts, not crashes.
        assert!(!o.ktap.cases.is_empty());
        assert!(
            o.ktap.cases.iter().all(|c| matches!(
                &c.status,
                CaseStatus::Errored {
                    kind: FailureKind::Timeout,
                    ..
                } | CaseStatus::Failed {
                    kind: FailureKind::Timeout,
                    ..
                }
            )),
            "{:#?}",
            o.ktap.cases
        );
    }

    #[test]
    fn silence_does_not_count_before_ready() {
        let mut d = Drive::new(Rules {
            silence_timeout: Duration::from_secs(1),
            ..rules()
        });
        d.serial(&upto(SMOKE, "Freeing unused"));
        assert_eq!(
            d.clock(),
            Clock::Boot,
            "only the boot clock runs before ready"
        );
        assert_eq!(d.finished(), None, "console open: drain first");
        d.feed(Event::ConsoleEof);
        assert_eq!(
            d.finished(),
            Some(&End::BootTimeout(Duration::from_secs(120)))
        );
    }

    #[test]
    fn the_backstop_ends_a_chatty_run_that_never_finishes() {
        let mut d = Drive::new(Rules {
            test_backstop: Duration::from_secs(2),
            ..rules()
        });
        d.serial(HANG);
        assert_eq!(d.clock(), Clock::Backstop);
        assert_eq!(d.clock(), Clock::Drain);
        assert_eq!(d.finished(), Some(&End::Backstop(Duration::from_secs(2))));
        assert_eq!(
            End::Backstop(Duration::from_secs(2)).into_run_end(""),
            RunEnd::TestTimeout(Duration::from_secs(2))
        );
    }

    #[test]
    fn no_ready_marker_within_the_boot_clock() {
        // Recorded with a 6 s boot clock: SeaBIOS and the early kernel print nothing yet.
        let mut d = Drive::new(Rules {
            boot_timeout: Duration::from_secs(6),
            ..rules()
        });
        d.serial(BOOT).qmp(BOOT_QMP);
        assert_eq!(d.clock(), Clock::Boot);
        assert_eq!(d.clock(), Clock::Drain);
        let (end, actions, o) = d.observed();
        assert_eq!(end, End::BootTimeout(Duration::from_secs(6)));
        assert_eq!(
            actions[actions.len() - 3..],
            [Action::Screendump, Action::Quit, Action::Finish(end)]
        );
        assert_eq!(o.ready_at, None);
    }

    #[test]
    fn qemu_dying_mid_run_is_qemus_failure() {
        // Recorded by SIGKILLing QEMU right after the ready marker.
        let mut d = Drive::new(rules());
        d.serial(KILLED).qmp(KILLED_QMP);
        let killed = ExitStatus::from_raw(9);
        assert_eq!(d.feed(Event::QemuExited(Some(killed))), []);
        assert_eq!(d.feed(Event::QmpClosed), [Action::Drain]);
        assert_eq!(
            d.feed(Event::ConsoleEof),
            [Action::Finish(End::QemuExited(Some(killed)))],
            "no screendump or quit for a dead QEMU"
        );
        let stderr = include_str!("testdata/killed.stderr");
        let end = End::QemuExited(Some(killed)).into_run_end(stderr.trim());
        assert_eq!(
            end,
            RunEnd::QemuDied {
                exit: QemuExit::Signal(9),
                at_start: false,
                stderr: stderr.trim().into()
            }
        );
        assert_eq!(
            RunEnd::QemuDied {
                exit: QemuExit::Signal(9),
                at_start: false,
                stderr: String::new()
            }
            .describe(),
            "QEMU died: QEMU exited (signal: 9 (SIGKILL)) without a guest shutdown"
        );
        let end = End::QemuExited(None).into_run_end("qemu: could not load kernel");
        assert_eq!(
            end.describe(),
            "QEMU died: QEMU exited (unknown status): qemu: could not load kernel"
        );
        assert!(matches!(
            End::QemuExited(Some(ExitStatus::from_raw(1 << 8))).into_run_end(""),
            RunEnd::QemuDied {
                exit: QemuExit::Code(1),
                ..
            }
        ));
    }

    #[test]
    fn qmp_breaking_waits_briefly_for_qemus_exit() {
        // QMP closes first, then QEMU exits: its exit decides.
        let mut d = Drive::new(rules());
        d.serial(&upto(SMOKE, "ok 1 proc"));
        assert_eq!(d.feed(Event::QmpClosed), []);
        assert!(!d.watch.wants_qmp());
        d.feed(Event::QemuExited(Some(ExitStatus::from_raw(1 << 8))));
        d.feed(Event::ConsoleEof);
        assert!(matches!(d.finished(), Some(End::QemuExited(_))));
        // QMP closes and QEMU lives on: a broken harness connection, no screendump.
        let mut d = Drive::new(rules());
        d.serial(&upto(SMOKE, "ok 1 proc"));
        d.feed(Event::QmpClosed);
        assert_eq!(d.clock(), Clock::QmpGone);
        assert_eq!(d.clock(), Clock::Drain);
        let (end, actions, _) = d.observed();
        assert_eq!(end, End::QmpBroken);
        assert_eq!(
            actions,
            [
                Action::Drain,
                Action::Terminate,
                Action::Finish(End::QmpBroken)
            ]
        );
        assert!(matches!(
            end.into_run_end(""),
            RunEnd::HarnessError {
                fault: HarnessFault::QmpGone,
                ..
            }
        ));
        // After the guest's shutdown, a QMP close is the shutdown's.
        let mut d = Drive::new(rules());
        d.serial(SMOKE).qmp(SMOKE_QMP).feed(Event::QmpClosed);
        d.feed(Event::ConsoleEof);
        assert_eq!(d.finished(), Some(&End::PoweredOff));
    }

    #[test]
    fn garbage_on_the_console_is_survived_and_the_segfault_recorded() {
        let mut d = Drive::new(rules());
        d.serial(GARBAGE).qmp(GARBAGE_QMP).feed(Event::ConsoleEof);
        let (end, _, o) = d.observed();
        assert_eq!(end, End::PoweredOff);
        assert_eq!(
            status(&o.ktap.cases, "garbage.after_garbage"),
            CaseStatus::Passed
        );
        assert_eq!(o.crashes.len(), 1, "{:#?}", o.crashes);
        assert_eq!(o.crashes[0].kind, "segfault");
        assert!(!o.crashes[0].fatal);
    }

    #[test]
    fn guest_verdicts_pass_through_a_normal_poweroff() {
        let mut d = Drive::new(rules());
        d.serial(FAIL).qmp(FAIL_QMP).feed(Event::ConsoleEof);
        let (end, _, o) = d.observed();
        assert_eq!(end, End::PoweredOff);
        assert!(matches!(
            status(&o.ktap.cases, "fault.broken"),
            CaseStatus::Failed {
                kind: FailureKind::Assertion,
                ..
            }
        ));
        // The per-program clock is the guest's: the run still powers off normally.
        let mut d = Drive::new(rules());
        d.serial(TIMEOUT).qmp(TIMEOUT_QMP).feed(Event::ConsoleEof);
        let (end, _, o) = d.observed();
        assert_eq!(end, End::PoweredOff);
        assert!(
            matches!(
                status(&o.ktap.cases, "slow"),
                CaseStatus::Failed {
                    kind: FailureKind::Timeout,
                    ..
                }
            ),
            "{:#?}",
            o.ktap.cases
        );
    }

    #[test]
    fn ctrl_c_quits_at_once_and_ignored_events_change_nothing() {
        let mut d = Drive::new(rules());
        d.serial(&upto(SMOKE, "xsc-init: ready"));
        for ev in [
            QmpEvent::Stop,
            QmpEvent::Resume,
            QmpEvent::Other("XSC_FUTURE_EVENT".into()),
            QmpEvent::Shutdown {
                guest: false,
                reason: "host-signal".into(),
            },
        ] {
            assert_eq!(d.feed(Event::Qmp(ev)), []);
        }
        assert_eq!(
            d.feed(Event::Cancel),
            [Action::Quit, Action::Finish(End::Interrupted)]
        );
        assert_eq!(d.feed(Event::Line("late".into())), [], "done is done");
    }
}
