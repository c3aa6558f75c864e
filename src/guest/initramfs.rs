//! The test initramfs, assembled by the harness itself: a reproducible cpio (newc) archive
//! with sorted entries, fixed mtimes and root ownership, holding the guest PID 1
//! (`/init`), `/dev/console`, the plan `/xsc/plan`, the guest programs under `/xsc/bin`, and
//! busybox with its applets when a scenario asks for a shell.
//!
//! Written in Rust rather than with `cpio -o` because the archive must not depend on the
//! build host's uid, umask, file order or clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One archive member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Member {
    /// A directory.
    Dir,
    /// A regular file with its mode bits (e.g. 0o755) and contents.
    File {
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
    },
    /// A symbolic link.
    Symlink(String),
    /// A character device node.
    CharDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// An archive being assembled; members are kept sorted by path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Archive {
    members: BTreeMap<String, Member>,
}

impl Archive {
    /// The skeleton every test initramfs has: directories and `/dev/console` (the kernel
    /// opens it for PID 1's stdio before any devtmpfs is mounted).
    pub(crate) fn skeleton() -> Self {
        let mut a = Archive::default();
        for d in [
            "bin", "dev", "proc", "run", "sbin", "sys", "tmp", "xsc", "xsc/bin",
        ] {
            a.add(d, Member::Dir);
        }
        a.add("dev/console", Member::CharDev { major: 5, minor: 1 });
        a
    }

    /// Adds (or replaces) a member; parent directories are added as needed.
    pub(crate) fn add(&mut self, path: &str, member: Member) {
        let path = path.trim_start_matches('/').to_string();
        let mut parent = PathBuf::from(&path);
        while parent.pop() && !parent.as_os_str().is_empty() {
            self.members
                .entry(parent.to_string_lossy().to_string())
                .or_insert(Member::Dir);
        }
        self.members.insert(path, member);
    }

    /// The newc bytes. `mtime` is the same for every member (SOURCE_DATE_EPOCH).
    pub(crate) fn to_newc(&self, mtime: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, member)) in (1u32..).zip(&self.members) {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match member {
                Member::Dir => (0o040_755, &[], (0, 0)),
                Member::File { mode, data } => (0o100_000 | (mode & 0o7777), data, (0, 0)),
                Member::Symlink(target) => (0o120_777, target.as_bytes(), (0, 0)),
                Member::CharDev { major, minor } => (0o020_600, &[], (*major, *minor)),
            };
            let nlink = if matches!(member, Member::Dir) { 2 } else { 1 };
            write_entry(&mut out, ino, mode, nlink, mtime, rdev, path, data);
        }
        write_entry(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!", &[]);
        out
    }
}

#[expect(clippy::too_many_arguments, reason = "mirrors the newc header fields")]
fn write_entry(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) {
    let namesize = u32::try_from(name.len() + 1).expect("member names are short");
    let filesize = u32::try_from(data.len()).expect("initramfs members are below 4 GiB");
    let fields = [
        ino, mode, 0, 0, nlink, mtime, filesize, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// One line of `/xsc/plan`: what PID 1 runs, with its clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlanEntry {
    /// KTAP name.
    pub name: String,
    /// Per-program clock.
    pub timeout: Duration,
    /// argv inside the guest.
    pub argv: Vec<String>,
}

/// The plan file PID 1 reads (format in guest-tests/README.md): `NAME<TAB>SECONDS<TAB>ARGV…`.
pub(crate) fn plan_text(entries: &[PlanEntry]) -> String {
    let mut s = String::from("# xsc-init plan: NAME<TAB>TIMEOUT_SECONDS<TAB>ARGV0<TAB>ARGV1...\n");
    for e in entries {
        let secs = e.timeout.as_secs().max(1);
        s.push_str(&format!("{}\t{secs}\t{}\n", e.name, e.argv.join("\t")));
    }
    s
}

#[cfg(test)]
// The test checks the archive with the real cpio (clippy.toml: only sys spawns).
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_is_byte_exact_and_sorted() {
        let mut a = Archive::default();
        a.add(
            "init",
            Member::File {
                mode: 0o755,
                data: b"#!x".to_vec(),
            },
        );
        let bytes = a.to_newc(0);
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(
            header,
            [
                "070701", "00000001", "000081ED", "00000000", "00000000", "00000001", "00000000",
                "00000003", "00000000", "00000000", "00000000", "00000000", "00000005", "00000000"
            ]
            .concat()
        );
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..119], b"#!x");
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn parents_are_implied_and_order_does_not_depend_on_insertion() {
        let mut a = Archive::skeleton();
        a.add(
            "/xsc/bin/sanity",
            Member::File {
                mode: 0o755,
                data: vec![1],
            },
        );
        a.add("/bin/sh", Member::Symlink("busybox".into()));
        let mut b = Archive::skeleton();
        b.add("/bin/sh", Member::Symlink("busybox".into()));
        b.add(
            "/xsc/bin/sanity",
            Member::File {
                mode: 0o755,
                data: vec![1],
            },
        );
        assert_eq!(a.to_newc(7), b.to_newc(7));
        let paths: Vec<&str> = a.members.keys().map(String::as_str).collect();
        assert!(paths.windows(2).all(|w| w[0] < w[1]));
        assert!(paths.contains(&"dev/console"));
    }

    /// The real `cpio` must read what we write, device node and symlink included.
    #[test]
    fn cpio_tool_lists_our_archive() {
        let mut a = Archive::skeleton();
        a.add("/bin/sh", Member::Symlink("busybox".into()));
        a.add(
            "/init",
            Member::File {
                mode: 0o755,
                data: b"hello".to_vec(),
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("i.cpio");
        std::fs::write(&file, a.to_newc(1_700_000_000)).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-itv", "-F"])
            .arg(&file)
            .output()
            .expect("cpio is installed by .ci/run");
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            listing.contains("crw-------") && listing.contains("dev/console"),
            "{listing}"
        );
        assert!(listing.contains("bin/sh -> busybox"), "{listing}");
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("init")),
            "{listing}"
        );
    }

    #[test]
    fn plan_lines_are_tab_separated() {
        let p = plan_text(&[PlanEntry {
            name: "sanity".into(),
            timeout: Duration::from_secs(30),
            argv: vec!["/xsc/bin/sanity".into(), "-v".into()],
        }]);
        assert!(p.ends_with("sanity\t30\t/xsc/bin/sanity\t-v\n"), "{p}");
    }
}
