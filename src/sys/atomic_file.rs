//! Files that appear whole or not at all: the content goes to a temporary file in the
//! target's own directory (same filesystem, so the rename is atomic), is fsynced, and is
//! renamed over the target; then the directory is fsynced so the rename survives a crash.
//! A reader (another process, the next run after a power cut or a Ctrl-C) sees the old
//! file or the new one, never half of one. A failed write leaves no temporary behind.
//!
//! Directories (cache entries, release directories) are sealed by their own owners
//! (`sys::cache`, `release::publish`); this is for single files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes every temporary name of this process unique, also across threads.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to `path` atomically (mode 0666 less the umask, as `File::create`).
pub(crate) fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    write_mode(path, data, 0o666)
}

/// [`write`] with the file created with `mode` (less the umask) from the start, so it is
/// never readable more widely than asked, not even for a moment.
pub(crate) fn write_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    place(path, |tmp| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })
}

/// Puts a file at `path` atomically that `fill` creates at the temporary path it is given
/// (a hard link, a copy, a writer of its own). `fill` should fsync what it wrote when it
/// matters; the rename and the directory are synced here.
pub(crate) fn place(path: &Path, fill: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let result = fill(&tmp).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        // The error being returned is the one that matters; the temporary must not stay.
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir_of(path))
}

/// `.<name>.tmp-<pid>-<n>` beside `path`: hidden, and never a name a reader looks for.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    })?;
    Ok(dir_of(path).join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )))
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_leaving_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("state.json");
        write(&f, b"one").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"one");
        write(&f, b"two, longer").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two, longer");
        assert_eq!(names(d.path()), ["state.json"]);
    }

    #[test]
    fn the_mode_is_the_one_asked_for() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("dev.pub");
        write_mode(&f, b"key", 0o600).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("junit.xml");
        write(&f, b"old report").unwrap();
        let err = place(&f, |tmp| {
            std::fs::write(tmp, b"half a rep")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&f).unwrap(), b"old report");
        assert_eq!(names(d.path()), ["junit.xml"]);
    }

    #[test]
    fn place_takes_what_the_caller_made_there() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("big.iso");
        std::fs::write(&src, b"iso").unwrap();
        let dest = d.path().join("out.iso");
        place(&dest, |tmp| std::fs::hard_link(&src, tmp)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"iso");
        assert_eq!(names(d.path()), ["big.iso", "out.iso"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_stray_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("no/such/dir/x");
        assert_eq!(write(&f, b"x").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(write(Path::new("/"), b"x").is_err(), "no file name");
    }

    #[test]
    fn concurrent_writers_never_leave_half_a_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("durations.json");
        let big = |c: u8| vec![c; 256 * 1024];
        std::thread::scope(|s| {
            for c in [b'a', b'b', b'c', b'd'] {
                let f = &f;
                s.spawn(move || {
                    for _ in 0..5 {
                        write(f, &big(c)).unwrap();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..50 {
                    if let Ok(got) = std::fs::read(&f) {
                        assert!(got.len() == 256 * 1024 && got.iter().all(|&b| b == got[0]));
                    }
                }
            });
        });
        assert_eq!(names(d.path()), ["durations.json"]);
    }
}
