//! `patchcheck` on a fixture that builds in a second: the fake kernel tree of the stage's
//! unit tests (src/stages/testdata/fakekernel: the make targets and files the kernel stage
//! uses) as the pinned source, a two-patch series whose second patch applies only with
//! fuzz, and a cache of its own (so the machine's kept kernel work tree is not touched).
//! Real quilt, real kernel stage, no boot.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{repo, run, text};

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn patchcheck_builds_every_prefix_and_fails_the_fuzzy_patch() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    let testdata = repo().join("src/stages/testdata");
    let p = root.join("patches/kernel");
    std::fs::create_dir_all(p.join("configs")).unwrap();
    std::fs::create_dir_all(root.join("patches/glibc")).unwrap();
    for f in ["qemu.config", "xsc.config"] {
        std::fs::copy(
            repo().join("patches/kernel/configs").join(f),
            p.join("configs").join(f),
        )
        .unwrap();
    }
    for f in [
        "0001-edit-a.patch",
        "0002-edit-b-fuzzy.patch",
        "0003-edit-b.patch",
    ] {
        std::fs::copy(testdata.join("quilt/patches").join(f), p.join(f)).unwrap();
    }
    std::fs::write(
        p.join("series"),
        "0001-edit-a.patch\n0003-edit-b.patch\n0002-edit-b-fuzzy.patch\n",
    )
    .unwrap();
    let tar = dir.path().join("linux-source-6.1.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tar)
        .arg("-C")
        .arg(testdata.join("fakekernel"))
        .arg("linux-source-6.1")
        .status()
        .unwrap();
    assert!(st.success());
    let project = std::fs::read_to_string(repo().join("xsc.toml")).unwrap();
    let pinned = project
        .replace(
            "tarball = \"/usr/src/linux-source-6.1.tar.xz\"",
            &format!("tarball = \"{}\"", tar.display()),
        )
        .replace(
            "sha256 = \"cacdc3830989309d042083be3307969e55600ed7f908cf00df544c5ff50759a1\"",
            &format!("sha256 = \"{}\"", sha256(&tar)),
        );
    assert_ne!(
        pinned, project,
        "xsc.toml's linux pin changed: update this fixture"
    );
    std::fs::write(root.join("xsc.toml"), pinned).unwrap();
    let junit = dir.path().join("patchcheck.xml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(root.join("xsc.toml"))
        .args(["patchcheck", "--series", "kernel", "--junit"])
        .arg(&junit)
        .env("XSC_CACHE_DIR", dir.path().join("cache"))
        .stdin(std::process::Stdio::null());
    let out = run(cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        stdout.contains("patch 1/3: 0001-edit-a.patch: applies, builds"),
        "{stdout}"
    );
    assert!(
        stdout.contains("patch 2/3: 0003-edit-b.patch: applies, builds"),
        "{stdout}"
    );
    let third = stdout
        .lines()
        .find(|l| l.starts_with("patch 3/3: 0002-edit-b-fuzzy.patch: does not build: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(third.contains("0002-edit-b-fuzzy.patch"), "{third}");
    assert!(
        stdout.contains("patchcheck kernel: 3 of 3 prefixes checked, 1 failed"),
        "{stdout}"
    );
    let report = crate::support::junit(&junit);
    let cases = crate::support::cases(&report);
    let kinds: Vec<&str> = cases.iter().map(|(_, _, k)| k.as_str()).collect();
    assert_eq!(kinds, ["pass", "pass", "failure:build"], "{cases:?}");
    // The user's series is untouched; the prefixes were separate roots.
    assert_eq!(
        std::fs::read_to_string(p.join("series"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}
