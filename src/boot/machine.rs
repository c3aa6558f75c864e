//! One machine run: start QEMU paused, connect the serial console and QMP, resume, and
//! watch the guest until it ends — feeding every console line to the observers and
//! enforcing the clocks. Whatever happens, QEMU is gone when this returns.
//!
//! This file is the I/O: sockets, the spawn, timers, Ctrl-C. Every decision — which event
//! ends the run, the clocks (boot, silence, backstop; the per-program clock itself is
//! enforced inside the guest by PID 1), draining, screendump, quit — is the pure step
//! function in `boot/step.rs`, which this loop feeds one event at a time.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use regex::Regex;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::boot::console::{self, Console};
use crate::boot::qemu_args::{MachineSpec, RunFiles, harness_args};
use crate::boot::qmp::{Qmp, QmpError, QmpEvent};
use crate::boot::step::{Action, Clock, End, Event, Rules, Watch};
use crate::input::scenario::CrashPatterns;
use crate::observe::ktap::{KtapOutcome, KtapParser};
use crate::observe::verdict::{Crash, HarnessFault, QemuExit, RunEnd};
use crate::sys::process::{self, ChildGuard, Cmd, Output, ProcessError};

/// How long QEMU may take to connect its sockets after starting.
const CONNECT_WAIT: Duration = Duration::from_secs(20);
/// Deadline for one QMP command.
const QMP_WAIT: Duration = Duration::from_secs(5);

/// Everything one run needs.
#[derive(Clone, Debug)]
pub(crate) struct RunSpec {
    /// The machine.
    pub machine: MachineSpec,
    /// Where argv, logs, sockets go; created if missing.
    pub state_dir: PathBuf,
    /// Regex that marks the end of boot.
    pub ready: Regex,
    /// Boot clock.
    pub boot_timeout: Duration,
    /// Silence clock.
    pub silence_timeout: Duration,
    /// Host-side backstop from ready to the end of all guest programs.
    pub test_backstop: Duration,
    /// Scenario crash-pattern overrides.
    pub crash: CrashPatterns,
    /// End the run (QMP `quit`) as soon as the ready marker appears (`until = "ready"`).
    pub stop_at_ready: bool,
    /// Console lines to show as they arrive (a long phase's progress).
    pub progress: Option<crate::boot::progress::ConsoleProgress>,
}

/// What a run observed.
pub(crate) struct MachineOutcome {
    /// How it ended.
    pub end: RunEnd,
    /// Time from start to the ready marker, if reached.
    pub ready_after: Option<Duration>,
    /// Parsed KTAP results.
    pub ktap: KtapOutcome,
    /// Kernel problems on the console.
    pub crashes: Vec<Crash>,
    /// The last console lines.
    pub console_tail: String,
    /// QEMU's version, from the QMP greeting.
    pub qemu_version: Option<String>,
    /// Screenshot taken on failure.
    pub screendump: Option<PathBuf>,
    /// The QEMU command line, shell-quoted.
    pub cmdline: String,
    /// Wall time.
    pub duration: Duration,
}

/// Why a run could not get going. Typed, so that QEMU dying on its own (its failure) and
/// the harness failing are told apart without reading messages.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// A scenario's crash pattern does not compile.
    #[error("invalid crash pattern: {0}")]
    CrashPattern(#[from] regex::Error),
    /// The serial or QMP socket could not be bound.
    #[error("cannot bind sockets in {}: {source}", .dir.display())]
    Bind {
        /// The run's state directory.
        dir: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error(transparent)]
    Spawn(#[from] ProcessError),
    /// The serial console did not connect or could not be read.
    #[error("{0}")]
    Console(std::io::Error),
    /// QEMU did not connect to the QMP socket in time.
    #[error("QEMU did not connect to the QMP socket")]
    QmpTimeout,
    /// Accepting the QMP connection failed.
    #[error("{0}")]
    QmpAccept(std::io::Error),
    /// Negotiating QMP or resuming the machine failed.
    #[error(transparent)]
    Qmp(#[from] QmpError),
    /// QEMU exited before the machine was running.
    #[error("QEMU exited during start-up ({exit}): {stderr}")]
    Exited {
        /// How it ended.
        exit: QemuExit,
        /// The last lines of its stderr.
        stderr: String,
    },
}

impl StartError {
    /// The run's end: QEMU exiting by itself is QEMU's failure, the rest the harness's.
    pub(crate) fn run_end(&self) -> RunEnd {
        let fault = match self {
            StartError::Exited { exit, stderr } => {
                return RunEnd::QemuDied {
                    exit: *exit,
                    at_start: true,
                    stderr: stderr.clone(),
                };
            }
            StartError::CrashPattern(_) => HarnessFault::CrashPattern,
            StartError::Bind { .. } => HarnessFault::Sockets,
            StartError::Spawn(_) => HarnessFault::Spawn,
            StartError::Console(_) => HarnessFault::Console,
            StartError::QmpTimeout => HarnessFault::QmpTimeout,
            StartError::QmpAccept(_) => HarnessFault::QmpAccept,
            StartError::Qmp(_) => HarnessFault::Qmp,
        };
        RunEnd::HarnessError {
            fault,
            detail: self.to_string(),
        }
    }
}

/// Who plays QEMU. Only tests use anything but the real binary: an in-process fake that
/// speaks QMP and writes a transcript over the same sockets, so the whole loop below runs
/// without QEMU and without a second spawner.
pub(crate) enum Launcher {
    /// `spec.machine.qemu`, spawned by `sys::process`.
    Real,
    /// A scripted fake QEMU (`boot/fake.rs`).
    #[cfg(test)]
    Fake(crate::boot::fake::Script),
}

/// The running QEMU as the loop sees it.
enum Qemu {
    Real(ChildGuard),
    #[cfg(test)]
    Fake(crate::boot::fake::FakeQemu),
}

impl Qemu {
    /// Waits for the exit (cancel-safe).
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            Qemu::Real(child) => child.wait().await,
            #[cfg(test)]
            Qemu::Fake(fake) => Ok(fake.wait().await),
        }
    }

    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self {
            Qemu::Real(child) => child.try_wait(),
            #[cfg(test)]
            Qemu::Fake(fake) => Ok(fake.try_wait()),
        }
    }

    async fn terminate(&mut self, grace: Duration) {
        match self {
            Qemu::Real(child) => {
                child.terminate(grace).await;
            }
            #[cfg(test)]
            Qemu::Fake(fake) => fake.kill(),
        }
    }
}

/// Paths of a run's files inside its state directory.
pub(crate) fn state_file(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(name)
}

/// Boots `spec.machine` and watches it until it ends. `cancel` flips to true on Ctrl-C.
pub(crate) async fn run(spec: &RunSpec, cancel: watch::Receiver<bool>) -> MachineOutcome {
    run_with(spec, cancel, Launcher::Real).await
}

/// [`run`] with the QEMU side chosen by `launcher`.
pub(crate) async fn run_with(
    spec: &RunSpec,
    mut cancel: watch::Receiver<bool>,
    launcher: Launcher,
) -> MachineOutcome {
    let started = Instant::now();
    std::fs::create_dir_all(&spec.state_dir).ok();
    let files = RunFiles::in_dir(&spec.state_dir);
    let cmd = Cmd::new(harness_args(&spec.machine, &files));
    let cmdline = cmd.to_string();
    let stderr_log = state_file(&spec.state_dir, "qemu.stderr");
    let _ = std::fs::write(
        state_file(&spec.state_dir, "qemu.argv"),
        format!("{cmdline}\n"),
    );
    for stale in ["serial.log", "qemu.stderr", "qmp.log"] {
        let _ = std::fs::remove_file(state_file(&spec.state_dir, stale));
    }

    let rules = Rules {
        ready: spec.ready.clone(),
        boot_timeout: spec.boot_timeout,
        silence_timeout: spec.silence_timeout,
        test_backstop: spec.test_backstop,
        stop_at_ready: spec.stop_at_ready,
    };
    let mut watch = match Watch::new(rules, &spec.crash, started) {
        Ok(w) => w,
        Err(e) => return early(&StartError::CrashPattern(e), cmdline, started),
    };
    let (mut qemu, mut console, qmp, mut events) = match start(spec, &files, &cmd, launcher).await {
        Ok(running) => running,
        Err(e) => return outcome(e.run_end(), watch, None, None, cmdline, started),
    };
    tracing::debug!(cmd = %cmdline, "qemu running");

    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut cancel_live = true;
    let actions = loop {
        let clock = watch.next_clock();
        let (clock_kind, clock_at) = clock.unwrap_or((Clock::Boot, far));
        let event = tokio::select! {
            line = console.next_line(), if watch.console_open() => line.map_or(Event::ConsoleEof, Event::Line),
            ev = events.recv(), if watch.wants_qmp() => match ev {
                Some(ev) => {
                    tracing::debug!(?ev, "qmp event");
                    Event::Qmp(ev)
                }
                None => Event::QmpClosed,
            },
            status = qemu.wait(), if watch.wants_exit() => Event::QemuExited(status.ok()),
            () = tokio::time::sleep_until(clock_at), if clock.is_some() => Event::Clock(clock_kind),
            changed = cancel.changed(), if cancel_live => match changed {
                Ok(()) if *cancel.borrow() => Event::Cancel,
                Ok(()) => continue,
                // Nobody can cancel any more: stop asking (a closed channel answers at once).
                Err(_) => {
                    cancel_live = false;
                    continue;
                }
            },
        };
        if let (Event::Line(line), Some(p)) = (&event, &spec.progress) {
            if let Some(shown) = p.line_for(line) {
                crate::boot::progress::show(&shown);
            }
        }
        let actions = watch.step(Instant::now(), event);
        if actions.iter().any(|a| matches!(a, Action::Finish(_))) {
            break actions;
        }
    };

    // The step function says what to do if QEMU still lives; only here is that known.
    let alive = matches!(qemu.try_wait(), Ok(None));
    let mut screendump = None;
    let mut end = End::Interrupted;
    for action in actions {
        match action {
            Action::Drain => {}
            Action::Screendump if alive => {
                let file = state_file(&spec.state_dir, "screendump.png");
                let cmd = qapi::qmp::screendump {
                    filename: file.display().to_string(),
                    device: None,
                    head: None,
                    format: Some(qapi::qmp::ImageFormat::png),
                };
                if qmp.execute(&cmd, QMP_WAIT).await.is_ok() && file.exists() {
                    screendump = Some(file);
                }
            }
            Action::Quit if alive => {
                let _ = qmp.execute(&qapi::qmp::quit {}, QMP_WAIT).await;
                if tokio::time::timeout(Duration::from_secs(5), qemu.wait())
                    .await
                    .is_err()
                {
                    qemu.terminate(Duration::from_secs(2)).await;
                }
            }
            Action::Terminate if alive => qemu.terminate(Duration::from_secs(2)).await,
            Action::Screendump | Action::Quit | Action::Terminate => {}
            Action::Finish(e) => end = e,
        }
    }
    drop(qemu);
    let version = Some(qmp.version.clone());
    let end = end.into_run_end(&stderr_tail(&stderr_log));
    outcome(end, watch, version, screendump, cmdline, started)
}

/// Binds both sockets, launches QEMU, accepts its connections, negotiates QMP and resumes
/// the machine. On failure QEMU is gone.
async fn start(
    spec: &RunSpec,
    files: &RunFiles,
    cmd: &Cmd,
    launcher: Launcher,
) -> Result<(Qemu, Console, Qmp, mpsc::UnboundedReceiver<QmpEvent>), StartError> {
    let serial_log = state_file(&spec.state_dir, "serial.log");
    let stderr_log = state_file(&spec.state_dir, "qemu.stderr");
    // Both sockets are ours: QEMU connects to them at start-up, so there is no retry loop.
    let bind = || {
        let serial = console::listen(&files.serial)?;
        let _ = std::fs::remove_file(&files.qmp);
        Ok::<_, std::io::Error>((serial, tokio::net::UnixListener::bind(&files.qmp)?))
    };
    let (serial_listener, qmp_listener) = bind().map_err(|source| StartError::Bind {
        dir: spec.state_dir.clone(),
        source,
    })?;
    let mut qemu = match launcher {
        Launcher::Real => Qemu::Real(process::spawn(
            cmd,
            Output::Files {
                stdout: state_file(&spec.state_dir, "qemu.stdout"),
                stderr: stderr_log.clone(),
            },
        )?),
        #[cfg(test)]
        Launcher::Fake(script) => Qemu::Fake(crate::boot::fake::FakeQemu::start(script, files)),
    };

    let connect = async {
        let console = Console::accept(serial_listener, serial_log, CONNECT_WAIT)
            .await
            .map_err(StartError::Console)?;
        let (stream, _) = tokio::time::timeout(CONNECT_WAIT, qmp_listener.accept())
            .await
            .map_err(|_| StartError::QmpTimeout)?
            .map_err(StartError::QmpAccept)?;
        let qmp_log = Some(state_file(&spec.state_dir, "qmp.log"));
        let (qmp, events) = Qmp::negotiate(stream, QMP_WAIT, qmp_log).await?;
        qmp.execute(&qapi::qmp::cont {}, QMP_WAIT).await?;
        Ok::<_, StartError>((console, qmp, events))
    };
    let connected = tokio::select! {
        // A machine that got as far as `cont` is running: an exit from then on is the
        // loop's to judge, even when both are ready at once.
        biased;
        c = connect => c,
        status = qemu.wait() => Err(StartError::Exited {
            exit: QemuExit::of(status.ok()),
            stderr: stderr_tail(&stderr_log),
        }),
    };
    match connected {
        Ok((console, qmp, events)) => Ok((qemu, console, qmp, events)),
        Err(e) => {
            qemu.terminate(Duration::from_secs(2)).await;
            Err(e)
        }
    }
}

fn outcome(
    end: RunEnd,
    watch: Watch,
    qemu_version: Option<String>,
    screendump: Option<PathBuf>,
    cmdline: String,
    started: Instant,
) -> MachineOutcome {
    let observed = watch.finish(&end);
    MachineOutcome {
        ready_after: observed.ready_at.map(|t| t.duration_since(started)),
        ktap: observed.ktap,
        crashes: observed.crashes,
        console_tail: observed.console_tail,
        qemu_version,
        screendump,
        cmdline,
        duration: started.elapsed(),
        end,
    }
}

fn early(why: &StartError, cmdline: String, started: Instant) -> MachineOutcome {
    MachineOutcome {
        end: why.run_end(),
        ready_after: None,
        ktap: KtapParser::new().finish(None),
        crashes: Vec::new(),
        console_tail: String::new(),
        qemu_version: None,
        screendump: None,
        cmdline,
        duration: started.elapsed(),
    }
}

fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    //! The whole loop — sockets, QMP, clocks, screendump, quit — against the fake QEMU
    //! playing transcripts recorded from real runs (`testdata/`).

    use super::*;
    use crate::boot::fake::Script;
    use crate::boot::qemu_args::{Accel, Boot};
    use crate::boot::step::tests::{HANG, PANIC, PANIC_QMP, SMOKE, SMOKE_QMP, upto};
    use crate::observe::verdict::CaseStatus;

    fn spec(dir: &Path) -> RunSpec {
        RunSpec {
            machine: MachineSpec {
                qemu: "qemu-system-x86_64".into(),
                accel: Accel::Tcg,
                memory_mb: 512,
                cpus: 1,
                boot: Boot::Kernel {
                    kernel: "/nonexistent/vmlinuz".into(),
                    initrd: None,
                    append: "console=ttyS0".into(),
                },
                ovmf: None,
                fw_cfg: Vec::new(),
                clock: crate::input::scenario::Clock::Host,
                disk: None,
            },
            state_dir: dir.to_path_buf(),
            ready: Regex::new(crate::input::scenario::DEFAULT_READY).unwrap(),
            boot_timeout: Duration::from_secs(30),
            silence_timeout: Duration::from_secs(30),
            test_backstop: Duration::from_secs(60),
            crash: CrashPatterns::default(),
            stop_at_ready: false,
            progress: None,
        }
    }

    async fn run_fake(spec: &RunSpec, script: Script) -> MachineOutcome {
        // The sender stays alive for the whole run, as the app's Ctrl-C handler does.
        let (_cancel_tx, cancel) = watch::channel(false);
        tokio::time::timeout(
            Duration::from_secs(30),
            run_with(spec, cancel, Launcher::Fake(script)),
        )
        .await
        .expect("the run ends on its own")
    }

    #[tokio::test]
    async fn ready_then_poweroff() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let script = Script::new()
            .serial(SMOKE)
            .events(SMOKE_QMP)
            .close_serial()
            .exit(0);
        let o = run_fake(&spec, script).await;
        assert_eq!(o.end, RunEnd::PoweredOff);
        assert!(o.ready_after.is_some());
        assert_eq!(o.qemu_version.as_deref(), Some("7.2.22"));
        assert!(o.ktap.cases.len() > 30, "{:#?}", o.ktap.cases);
        assert!(o.ktap.cases.iter().all(|c| c.status == CaseStatus::Passed));
        assert_eq!(o.screendump, None);
        // Everything the fake wrote is in the log, byte for byte.
        assert_eq!(std::fs::read(dir.path().join("serial.log")).unwrap(), SMOKE);
        assert!(
            std::fs::read_to_string(dir.path().join("qemu.argv"))
                .unwrap()
                .contains("-no-reboot")
        );
    }

    #[tokio::test]
    async fn console_panic() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let script = Script::new()
            .serial(PANIC)
            .events(PANIC_QMP)
            .close_serial()
            .exit(0);
        let o = run_fake(&spec, script).await;
        assert_eq!(o.end, RunEnd::Panicked);
        assert_eq!(o.crashes[0].kind, "panic");
        assert!(o.crashes[0].fatal);
    }

    #[tokio::test]
    async fn silence_takes_a_screendump_and_quits() {
        let dir = tempfile::tempdir().unwrap();
        let spec = RunSpec {
            silence_timeout: Duration::from_millis(300),
            ..spec(dir.path())
        };
        let script = Script::new().serial(HANG);
        let received = script.received();
        let o = run_fake(&spec, script).await;
        assert_eq!(o.end, RunEnd::Silent(Duration::from_millis(300)));
        assert_eq!(
            *received.lock().unwrap(),
            ["qmp_capabilities", "cont", "screendump", "quit"]
        );
        let shot = o.screendump.expect("a screendump of the silent guest");
        assert_eq!(shot, dir.path().join("screendump.png"));
        assert!(shot.exists());
    }

    #[tokio::test]
    async fn stop_at_ready_quits_over_qmp() {
        let dir = tempfile::tempdir().unwrap();
        let spec = RunSpec {
            stop_at_ready: true,
            ..spec(dir.path())
        };
        let o = run_fake(&spec, Script::new().serial(SMOKE)).await;
        assert_eq!(o.end, RunEnd::StoppedAtReady);
        assert_eq!(o.screendump, None);
        let qmp = std::fs::read_to_string(dir.path().join("qmp.log")).unwrap();
        assert!(
            qmp.contains("host-qmp-quit"),
            "the fake saw our quit: {qmp}"
        );
    }

    #[tokio::test]
    async fn qmp_breaking_under_a_live_qemu_is_a_harness_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let script = Script::new().serial(upto(SMOKE, "ok 1 proc")).close_qmp();
        let o = run_fake(&spec, script).await;
        assert!(
            matches!(
                &o.end,
                RunEnd::HarnessError {
                    fault: HarnessFault::QmpGone,
                    ..
                }
            ),
            "{:?}",
            o.end
        );
        assert_eq!(o.screendump, None, "no QMP, no screendump");
    }

    #[tokio::test]
    async fn qmp_closing_as_qemu_dies_is_qemus_failure() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let script = Script::new()
            .serial(upto(SMOKE, "ok 1 proc"))
            .close_qmp()
            .pause(Duration::from_millis(100))
            .exit(1);
        let o = run_fake(&spec, script).await;
        assert_eq!(
            o.end,
            RunEnd::QemuDied {
                exit: QemuExit::Code(1),
                at_start: false,
                stderr: String::new()
            }
        );
        assert!(o.ready_after.is_some());
    }

    #[tokio::test]
    async fn qemu_exiting_at_start_is_qemus_failure_not_the_harness() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let o = run_fake(&spec, Script::new().exit_at_start(1)).await;
        assert!(
            matches!(
                o.end,
                RunEnd::QemuDied {
                    exit: QemuExit::Code(1),
                    at_start: true,
                    ..
                }
            ),
            "{:?}",
            o.end
        );
        let e = StartError::Exited {
            exit: QemuExit::Code(1),
            stderr: "qemu: could not open disk".into(),
        };
        assert_eq!(
            e.run_end().describe(),
            "QEMU died: QEMU exited during start-up (exit status: 1): qemu: could not open disk"
        );
        assert_eq!(
            StartError::QmpTimeout.run_end(),
            RunEnd::HarnessError {
                fault: HarnessFault::QmpTimeout,
                detail: "QEMU did not connect to the QMP socket".into()
            }
        );
    }
}
