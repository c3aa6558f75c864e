//! The pseudo filesystems a chroot needs (/proc, /sys, /dev), mounted with `mount(2)` and
//! owned by a guard that unmounts them on every path out: success, error, a dropped future
//! (Ctrl-C), and — through a process-wide registry that `main` drains before exiting — a
//! second Ctrl-C, where `std::process::exit` runs no destructors.
//!
//! Not here: loop devices (the stage uses none: mtools writes the FAT image, mksquashfs and
//! xorriso write files).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Mount points alive right now, across all guards.
static LIVE_MOUNTS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Mounts /proc, /sys and a recursive bind of /dev into a root; unmounts them on drop.
#[derive(Debug)]
pub(crate) struct ChrootMounts {
    mounted: Vec<PathBuf>,
}

/// What the guard mounts, in order: (target below the root, fstype or `None` for a bind
/// of the host's same path).
pub(crate) const CHROOT_MOUNTS: &[(&str, Option<&str>)] = &[
    ("proc", Some("proc")),
    ("sys", Some("sysfs")),
    ("dev", None),
];

impl ChrootMounts {
    /// Mounts [`CHROOT_MOUNTS`] under `root`. On a failure the ones already mounted are
    /// unmounted again before the error is returned.
    pub(crate) fn mount(root: &Path) -> std::io::Result<Self> {
        let mut guard = ChrootMounts {
            mounted: Vec::new(),
        };
        for (rel, fstype) in CHROOT_MOUNTS {
            let target = root.join(rel);
            std::fs::create_dir_all(&target)?;
            match fstype {
                Some(fs) => sys_mount(fs, &target, Some(fs), 0)?,
                None => sys_mount(
                    &format!("/{rel}"),
                    &target,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                )?,
            }
            LIVE_MOUNTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(target.clone());
            guard.mounted.push(target);
        }
        Ok(guard)
    }

    /// Unmounts now (also done by Drop).
    pub(crate) fn release(&mut self) {
        while let Some(target) = self.mounted.pop() {
            detach(&target);
        }
    }
}

impl Drop for ChrootMounts {
    fn drop(&mut self) {
        self.release();
    }
}

/// Unmounts every mount any guard still holds; `main` calls this before exiting.
pub fn unmount_all() {
    let targets: Vec<PathBuf> = LIVE_MOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .rev()
        .cloned()
        .collect();
    for t in targets {
        detach(&t);
    }
}

/// True when `path` is a mount point according to /proc/self/mountinfo.
#[cfg(test)]
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// Mount points at or below `root` (to refuse deleting a tree that still has mounts).
pub(crate) fn mounts_below(root: &Path) -> Vec<String> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let prefix = root.to_string_lossy().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect()
}

fn cstr(s: &[u8]) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| std::io::Error::other("NUL in a mount path"))
}

fn sys_mount(
    source: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> std::io::Result<()> {
    let src = cstr(source.as_bytes())?;
    let tgt = cstr(target.as_os_str().as_bytes())?;
    let fst = fstype.map(|f| cstr(f.as_bytes())).transpose()?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call; a
    // null fstype is allowed for bind mounts; data is null.
    #[expect(unsafe_code, reason = "mount(2) has no safe std wrapper")]
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fst.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Lazy, recursive unmount: the bind of /dev carries /dev/pts and /dev/shm with it, and a
/// process still inside the chroot cannot keep the mount on the host.
fn detach(target: &Path) {
    if let Ok(t) = cstr(target.as_os_str().as_bytes()) {
        // SAFETY: a valid NUL-terminated path.
        #[expect(unsafe_code, reason = "umount2(2) has no safe std wrapper")]
        let _ = unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
    LIVE_MOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(target);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_macros, reason = "a test's skip notice")]
    fn mounts_are_released_on_drop_and_on_failure() {
        // SAFETY: geteuid has no preconditions.
        #[expect(unsafe_code, reason = "geteuid")]
        let root_user = unsafe { libc::geteuid() } == 0;
        if !root_user {
            eprintln!("skipped: mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        {
            let _g = ChrootMounts::mount(dir.path()).unwrap();
            assert!(is_mount_point(&dir.path().join("proc")));
            assert!(is_mount_point(&dir.path().join("dev")));
            assert!(mounts_below(dir.path()).len() >= 3);
        }
        assert!(
            mounts_below(dir.path()).is_empty(),
            "the guard left mounts behind"
        );
        // A failure half way (sys is a file, so mkdir fails) unmounts what was mounted.
        let dir2 = tempfile::tempdir().unwrap();
        std::fs::write(dir2.path().join("sys"), "not a dir").unwrap();
        assert!(ChrootMounts::mount(dir2.path()).is_err());
        assert!(mounts_below(dir2.path()).is_empty());
        assert!(LIVE_MOUNTS.lock().unwrap().is_empty());
    }
}
