//! The Debian live ISO end to end: `build debian` through the CLI (cached by content, so a
//! warm CI run only computes the key), then the three release-gate scenarios (BIOS CD,
//! UEFI CD, UEFI virtio disk) running the ring suite in the live system, and the default
//! boot entry reaching the serial login prompt. Real debootstrap, real QEMU under TCG.
//!
//! Needs root and the tools of `.ci/packages` (CI has both); as a user the build must
//! refuse with exit 4, which is checked instead.

use std::time::Duration;

use crate::support::{cases, junit, property, run, text, xsc};

/// A cold build (debootstrap from the cached .debs, upgrade, squashfs, xorriso) plus, on
/// the first CI run of a machine, the download of ~100 MB of packages.
const BUILD: Duration = Duration::from_secs(1800);
/// Three TCG boots of the live system, one after the other (the machine has 2 cores).
const BOOTS: Duration = Duration::from_secs(1500);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[expect(unsafe_code, reason = "geteuid")]
    let uid = unsafe { libc::geteuid() };
    uid == 0
}

#[test]
fn the_debian_iso_builds_boots_bios_and_uefi_and_reaches_a_login_prompt() {
    let mut build = xsc();
    build.args(["build", "debian"]);
    let out = run(build, BUILD);
    if !is_root() {
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
        assert!(text(&out).contains("not running as root"), "{}", text(&out));
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let iso = crate::support::repo().join("iso/debian/xsc-debian-amd64.iso");
    assert!(iso.is_file(), "{stdout}");
    let sum = std::fs::read_to_string(iso.with_extension("iso.sha256")).unwrap();
    assert!(sum.ends_with("  xsc-debian-amd64.iso\n"), "{sum}");
    let sha = sum.split_whitespace().next().unwrap().to_string();
    assert!(stdout.contains(&sha), "{stdout}");
    let packages = std::fs::read_to_string(
        crate::support::repo().join("iso/debian/xsc-debian-amd64.packages.txt"),
    )
    .unwrap();
    // The XSC parts come from the packages users install (docs/packages.md).
    for pkg in ["sysvinit-core", "linux-image-xsc", "xsc-glibc", "xsc-tests"] {
        assert!(
            packages
                .lines()
                .any(|l| l.starts_with(&format!("ii  {pkg} "))),
            "{pkg}: {packages}"
        );
    }

    // A second build is a cache hit: nothing is built.
    let mut again = xsc();
    again.args(["build", "debian"]);
    let out = run(again, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cache hit"),
        "{}",
        text(&out)
    );

    // The gates and the login check, one VM at a time. --no-build: the ISO is there now.
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    let mut t = xsc();
    t.args([
        "test",
        "debian-bios",
        "debian-uefi",
        "debian-uefi-disk",
        "debian-login",
        "--accel",
        "tcg",
        "--jobs",
        "1",
        "--no-build",
        "--junit",
    ])
    .arg(&xml);
    let out = run(t, BOOTS);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = junit(&xml);
    let all = cases(&report);
    for suite in ["debian-bios", "debian-uefi", "debian-uefi-disk"] {
        let ring: Vec<_> = all
            .iter()
            .filter(|(s, c, _)| s == suite && c.starts_with("xsc_ring_test."))
            .collect();
        assert!(ring.len() >= 20, "{suite}: {all:?}");
        assert!(
            ring.iter().all(|(_, _, k)| k == "pass"),
            "{suite}: {ring:?}"
        );
        let glibc: Vec<_> = all
            .iter()
            .filter(|(s, c, _)| s == suite && c.starts_with("xsc_glibc_test."))
            .collect();
        assert!(glibc.len() >= 60, "{suite}: {all:?}");
        assert!(
            glibc.iter().all(|(_, _, k)| k == "pass"),
            "{suite}: {glibc:?}"
        );
        assert!(
            all.iter()
                .any(|(s, c, k)| s == suite && c == "xsc_run_system_binary" && k == "pass"),
            "{suite}: a Debian binary through xsc-run: {all:?}"
        );
        assert_eq!(
            property(&report, suite, "iso.sha256").as_deref(),
            Some(sha.as_str())
        );
    }
    assert_eq!(
        property(&report, "debian-uefi-disk", "iso.media").as_deref(),
        Some("disk")
    );
    assert!(
        all.iter()
            .any(|(s, c, k)| s == "debian-login" && c == "boot" && k == "pass"),
        "{all:?}"
    );
}

#[test]
fn without_a_cached_iso_no_build_exits_3() {
    // A scratch cache: no ISO can be in it, so --no-build must refuse with exit 3 (the key
    // computation needs the mirror; offline that is a harness problem, exit 4).
    let cache = tempfile::tempdir().unwrap();
    let mut t = xsc();
    t.env("XSC_CACHE_DIR", cache.path()).args([
        "test",
        "debian-bios",
        "--accel",
        "tcg",
        "--no-build",
    ]);
    let out = run(t, Duration::from_secs(300));
    assert!(matches!(out.status.code(), Some(3 | 4)), "{}", text(&out));
    if out.status.code() == Some(3) {
        assert!(text(&out).contains("xsc-release build"), "{}", text(&out));
    }
}
