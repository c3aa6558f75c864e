//! The one place that starts external programs.
//!
//! Every child gets an owner ([`ChildGuard`]), its own process group, a parent-death signal,
//! a deadline and a log. Command lines are built elsewhere by pure functions and arrive here
//! as a [`Cmd`]; this module only runs them. A registry of live process groups lets the
//! signal handler kill everything before the process exits (Drop does not run on `exit`).

// The spawner itself (clippy.toml forbids Command::new everywhere else).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How many lines of a failed command's output are kept for the error message.
const TAIL_LINES: usize = 40;

/// Process groups that are alive right now (pgid == pid of the leader).
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// An external command line plus how to run it. Built by pure functions, so it can be
/// compared in tests and printed for a user to reproduce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cmd {
    /// Program and arguments; `argv[0]` is looked up in `PATH`.
    pub argv: Vec<OsString>,
    /// Working directory; the caller's when `None`.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Wall-clock limit; the whole process group is killed when it passes.
    pub deadline: Option<Duration>,
}

impl Cmd {
    /// A command from a program and its arguments.
    pub(crate) fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: None,
            env: Vec::new(),
            deadline: None,
        }
    }

    /// Sets the working directory.
    #[must_use]
    pub(crate) fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Adds an environment variable.
    #[must_use]
    pub(crate) fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the deadline.
    #[must_use]
    pub(crate) fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
        self
    }

    /// The program name (`argv[0]`).
    pub(crate) fn program(&self) -> &OsStr {
        self.argv
            .first()
            .map_or(OsStr::new(""), OsString::as_os_str)
    }
}

impl fmt::Display for Cmd {
    /// A shell-quoted line a user can paste to reproduce the run.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect();
        if let Some(dir) = &self.cwd {
            write!(f, "(cd {} && ", shell_quote(&dir.to_string_lossy()))?;
        }
        for (k, v) in &self.env {
            write!(
                f,
                "{}={} ",
                k.to_string_lossy(),
                shell_quote(&v.to_string_lossy())
            )?;
        }
        write!(f, "{}", words.join(" "))?;
        if self.cwd.is_some() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Quotes one word for a POSIX shell, leaving plain words alone.
pub(crate) fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started at all.
    #[error("failed to start `{cmd}`")]
    Spawn {
        /// The command line.
        cmd: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{cmd}` failed with {status}{}{}", log_hint(.log.as_deref()), tail_block(.tail))]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines it printed.
        tail: String,
        /// Where the whole output is.
        log: Option<PathBuf>,
    },
    /// The program outlived its deadline and was killed.
    #[error("`{cmd}` did not finish within {}{}", humantime::format_duration(*.after), log_hint(.log.as_deref()))]
    Timeout {
        /// The command line.
        cmd: String,
        /// The deadline that passed.
        after: Duration,
        /// Where the whole output is.
        log: Option<PathBuf>,
    },
    /// Reading its output or writing the log failed.
    #[error("i/o error while running `{cmd}`")]
    Io {
        /// The command line.
        cmd: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The last output lines, indented under the message: what a user needs to see first.
fn tail_block(tail: &str) -> String {
    if tail.trim().is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = tail.lines().collect();
    let shown = &lines[lines.len().saturating_sub(15)..];
    format!("; last lines:\n    | {}", shown.join("\n    | "))
}

fn log_hint(log: Option<&Path>) -> String {
    log.map(|p| format!(" (log: {})", p.display()))
        .unwrap_or_default()
}

impl ProcessError {
    /// The last lines of output, if the command ran.
    pub fn tail(&self) -> Option<&str> {
        match self {
            ProcessError::Failed { tail, .. } => Some(tail),
            _ => None,
        }
    }

    /// True when the program itself was not found (a missing host tool).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProcessError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a finished command printed.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// Standard output (kept only when no log file was given, or by [`run_logged_capture`]).
    pub stdout: String,
    /// The last lines of stdout+stderr.
    pub tail: String,
}

/// Owner of a running child: the process group is killed when this is dropped.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    child: Child,
    pgid: i32,
}

impl ChildGuard {
    /// Takes the child's stdout pipe, if it was piped.
    pub(crate) fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Takes the child's stderr pipe, if it was piped.
    pub(crate) fn take_stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the leader to exit (cancel-safe).
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await;
        if status.is_ok() {
            // The leader is gone; stragglers in its group are killed now rather than left.
            kill_group(self.pgid, libc::SIGKILL);
            forget_group(self.pgid);
        }
        status
    }

    /// Non-blocking check whether the leader has exited.
    pub(crate) fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// SIGTERM to the group, up to `grace` for it to go, then SIGKILL.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            forget_group(self.pgid);
            return Some(status);
        }
        kill_group(self.pgid, libc::SIGTERM);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                kill_group(self.pgid, libc::SIGKILL);
                self.child.wait().await.ok()
            }
        };
        kill_group(self.pgid, libc::SIGKILL);
        forget_group(self.pgid);
        status
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            kill_group(self.pgid, libc::SIGKILL);
        }
        forget_group(self.pgid);
        // tokio reaps the killed child in the background (kill_on_drop is also set).
    }
}

/// Where a spawned child's stdout and stderr go.
#[derive(Debug)]
pub(crate) enum Output {
    /// Both streams appended to this file.
    File(PathBuf),
    /// Separate files for stdout and stderr.
    Files {
        /// stdout goes here.
        stdout: PathBuf,
        /// stderr goes here.
        stderr: PathBuf,
    },
    /// Pipes the caller reads from [`ChildGuard::take_stdout`] / [`ChildGuard::take_stderr`].
    Piped,
}

/// Starts `cmd` in its own process group and returns its owner.
pub(crate) fn spawn(cmd: &Cmd, output: Output) -> Result<ChildGuard, ProcessError> {
    let line = cmd.to_string();
    let spawn_err = |source| ProcessError::Spawn {
        cmd: line.clone(),
        source,
    };
    let mut command = Command::new(cmd.program());
    command
        .args(&cmd.argv[1..])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    for (k, v) in &cmd.env {
        command.env(k, v);
    }
    match output {
        Output::File(path) => {
            let file = append(&path).map_err(spawn_err)?;
            let dup = file.try_clone().map_err(spawn_err)?;
            command.stdout(file).stderr(dup);
        }
        Output::Files { stdout, stderr } => {
            command
                .stdout(append(&stdout).map_err(spawn_err)?)
                .stderr(append(&stderr).map_err(spawn_err)?);
        }
        Output::Piped => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
    }
    set_parent_death_signal(&mut command);
    let child = command.spawn().map_err(spawn_err)?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(pgid);
    Ok(ChildGuard { child, pgid })
}

/// Runs `cmd` to completion under its deadline. Output goes to `log` (appended, with the
/// command line as a header) or is captured; the last lines are kept for the error.
pub(crate) async fn run(cmd: &Cmd, log: Option<&Path>) -> Result<Captured, ProcessError> {
    run_to(cmd, log, false).await
}

/// [`run`] with a log that also keeps stdout, for a command whose output is its answer (a
/// remote listing) and whose run still belongs in a log. Only for small outputs.
pub(crate) async fn run_logged_capture(cmd: &Cmd, log: &Path) -> Result<Captured, ProcessError> {
    run_to(cmd, Some(log), true).await
}

async fn run_to(
    cmd: &Cmd,
    log: Option<&Path>,
    keep_stdout: bool,
) -> Result<Captured, ProcessError> {
    let line = cmd.to_string();
    let io_err = |source| ProcessError::Io {
        cmd: line.clone(),
        source,
    };
    let mut log_file = match log {
        Some(path) => {
            let mut f = tokio::fs::File::from_std(append(path).map_err(io_err)?);
            f.write_all(format!("$ {line}\n").as_bytes())
                .await
                .map_err(io_err)?;
            Some(f)
        }
        None => None,
    };
    let mut guard = spawn(cmd, Output::Piped)?;
    let stdout = guard.take_stdout().expect("spawned with piped stdout");
    let stderr = guard.take_stderr().expect("spawned with piped stderr");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(bool, String)>(256);
    tokio::spawn(forward_lines(stdout, true, tx.clone()));
    tokio::spawn(forward_lines(stderr, false, tx));
    let mut captured = Captured::default();
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
    let collect = async {
        while let Some((is_stdout, text)) = rx.recv().await {
            if let Some(f) = log_file.as_mut() {
                f.write_all(text.as_bytes()).await?;
                f.write_all(b"\n").await?;
            }
            if is_stdout && (keep_stdout || log_file.is_none()) {
                captured.stdout.push_str(&text);
                captured.stdout.push('\n');
            }
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text);
        }
        if let Some(f) = log_file.as_mut() {
            f.flush().await?;
        }
        guard.wait().await
    };
    let status = match cmd.deadline {
        Some(limit) => match tokio::time::timeout(limit, collect).await {
            Ok(r) => r.map_err(io_err)?,
            Err(_) => {
                guard.terminate(Duration::from_secs(2)).await;
                return Err(ProcessError::Timeout {
                    cmd: line,
                    after: limit,
                    log: log.map(Path::to_path_buf),
                });
            }
        },
        None => collect.await.map_err(io_err)?,
    };
    captured.tail = tail.into_iter().collect::<Vec<_>>().join("\n");
    if status.success() {
        Ok(captured)
    } else {
        Err(ProcessError::Failed {
            cmd: line,
            status,
            tail: captured.tail,
            log: log.map(Path::to_path_buf),
        })
    }
}

async fn forward_lines(
    stream: impl AsyncRead + Unpin,
    is_stdout: bool,
    tx: tokio::sync::mpsc::Sender<(bool, String)>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if tx.send((is_stdout, text)).await.is_err() {
                    break;
                }
            }
        }
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Looks a program up in `PATH` (what `spawn` would find), for `doctor` and early checks.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Kills every live process group this process started (signal handler path).
pub fn kill_all_groups() {
    signal_all_groups(libc::SIGKILL);
}

/// SIGTERM to every live child group: the polite first step of stopping a build, so that
/// make deletes the target it was writing (a SIGKILLed compiler leaves a truncated object
/// newer than its source, which a kept work tree would trust on the next run).
pub(crate) fn terminate_all_groups() {
    signal_all_groups(libc::SIGTERM);
}

fn signal_all_groups(signal: i32) {
    let groups: Vec<i32> = LIVE_GROUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .copied()
        .collect();
    for pgid in groups {
        kill_group(pgid, signal);
    }
}

fn forget_group(pgid: i32) {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&pgid);
}

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions; a stale pgid at worst gets ESRCH.
        #[expect(
            unsafe_code,
            reason = "libc::killpg; the group leader is our own child"
        )]
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

/// Children die with us even when we are SIGKILLed and no destructor runs.
fn set_parent_death_signal(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe; it touches no memory of the parent.
    #[expect(unsafe_code, reason = "pre_exec to set PR_SET_PDEATHSIG")]
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_a_pasteable_shell_line() {
        let cmd = Cmd::new([
            "qemu-system-x86_64",
            "-append",
            "console=ttyS0 panic=-1",
            "it's",
        ]);
        assert_eq!(
            cmd.to_string(),
            r"qemu-system-x86_64 -append 'console=ttyS0 panic=-1' 'it'\''s'"
        );
        let cmd = Cmd::new(["make", "-j2"])
            .cwd("/src/linux")
            .env("KBUILD_BUILD_USER", "xsc");
        assert_eq!(
            cmd.to_string(),
            "(cd /src/linux && KBUILD_BUILD_USER=xsc make -j2)"
        );
    }

    #[tokio::test]
    async fn failure_keeps_the_tail_and_status() {
        let cmd = Cmd::new(["sh", "-c", "echo one; echo two >&2; exit 3"]);
        let err = run(&cmd, None).await.unwrap_err();
        let ProcessError::Failed { status, tail, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(status.code(), Some(3));
        assert!(tail.contains("one") && tail.contains("two"), "{tail}");
        assert!(err.to_string().contains("exit status: 3"), "{err}");
    }

    #[tokio::test]
    async fn deadline_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let cmd = Cmd::new(["sh", "-c", &script]).deadline(Duration::from_millis(500));
        let err = run(&cmd, None).await.unwrap_err();
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "grandchild {pid} survived the deadline");
    }

    #[tokio::test]
    async fn missing_program_is_reported_as_not_found() {
        let err = run(&Cmd::new(["xsc-no-such-tool-here"]), None)
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }

    #[tokio::test]
    async fn a_logged_capture_keeps_stdout_and_logs_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("remote.log");
        let out = run_logged_capture(&Cmd::new(["sh", "-c", "echo listing; echo oops >&2"]), &log)
            .await
            .unwrap();
        assert_eq!(out.stdout, "listing\n");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("listing") && text.contains("oops"), "{text}");
    }

    #[tokio::test]
    async fn log_file_gets_the_command_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sub/build.log");
        run(&Cmd::new(["sh", "-c", "echo hello"]), Some(&log))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "$ sh -c 'echo hello'\nhello\n");
    }
}
