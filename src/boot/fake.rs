//! A fake QEMU for tests, in-process: it connects to the run's serial and QMP sockets as
//! QEMU does, speaks QMP (greeting, `qmp_capabilities`, `query-version`, `cont`,
//! `screendump`, `quit`, events), and plays a [`Script`] of console bytes, QMP events,
//! pauses, closes and exits. `machine::run_with(…, Launcher::Fake(script))` then runs the
//! real machine loop — sockets, QMP, clocks, screendump, quit — with no QEMU and no second
//! spawner (nothing here starts a process).

use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::boot::qemu_args::RunFiles;

/// The greeting of the QEMU the transcripts were recorded with (`testdata/*.qmp`).
const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#;

/// One thing the fake does, in order, once the harness has sent `cont`.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Bytes on the serial port.
    Serial(Vec<u8>),
    /// A QMP event message, sent as is.
    Event(Value),
    /// Nothing for a while.
    Pause(Duration),
    /// QEMU closes the serial port (the console's end of stream).
    CloseSerial,
    /// The QMP connection breaks while the process lives on.
    CloseQmp,
    /// The process exits with this code; both sockets close first.
    Exit(i32),
}

/// What the fake plays. After the last step it idles, sockets open, until `quit` or kill.
#[derive(Clone, Debug, Default)]
pub(crate) struct Script {
    steps: Vec<Step>,
    /// Exit with this code before connecting anything (QEMU refusing its command line).
    exit_at_start: Option<i32>,
    /// The QMP commands the fake received, by name, in order.
    received: Arc<Mutex<Vec<String>>>,
}

impl Script {
    /// An empty script.
    pub(crate) fn new() -> Script {
        Script::default()
    }

    /// The QMP commands the fake will have received (shared; read it after the run).
    pub(crate) fn received(&self) -> Arc<Mutex<Vec<String>>> {
        self.received.clone()
    }

    /// Exits with `code` at once, never connecting.
    pub(crate) fn exit_at_start(mut self, code: i32) -> Script {
        self.exit_at_start = Some(code);
        self
    }

    /// Writes `bytes` to the serial port.
    pub(crate) fn serial(mut self, bytes: impl Into<Vec<u8>>) -> Script {
        self.steps.push(Step::Serial(bytes.into()));
        self
    }

    /// Sends each line of `qmp` (a recorded `qmp.log` excerpt) that is an event.
    pub(crate) fn events(mut self, qmp: &str) -> Script {
        for line in qmp.lines() {
            let msg: Value = serde_json::from_str(line).expect("a QMP line is JSON");
            if msg.get("event").is_some() {
                self.steps.push(Step::Event(msg));
            }
        }
        self
    }

    /// Waits.
    pub(crate) fn pause(mut self, d: Duration) -> Script {
        self.steps.push(Step::Pause(d));
        self
    }

    /// Closes the serial port.
    pub(crate) fn close_serial(mut self) -> Script {
        self.steps.push(Step::CloseSerial);
        self
    }

    /// Breaks the QMP connection.
    pub(crate) fn close_qmp(mut self) -> Script {
        self.steps.push(Step::CloseQmp);
        self
    }

    /// Exits with `code`.
    pub(crate) fn exit(mut self, code: i32) -> Script {
        self.steps.push(Step::Exit(code));
        self
    }
}

/// The running fake, as far as its exit goes.
pub(crate) struct FakeQemu {
    status: Arc<watch::Sender<Option<ExitStatus>>>,
    task: JoinHandle<()>,
}

impl FakeQemu {
    /// Connects to the run's sockets (already bound by the harness) and plays `script`.
    pub(crate) fn start(script: Script, files: &RunFiles) -> FakeQemu {
        let status = Arc::new(watch::Sender::new(None));
        let commands = script.received();
        let task = tokio::spawn(play(
            script,
            files.serial.clone(),
            files.qmp.clone(),
            status.clone(),
            commands,
        ));
        FakeQemu { status, task }
    }

    /// Waits for the exit (cancel-safe).
    pub(crate) async fn wait(&mut self) -> ExitStatus {
        let mut rx = self.status.subscribe();
        loop {
            if let Some(s) = *rx.borrow_and_update() {
                return s;
            }
            // The sender lives in `self`, so this never fails while we wait.
            let _ = rx.changed().await;
        }
    }

    /// The exit status, if exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    /// SIGKILL: the sockets close, the status says signal 9.
    pub(crate) fn kill(&mut self) {
        self.task.abort();
        self.status.send_if_modified(|s| {
            s.get_or_insert(ExitStatus::from_raw(9));
            true
        });
    }
}

impl Drop for FakeQemu {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Writer = Arc<tokio::sync::Mutex<Option<OwnedWriteHalf>>>;

async fn send(w: &Writer, msg: &Value) {
    if let Some(w) = w.lock().await.as_mut() {
        let _ = w.write_all(format!("{msg}\n").as_bytes()).await;
    }
}

async fn play(
    script: Script,
    serial: PathBuf,
    qmp: PathBuf,
    status: Arc<watch::Sender<Option<ExitStatus>>>,
    commands: Arc<Mutex<Vec<String>>>,
) {
    if let Some(code) = script.exit_at_start {
        status.send_replace(Some(ExitStatus::from_raw(code << 8)));
        return;
    }
    let (Ok(serial), Ok(qmp)) = (
        UnixStream::connect(&serial).await,
        UnixStream::connect(&qmp).await,
    ) else {
        status.send_replace(Some(ExitStatus::from_raw(1 << 8)));
        return;
    };
    let mut serial = Some(serial);
    let (qmp_read, qmp_write) = qmp.into_split();
    let writer: Writer = Arc::new(tokio::sync::Mutex::new(Some(qmp_write)));
    if let Some(w) = writer.lock().await.as_mut() {
        let _ = w.write_all(format!("{GREETING}\n").as_bytes()).await;
    }
    let (cont_tx, cont_rx) = oneshot::channel();
    let (quit_tx, quit_rx) = oneshot::channel();
    let server = tokio::spawn(serve(qmp_read, writer.clone(), commands, cont_tx, quit_tx));
    // QEMU runs paused (`-S`) until the harness says `cont`.
    if cont_rx.await.is_err() {
        return;
    }
    // A real guest takes a while to print anything; without this pause an in-process fake
    // could run its whole script before the harness has read the reply to `cont`.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let steps = async {
        for step in script.steps {
            match step {
                Step::Serial(bytes) => {
                    if let Some(s) = serial.as_mut() {
                        let _ = s.write_all(&bytes).await;
                    }
                }
                Step::Event(msg) => send(&writer, &msg).await,
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::CloseSerial => serial = None,
                Step::CloseQmp => {
                    server.abort();
                    *writer.lock().await = None;
                }
                Step::Exit(code) => return Some(code),
            }
        }
        std::future::pending::<Option<i32>>().await
    };
    let code = tokio::select! {
        code = steps => code.unwrap_or(0),
        Ok(()) = quit_rx => 0,
    };
    // A process's sockets close when it exits, before its parent can reap it.
    server.abort();
    *writer.lock().await = None;
    status.send_replace(Some(ExitStatus::from_raw(code << 8)));
}

async fn serve(
    read: tokio::net::unix::OwnedReadHalf,
    writer: Writer,
    commands: Arc<Mutex<Vec<String>>>,
    cont: oneshot::Sender<()>,
    quit: oneshot::Sender<()>,
) {
    let mut cont = Some(cont);
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let name = msg["execute"].as_str().unwrap_or_default().to_string();
        commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.clone());
        let id = msg["id"].clone();
        let ret = match name.as_str() {
            "query-version" => {
                json!({"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "fake"})
            }
            "screendump" => {
                if let Some(file) = msg["arguments"]["filename"].as_str() {
                    let _ = std::fs::write(file, b"\x89PNG fake");
                }
                json!({})
            }
            _ => json!({}),
        };
        send(&writer, &json!({"return": ret, "id": id})).await;
        match name.as_str() {
            "cont" => {
                send(&writer, &json!({"event": "RESUME", "data": {}})).await;
                if let Some(c) = cont.take() {
                    let _ = c.send(());
                }
            }
            "quit" => {
                let shutdown = json!({"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}});
                send(&writer, &shutdown).await;
                let _ = quit.send(());
                return;
            }
            _ => {}
        }
    }
}
