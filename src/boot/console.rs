//! The serial console: a unix socket the harness listens on and QEMU connects to.
//!
//! One tokio task reads it (no busy loop: crates.md measured expectrl's polling `expect`
//! slowing a TCG boot by 30–50 % on 2 cores), appends every byte to `serial.log`, and
//! streams lines to the observers. CRLF, escape sequences and binary garbage pass through
//! as lossy UTF-8; a line longer than [`MAX_LINE`] is cut so garbage cannot grow memory.
//! `expect`/`send` helpers sit on top for interactive checks (login prompts).

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// Longest line handed to observers; longer runs are split.
pub const MAX_LINE: usize = 8192;

/// One console line, terminator and `\r` removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line(pub String);

/// Splits a byte stream into lines.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; returns the completed lines.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                out.push(self.take());
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    out.push(self.take());
                }
            }
        }
        out
    }

    /// The unterminated rest at end of stream.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.partial).replace('\r', "");
        self.partial.clear();
        line
    }
}

/// The reading end handed to the machine loop.
pub struct Console {
    lines: mpsc::Receiver<String>,
    writer: Option<OwnedWriteHalf>,
    /// Lines consumed by `expect` but not yet by the caller's loop.
    seen: Vec<String>,
}

/// Binds the serial socket at `path` (QEMU connects to it once started).
pub fn listen(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
}

impl Console {
    /// Accepts QEMU's connection and starts the reader task, which tees every byte to
    /// `log`. Fails if QEMU does not connect within `deadline`.
    pub async fn accept(
        listener: UnixListener,
        log: PathBuf,
        deadline: Duration,
    ) -> std::io::Result<Console> {
        let (stream, _) = tokio::time::timeout(deadline, listener.accept())
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "QEMU did not connect to the serial socket",
                )
            })??;
        Console::start(stream, log).await
    }

    /// Starts reading an already connected stream.
    pub async fn start(stream: UnixStream, log: PathBuf) -> std::io::Result<Console> {
        let (mut read, write) = stream.into_split();
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .await?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(async move {
            let mut splitter = LineSplitter::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // The log is the record of truth: written before anyone judges a line.
                if file.write_all(&buf[..n]).await.is_err() {
                    tracing::warn!("cannot write serial log");
                }
                for line in splitter.push(&buf[..n]) {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
            }
            let _ = file.flush().await;
            if let Some(rest) = splitter.finish() {
                let _ = tx.send(rest).await;
            }
        });
        Ok(Console {
            lines: rx,
            writer: Some(write),
            seen: Vec::new(),
        })
    }

    /// The next line; `None` at end of stream (QEMU closed the port).
    pub async fn next_line(&mut self) -> Option<String> {
        if !self.seen.is_empty() {
            return Some(self.seen.remove(0));
        }
        self.lines.recv().await
    }

    /// Waits for a line matching `re`, up to `timeout`; lines read meanwhile stay queued
    /// for [`Console::next_line`]. Returns the matching line.
    pub async fn expect(&mut self, re: &Regex, timeout: Duration) -> Result<String, ExpectError> {
        if let Some(line) = self.seen.iter().find(|l| re.is_match(l)) {
            return Ok(line.clone());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Err(_) => {
                    let tail = self
                        .seen
                        .iter()
                        .rev()
                        .take(5)
                        .rev()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n");
                    return Err(ExpectError::Timeout {
                        pattern: re.to_string(),
                        after: timeout,
                        tail,
                    });
                }
                Ok(None) => {
                    return Err(ExpectError::Eof {
                        pattern: re.to_string(),
                    });
                }
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if re.is_match(&line) {
                        return Ok(line);
                    }
                }
            }
        }
    }

    /// Types `text` on the serial console.
    pub async fn send(&mut self, text: &str) -> std::io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => {
                w.write_all(text.as_bytes()).await?;
                w.flush().await
            }
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

/// Why an `expect` gave up.
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// Nothing matched in time.
    #[error("console never matched /{pattern}/ within {}; last lines:\n{tail}", humantime::format_duration(*.after))]
    Timeout {
        /// The regex.
        pattern: String,
        /// The wait.
        after: Duration,
        /// The last lines seen.
        tail: String,
    },
    /// The console closed first.
    #[error("console closed before /{pattern}/ appeared")]
    Eof {
        /// The regex.
        pattern: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_garbage_and_long_lines() {
        let mut s = LineSplitter::default();
        let mut lines = s.push(b"one\r\ntw");
        lines.extend(s.push(b"o\n\xff\x00\x1b[2J]]>\r\n"));
        assert_eq!(lines[0], "one");
        assert_eq!(lines[1], "two");
        assert_eq!(lines[2], "\u{fffd}\u{0}\u{1b}[2J]]>");
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let parts = s.push(&long);
        assert_eq!(parts.len(), 2);
        assert_eq!(s.finish().map(|r| r.len()), Some(10));
        assert_eq!(s.finish(), None);
    }

    #[tokio::test]
    async fn tees_every_byte_and_expects_without_losing_lines() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("serial.sock");
        let log = dir.path().join("serial.log");
        let listener = listen(&sock).unwrap();
        let qemu = tokio::spawn({
            let sock = sock.clone();
            async move {
                let mut s = UnixStream::connect(&sock).await.unwrap();
                s.write_all(b"booting\r\nlogin: \nafter\r\npartial")
                    .await
                    .unwrap();
                let mut typed = [0u8; 5];
                s.read_exact(&mut typed).await.unwrap();
                typed
            }
        });
        let mut console = Console::accept(listener, log.clone(), Duration::from_secs(5))
            .await
            .unwrap();
        let login = console
            .expect(&Regex::new("login:").unwrap(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(login, "login: ");
        console.send("root\n").await.unwrap();
        assert_eq!(&qemu.await.unwrap(), b"root\n");
        let mut all = Vec::new();
        while let Some(l) = console.next_line().await {
            all.push(l);
        }
        assert_eq!(all, ["booting", "login: ", "after", "partial"]);
        assert_eq!(
            std::fs::read(&log).unwrap(),
            b"booting\r\nlogin: \nafter\r\npartial"
        );
    }

    #[tokio::test]
    async fn expect_times_out_with_the_tail() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut console = Console::start(a, dir.path().join("log")).await.unwrap();
        b.write_all(b"nothing here\n").await.unwrap();
        let err = console
            .expect(&Regex::new("ready").unwrap(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nothing here"), "{err}");
    }
}
