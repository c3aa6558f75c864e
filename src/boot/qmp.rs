//! A small QMP connection of our own, carrying `qapi`'s typed commands.
//!
//! crates.md measured qapi's own stream here: one unknown event kills it, `execute` hangs
//! unless the event stream is polled, and a timed-out command panics ("duplicate command
//! id"). So the transport is ours: one reader task splits replies from events, unknown
//! events are kept by name, and every command has a deadline that leaves the connection
//! usable. The command and event payload types still come from `qapi::qmp`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc, oneshot};

/// What can go wrong talking QMP.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QmpError {
    /// The socket failed.
    #[error("QMP i/o error")]
    Io(#[from] std::io::Error),
    /// QEMU closed the connection.
    #[error("QMP connection closed by QEMU")]
    Closed,
    /// No greeting or reply in time.
    #[error("QMP `{command}` got no reply within {}", humantime::format_duration(*.after))]
    Timeout {
        /// The command (or `greeting`).
        command: String,
        /// The deadline.
        after: Duration,
    },
    /// QEMU answered with an error.
    #[error("QMP `{command}` failed: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's message.
        desc: String,
    },
    /// A message that is not QMP.
    #[error("malformed QMP message: {0}")]
    Protocol(String),
}

/// An asynchronous event from QEMU; the ones the runner acts on are typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QmpEvent {
    /// The guest (or the host) shut the machine down.
    Shutdown {
        /// True when the guest asked for it.
        guest: bool,
        /// QEMU's reason, e.g. `guest-shutdown`, `guest-panic`, `guest-reset`.
        reason: String,
    },
    /// The machine was reset.
    Reset {
        /// True when the guest asked for it.
        guest: bool,
        /// QEMU's reason.
        reason: String,
    },
    /// pvpanic reported a guest panic.
    GuestPanicked {
        /// What QEMU does about it (`pause`, `poweroff`, `run`).
        action: String,
    },
    /// The VM stopped running.
    Stop,
    /// The VM resumed.
    Resume,
    /// Anything else, kept by name (never fatal to the connection).
    Other(String),
}

impl QmpEvent {
    /// Decodes an event message using qapi's payload types for the ones we act on.
    pub(crate) fn from_message(msg: &Value) -> QmpEvent {
        let name = msg.get("event").and_then(Value::as_str).unwrap_or_default();
        let data = msg.get("data").cloned().unwrap_or(Value::Null);
        let text = |v: Value| v.as_str().map(str::to_string).unwrap_or_default();
        match name {
            "SHUTDOWN" => match serde_json::from_value::<qapi::qmp::SHUTDOWN>(data.clone()) {
                Ok(s) => QmpEvent::Shutdown {
                    guest: s.guest,
                    reason: text(serde_json::to_value(s.reason).unwrap_or_default()),
                },
                Err(_) => QmpEvent::Shutdown {
                    guest: false,
                    reason: text(data["reason"].clone()),
                },
            },
            "RESET" => match serde_json::from_value::<qapi::qmp::RESET>(data.clone()) {
                Ok(r) => QmpEvent::Reset {
                    guest: r.guest,
                    reason: text(serde_json::to_value(r.reason).unwrap_or_default()),
                },
                Err(_) => QmpEvent::Reset {
                    guest: false,
                    reason: text(data["reason"].clone()),
                },
            },
            "GUEST_PANICKED" => QmpEvent::GuestPanicked {
                action: text(data["action"].clone()),
            },
            "STOP" => QmpEvent::Stop,
            "RESUME" => QmpEvent::Resume,
            other => QmpEvent::Other(other.to_string()),
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, QmpError>>>>>;

/// A negotiated QMP connection.
pub(crate) struct Qmp {
    writer: Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    /// QEMU's version from the greeting, e.g. `7.2.22`.
    pub version: String,
}

impl Qmp {
    /// Reads the greeting, negotiates capabilities, and returns the connection plus the
    /// stream of events. Events and replies are read by one background task. With `log`,
    /// every line QEMU sends is appended there (a few lines per run, so cheap): the record
    /// the machine-loop transcripts in `boot/testdata` are taken from.
    pub(crate) async fn negotiate(
        stream: UnixStream,
        deadline: Duration,
        log: Option<std::path::PathBuf>,
    ) -> Result<(Qmp, mpsc::UnboundedReceiver<QmpEvent>), QmpError> {
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = tokio::time::timeout(deadline, lines.next_line())
            .await
            .map_err(|_| QmpError::Timeout {
                command: "greeting".into(),
                after: deadline,
            })??
            .ok_or(QmpError::Closed)?;
        let mut log = log.and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        });
        let mut record = move |line: &str| {
            if let Some(f) = log.as_mut() {
                use std::io::Write as _;
                let _ = writeln!(f, "{line}");
            }
        };
        record(&greeting);
        let greeting: qapi::qmp::QapiCapabilities = serde_json::from_str(&greeting)
            .map_err(|e| QmpError::Protocol(format!("{e}: {greeting}")))?;
        let v = &greeting.QMP.version.qemu;
        let version = format!("{}.{}.{}", v.major, v.minor, v.micro);

        let pending: Pending = Arc::default();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            loop {
                let line = match lines.next_line().await {
                    Ok(Some(line)) => line,
                    _ => break,
                };
                record(&line);
                let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                    tracing::warn!(line, "ignoring a QMP line that is not JSON");
                    continue;
                };
                if msg.get("event").is_some() {
                    let _ = events_tx.send(QmpEvent::from_message(&msg));
                } else if let Some(id) = msg.get("id").and_then(Value::as_u64) {
                    // A reply for a command that already timed out finds no waiter; dropped.
                    if let Some(tx) = reader_pending.lock().await.remove(&id) {
                        let _ = tx.send(reply(&msg));
                    }
                }
            }
            // Connection gone: fail whoever still waits.
            for (_, tx) in reader_pending.lock().await.drain() {
                let _ = tx.send(Err(QmpError::Closed));
            }
        });
        let qmp = Qmp {
            writer: Mutex::new(write),
            pending,
            next_id: AtomicU64::new(1),
            version,
        };
        qmp.execute(&qapi::qmp::qmp_capabilities { enable: None }, deadline)
            .await?;
        Ok((qmp, events_rx))
    }

    /// Runs a typed command with a deadline. A timeout leaves the connection usable.
    pub(crate) async fn execute<C: qapi::Command>(
        &self,
        command: &C,
        deadline: Duration,
    ) -> Result<C::Ok, QmpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id, tx);
        let msg = serde_json::json!({ "execute": C::NAME, "arguments": command, "id": id });
        let mut line = serde_json::to_vec(&msg).map_err(|e| QmpError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let sent = async {
            let mut w = self.writer.lock().await;
            w.write_all(&line).await?;
            w.flush().await
        };
        if let Err(e) = sent.await {
            self.pending.lock().await.remove(&id);
            return Err(if e.kind() == std::io::ErrorKind::BrokenPipe {
                QmpError::Closed
            } else {
                e.into()
            });
        }
        let value = match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(QmpError::Closed),
            Err(_) => {
                self.pending.lock().await.remove(&id);
                return Err(QmpError::Timeout {
                    command: C::NAME.into(),
                    after: deadline,
                });
            }
        };
        let value = value.map_err(|e| match e {
            QmpError::Command { class, desc, .. } => QmpError::Command {
                command: C::NAME.into(),
                class,
                desc,
            },
            other => other,
        })?;
        serde_json::from_value(value).map_err(|e| QmpError::Protocol(format!("{}: {e}", C::NAME)))
    }
}

fn reply(msg: &Value) -> Result<Value, QmpError> {
    if let Some(ret) = msg.get("return") {
        return Ok(ret.clone());
    }
    if let Some(err) = msg.get("error") {
        let field = |k: &str| {
            err.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        return Err(QmpError::Command {
            command: String::new(),
            class: field("class"),
            desc: field("desc"),
        });
    }
    Err(QmpError::Protocol(msg.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::AsyncReadExt;

    #[test]
    fn events_decode_by_name_and_unknown_ones_survive() {
        let ev = |v: Value| QmpEvent::from_message(&v);
        assert_eq!(
            ev(
                json!({"event":"SHUTDOWN","data":{"guest":true,"reason":"guest-panic"},"timestamp":{"seconds":1,"microseconds":2}})
            ),
            QmpEvent::Shutdown {
                guest: true,
                reason: "guest-panic".into()
            }
        );
        assert_eq!(
            ev(json!({"event":"GUEST_PANICKED","data":{"action":"pause"}})),
            QmpEvent::GuestPanicked {
                action: "pause".into()
            }
        );
        assert_eq!(
            ev(json!({"event":"RESET","data":{"guest":true,"reason":"guest-reset"}})),
            QmpEvent::Reset {
                guest: true,
                reason: "guest-reset".into()
            }
        );
        assert_eq!(
            ev(json!({"event":"XSC_FUTURE_EVENT","data":{"weird":[1]}})),
            QmpEvent::Other("XSC_FUTURE_EVENT".into())
        );
    }

    /// A fake QEMU on the other end of a socket pair: greeting, capabilities, then a
    /// command it never answers, an unknown event, and a command it does answer.
    #[tokio::test]
    async fn a_timed_out_command_leaves_the_connection_usable() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fake = tokio::spawn(async move {
            let (r, mut w) = theirs.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(br#"{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":22},"package":""},"capabilities":[]}}
"#).await.unwrap();
            let caps: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            assert_eq!(caps["execute"], "qmp_capabilities");
            w.write_all(format!("{}\n", json!({"return":{},"id":caps["id"]})).as_bytes())
                .await
                .unwrap();
            let _ignored = lines.next_line().await.unwrap().unwrap();
            let status: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            w.write_all(b"{\"event\":\"NOT_IN_ANY_SCHEMA\",\"data\":{}}\n")
                .await
                .unwrap();
            let reply = json!({"return":{"status":"running","running":true,"singlestep":false},"id":status["id"]});
            w.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
            let mut rest = Vec::new();
            let _ = lines.into_inner().read_to_end(&mut rest).await;
        });
        let (qmp, mut events) = Qmp::negotiate(ours, Duration::from_secs(2), None)
            .await
            .unwrap();
        assert_eq!(qmp.version, "7.2.22");
        let err = qmp
            .execute(&qapi::qmp::query_status {}, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, QmpError::Timeout { .. }), "{err:?}");
        let st = qmp
            .execute(&qapi::qmp::query_status {}, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(st.running);
        assert_eq!(
            events.recv().await,
            Some(QmpEvent::Other("NOT_IN_ANY_SCHEMA".into()))
        );
        drop(qmp);
        fake.abort();
    }

    #[tokio::test]
    async fn errors_carry_the_command_and_qemus_message() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        tokio::spawn(async move {
            let (r, mut w) = theirs.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(br#"{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":0},"package":""},"capabilities":[]}}
"#).await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let m: Value = serde_json::from_str(&line).unwrap();
                let r = if m["execute"] == "qmp_capabilities" {
                    json!({"return":{},"id":m["id"]})
                } else {
                    json!({"error":{"class":"GenericError","desc":"no display"},"id":m["id"]})
                };
                w.write_all(format!("{r}\n").as_bytes()).await.unwrap();
            }
        });
        let (qmp, _events) = Qmp::negotiate(ours, Duration::from_secs(2), None)
            .await
            .unwrap();
        let cmd = qapi::qmp::screendump {
            filename: "/x.png".into(),
            device: None,
            head: None,
            format: None,
        };
        let err = qmp.execute(&cmd, Duration::from_secs(2)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "QMP `screendump` failed: GenericError: no display"
        );
    }
}
