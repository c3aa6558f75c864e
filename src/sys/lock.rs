//! The one exclusive lock of the harness: `flock(LOCK_EX)` on a file that records the
//! holder's pid (for the refusal or the "waiting for" message only; the kernel decides who
//! holds it). Used for the build stages' kept work trees and the release publish root.
//!
//! The lock file is never deleted: deleting it would let a third process lock a fresh inode
//! while a second still holds the old one. The kernel drops the lock when its holder exits,
//! however it exits, so there is no stale-lock takeover and no window in which an empty
//! pid file can be mistaken for a dead holder. flock locks belong to an open file
//! description, so two acquisitions in one process conflict as two processes do.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// Another holder has it (only from [`FileLock::try_acquire`]).
    #[error("{} is held by {}", .path.display(), holder_text(*.pid))]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The pid the holder recorded, when readable.
        pid: Option<u32>,
    },
    /// The lock file could not be created, opened, locked or written.
    #[error("cannot {what} lock file {}", .path.display())]
    Io {
        /// `open`, `lock`, `write`.
        what: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    pid.map_or_else(|| "another process".to_string(), |p| format!("pid {p}"))
}

/// A held exclusive lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
}

impl FileLock {
    /// Takes the lock or fails at once with [`LockError::Held`] naming the holder's pid.
    pub(crate) fn try_acquire(path: &Path) -> Result<FileLock, LockError> {
        let mut file = open(path)?;
        if try_lock_exclusive(&file).map_err(io_err("lock", path))? {
            record_pid(&mut file, path)?;
            return Ok(FileLock { file });
        }
        Err(LockError::Held {
            path: path.to_path_buf(),
            pid: read_pid(&mut file),
        })
    }

    /// Waits until the lock is free. `waiting` is called once, with the holder's pid, when
    /// the first attempt finds it held (the caller tells the user who it waits for). Cancel
    /// by dropping the future: nothing is held until it resolves.
    pub(crate) async fn acquire(
        path: &Path,
        mut waiting: impl FnMut(Option<u32>),
    ) -> Result<FileLock, LockError> {
        let mut told = false;
        let mut pause = Duration::from_millis(50);
        loop {
            match FileLock::try_acquire(path) {
                Err(LockError::Held { pid, .. }) => {
                    if !told {
                        waiting(pid);
                        told = true;
                    }
                    // Polling, not a blocking flock on a thread: a blocked thread cannot be
                    // cancelled, and a build waits minutes, so a second's latency is nothing.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Clear the pid so a later reader does not blame us; closing the file unlocks.
        let _ = self.file.set_len(0);
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Io { what, path, source }
}

fn open(path: &Path) -> Result<File, LockError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err("create the directory of", path))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("open", path))
}

fn record_pid(file: &mut File, path: &Path) -> Result<(), LockError> {
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(io_err("write", path))
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when someone else holds it.
#[expect(unsafe_code, reason = "libc::flock on a descriptor we own")]
fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock only takes an integer descriptor, which `file` keeps open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/stage.lock");
        let held = FileLock::try_acquire(&path).unwrap();
        // A second open file description in the same process conflicts like a second process.
        let err = FileLock::try_acquire(&path).unwrap_err();
        let LockError::Held { pid, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*pid, Some(std::process::id()));
        assert!(
            err.to_string()
                .contains(&format!("held by pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(path.exists(), "the lock file is never deleted");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        FileLock::try_acquire(&path).unwrap();
    }

    #[test]
    fn a_pid_file_left_by_a_dead_holder_does_not_hold_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage.lock");
        // What the old pid-file lock left behind, or an empty file of a crashed writer.
        for text in ["999999999\n", ""] {
            std::fs::write(&path, text).unwrap();
            let held = FileLock::try_acquire(&path).unwrap();
            assert_eq!(
                std::fs::read_to_string(&path).unwrap().trim(),
                std::process::id().to_string()
            );
            drop(held);
        }
    }

    #[tokio::test]
    async fn a_waiting_acquire_gets_the_lock_once_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage.lock");
        let held = FileLock::try_acquire(&path).unwrap();
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let mut waited_for = Vec::new();
        let second = FileLock::acquire(&path, |pid| waited_for.push(pid))
            .await
            .unwrap();
        releaser.await.unwrap();
        assert_eq!(
            waited_for,
            [Some(std::process::id())],
            "told once, with the pid"
        );
        assert!(matches!(
            FileLock::try_acquire(&path),
            Err(LockError::Held { .. })
        ));
        drop(second);
        // Free at once: no waiting, no message.
        let mut told = false;
        let _third = FileLock::acquire(&path, |_| told = true).await.unwrap();
        assert!(!told);
    }
}
