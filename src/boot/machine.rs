//! One machine run: start QEMU paused, connect the serial console and QMP, resume, and
//! watch the guest until it ends — feeding every console line to the observers and
//! enforcing the clocks. Whatever happens, QEMU is gone when this returns.
//!
//! The three clocks: boot (spawn to the ready marker), silence (longest gap between console
//! lines), and the host-side test backstop (ready to the end; the per-program clock itself
//! is enforced inside the guest by PID 1). Each expiry is its own [`RunEnd`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::boot::console::{self, Console};
use crate::boot::qemu_args::{MachineSpec, RunFiles, harness_args};
use crate::boot::qmp::{Qmp, QmpEvent};
use crate::observe::crash::{CrashPatterns, CrashScanner};
use crate::observe::ktap::{KtapOutcome, KtapParser};
use crate::observe::verdict::{Crash, FailureKind, RunEnd};
use crate::sys::process::{self, Cmd, Output};

/// Lines of console kept for reports.
const TAIL_LINES: usize = 200;
/// How long QEMU may take to connect its sockets after starting.
const CONNECT_WAIT: Duration = Duration::from_secs(20);
/// How long to keep reading the console after the end is known (the last lines and the
/// rest of a panic trace are usually in flight).
const DRAIN_WAIT: Duration = Duration::from_secs(3);
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

/// The observers fed by the console.
struct Observers {
    ready: Regex,
    ready_at: Option<Instant>,
    ktap: KtapParser,
    crash: CrashScanner,
    fatal: Option<Crash>,
    tail: VecDeque<String>,
}

impl Observers {
    fn feed(&mut self, line: String) {
        if self.ready_at.is_none() && self.ready.is_match(&line) {
            self.ready_at = Some(Instant::now());
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
}

/// Paths of a run's files inside its state directory.
pub(crate) fn state_file(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(name)
}

/// Boots `spec.machine` and watches it until it ends. `cancel` flips to true on Ctrl-C.
pub(crate) async fn run(spec: &RunSpec, mut cancel: watch::Receiver<bool>) -> MachineOutcome {
    let started = Instant::now();
    std::fs::create_dir_all(&spec.state_dir).ok();
    let files = RunFiles::in_dir(&spec.state_dir);
    let argv = harness_args(&spec.machine, &files);
    let cmd = Cmd::new(argv);
    let cmdline = cmd.to_string();
    let serial_log = state_file(&spec.state_dir, "serial.log");
    let stderr_log = state_file(&spec.state_dir, "qemu.stderr");
    let _ = std::fs::write(
        state_file(&spec.state_dir, "qemu.argv"),
        format!("{cmdline}\n"),
    );
    let _ = std::fs::remove_file(&serial_log);
    let _ = std::fs::remove_file(&stderr_log);

    let mut obs = Observers {
        ready: spec.ready.clone(),
        ready_at: None,
        ktap: KtapParser::new(),
        crash: match CrashScanner::new(&spec.crash) {
            Ok(s) => s,
            Err(e) => return early(format!("invalid crash pattern: {e}"), cmdline, started),
        },
        fatal: None,
        tail: VecDeque::new(),
    };
    let outcome = |end: RunEnd,
                   obs: Observers,
                   qemu_version: Option<String>,
                   screendump: Option<PathBuf>,
                   cmdline: String| {
        let abort = abort_reason(&end);
        MachineOutcome {
            ready_after: obs.ready_at.map(|t| t.duration_since(started)),
            ktap: obs
                .ktap
                .finish(abort.as_ref().map(|(k, m)| (*k, m.as_str()))),
            crashes: obs.crash.finish(),
            console_tail: obs.tail.into_iter().collect::<Vec<_>>().join("\n"),
            qemu_version,
            screendump,
            cmdline,
            duration: started.elapsed(),
            end,
        }
    };

    // Both sockets are ours: QEMU connects to them at start-up, so there is no retry loop.
    let listeners = console::listen(&files.serial).and_then(|s| {
        Ok((
            s,
            tokio::net::UnixListener::bind({
                let _ = std::fs::remove_file(&files.qmp);
                &files.qmp
            })?,
        ))
    });
    let (serial_listener, qmp_listener) = match listeners {
        Ok(l) => l,
        Err(e) => {
            return outcome(
                RunEnd::HarnessError(format!(
                    "cannot bind sockets in {}: {e}",
                    spec.state_dir.display()
                )),
                obs,
                None,
                None,
                cmdline,
            );
        }
    };
    let mut qemu = match process::spawn(
        &cmd,
        Output::Files {
            stdout: state_file(&spec.state_dir, "qemu.stdout"),
            stderr: stderr_log.clone(),
        },
    ) {
        Ok(q) => q,
        Err(e) => {
            return outcome(
                RunEnd::HarnessError(e.to_string()),
                obs,
                None,
                None,
                cmdline,
            );
        }
    };

    let connect = async {
        let console = Console::accept(serial_listener, serial_log.clone(), CONNECT_WAIT).await?;
        let (stream, _) = tokio::time::timeout(CONNECT_WAIT, qmp_listener.accept())
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "QEMU did not connect to the QMP socket",
                )
            })??;
        let (qmp, events) = Qmp::negotiate(stream, QMP_WAIT)
            .await
            .map_err(std::io::Error::other)?;
        qmp.execute(&qapi::qmp::cont {}, QMP_WAIT)
            .await
            .map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>((console, qmp, events))
    };
    let connected = tokio::select! {
        c = connect => c,
        status = qemu.wait() => Err(std::io::Error::other(format!("QEMU exited during start-up ({}): {}",
            status.map_or_else(|e| e.to_string(), |s| s.to_string()), stderr_tail(&stderr_log)))),
    };
    let (mut console, qmp, mut events) = match connected {
        Ok(c) => c,
        Err(e) => {
            qemu.terminate(Duration::from_secs(2)).await;
            let end = if qemu_exited_text(&e) {
                RunEnd::QemuDied(e.to_string())
            } else {
                RunEnd::HarnessError(e.to_string())
            };
            return outcome(end, obs, None, None, cmdline);
        }
    };
    tracing::debug!(cmd = %cmdline, "qemu running");

    let boot_deadline = started + spec.boot_timeout;
    let mut silence_deadline = Instant::now() + spec.silence_timeout;
    let mut test_deadline: Option<Instant> = None;
    let mut console_open = true;
    let mut qemu_status = None;
    let mut shutdown: Option<RunEnd> = None;
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);

    let end = loop {
        if let Some(c) = obs.fatal.as_ref() {
            tracing::debug!(line = %c.line, "fatal crash on the console");
            break RunEnd::Panicked;
        }
        if test_deadline.is_none() {
            if let Some(t) = obs.ready_at {
                test_deadline = Some(t + spec.test_backstop);
            }
        }
        tokio::select! {
            line = console.next_line(), if console_open => match line {
                Some(line) => {
                    silence_deadline = Instant::now() + spec.silence_timeout;
                    obs.feed(line);
                    if spec.stop_at_ready && obs.ready_at.is_some() && obs.fatal.is_none() {
                        break RunEnd::StoppedAtReady;
                    }
                }
                None => {
                    console_open = false;
                    if let Some(end) = shutdown.take() { break end; }
                }
            },
            ev = events.recv() => match ev {
                Some(QmpEvent::GuestPanicked { .. }) => break RunEnd::Panicked,
                Some(QmpEvent::Shutdown { reason, .. }) if reason == "guest-panic" => break RunEnd::Panicked,
                Some(QmpEvent::Shutdown { guest: true, reason }) if reason == "guest-reset" => break RunEnd::Reset,
                Some(QmpEvent::Shutdown { guest: true, .. }) => {
                    // The console may still hold the last lines: finish on its EOF.
                    if !console_open { break RunEnd::PoweredOff; }
                    shutdown = Some(RunEnd::PoweredOff);
                }
                Some(QmpEvent::Reset { guest: true, .. }) => break RunEnd::Reset,
                Some(other) => tracing::debug!(?other, "qmp event"),
                None => {
                    // QMP closed: QEMU is exiting; its exit status decides below.
                    let status = qemu.wait().await.ok();
                    qemu_status = status;
                    break shutdown.take().unwrap_or_else(|| RunEnd::QemuDied(died(status, &stderr_log)));
                }
            },
            status = qemu.wait(), if qemu_status.is_none() => {
                let status = status.ok();
                qemu_status = status;
                break shutdown.take().unwrap_or_else(|| RunEnd::QemuDied(died(status, &stderr_log)));
            }
            () = tokio::time::sleep_until(boot_deadline), if obs.ready_at.is_none() => break RunEnd::BootTimeout(spec.boot_timeout),
            // Silence counts once the guest is up: before that, firmware and kernel
            // decompression print nothing for seconds under TCG, and the boot clock rules.
            () = tokio::time::sleep_until(silence_deadline), if obs.ready_at.is_some() => break RunEnd::Silent(spec.silence_timeout),
            () = tokio::time::sleep_until(test_deadline.unwrap_or(far)), if test_deadline.is_some() => break RunEnd::TestTimeout(spec.test_backstop),
            _ = cancel.changed() => if *cancel.borrow() { break RunEnd::Interrupted },
        }
    };

    // Read what is still in flight: the last KTAP lines, the rest of a panic trace.
    if console_open && !matches!(end, RunEnd::Interrupted | RunEnd::StoppedAtReady) {
        let drain_until = Instant::now() + DRAIN_WAIT;
        while let Ok(Some(line)) = tokio::time::timeout_at(drain_until, console.next_line()).await {
            obs.feed(line);
        }
    }

    // `panic=-1` reboots at once, so QEMU's reset or exit can overtake the console lines
    // that say why: a fatal crash on the console is the real end.
    let end = match end {
        RunEnd::Reset | RunEnd::QemuDied(_) | RunEnd::PoweredOff if obs.fatal.is_some() => {
            RunEnd::Panicked
        }
        other => other,
    };
    let mut screendump = None;
    let alive = qemu_status.is_none() && matches!(qemu.try_wait(), Ok(None));
    if alive {
        if !matches!(
            end,
            RunEnd::PoweredOff | RunEnd::Interrupted | RunEnd::StoppedAtReady
        ) {
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
        let _ = qmp.execute(&qapi::qmp::quit {}, QMP_WAIT).await;
        if tokio::time::timeout(Duration::from_secs(5), qemu.wait())
            .await
            .is_err()
        {
            qemu.terminate(Duration::from_secs(2)).await;
        }
    }
    drop(qemu);
    let version = Some(qmp.version.clone());
    outcome(end, obs, version, screendump, cmdline)
}

fn early(reason: String, cmdline: String, started: Instant) -> MachineOutcome {
    MachineOutcome {
        end: RunEnd::HarnessError(reason),
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

/// What to call cases that never reported, by how the run ended.
fn abort_reason(end: &RunEnd) -> Option<(FailureKind, String)> {
    let kind = match end {
        RunEnd::PoweredOff | RunEnd::StoppedAtReady => return None,
        RunEnd::Panicked | RunEnd::Reset => FailureKind::Crash,
        RunEnd::BootTimeout(_) | RunEnd::Silent(_) | RunEnd::TestTimeout(_) => FailureKind::Timeout,
        RunEnd::QemuDied(_) | RunEnd::HarnessError(_) | RunEnd::Interrupted => FailureKind::Infra,
    };
    Some((kind, format!("not reported: {}", end.describe())))
}

fn qemu_exited_text(e: &std::io::Error) -> bool {
    e.to_string().starts_with("QEMU exited")
}

fn died(status: Option<std::process::ExitStatus>, stderr: &Path) -> String {
    let status = status.map_or_else(|| "unknown status".to_string(), |s| s.to_string());
    let tail = stderr_tail(stderr);
    if tail.is_empty() {
        format!("QEMU exited ({status}) without a guest shutdown")
    } else {
        format!("QEMU exited ({status}): {tail}")
    }
}

fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
