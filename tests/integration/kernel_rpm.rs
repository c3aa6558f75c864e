//! `build kernel --rpm`: the kernel of a profile packaged as EL9 RPMs through the RPM stage.
//! CI runs it on the `qemu` profile (cached kernel, seconds); the `el` profile's cold build
//! is measured in docs/el-iso.md and stays outside CI.

use std::time::Duration;

use crate::support::{run, text, xsc};

#[test]
fn build_kernel_rpm_packages_the_profiles_kernel_through_the_cache() {
    let mut cmd = xsc();
    cmd.args(["build", "kernel", "--profile", "qemu", "--rpm"]);
    // Cold CI: the kernel and glibc stages build here first (the other tests need them too).
    let out = run(cmd, Duration::from_secs(60 * 60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rpm: "), "{}", text(&out));
    assert!(stdout.contains("(no modules)"), "{}", text(&out));
    let repo_line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("repo:"))
        .expect("the repository is named");
    let repo = std::path::PathBuf::from(repo_line.trim());
    assert!(repo.ends_with("packages/rpm"), "{repo:?}");
    assert!(repo.join("repodata/repomd.xml").is_file());
    let kernel = std::fs::read_dir(&repo)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kernel-"))
        })
        .expect("the kernel RPM");
    let q = std::process::Command::new("rpm")
        .args(["-qlp"])
        .arg(&kernel)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&q.stdout);
    assert!(
        list.lines()
            .any(|l| l.starts_with("/lib/modules/") && l.ends_with("/vmlinuz")),
        "{list}"
    );
    let k = std::process::Command::new("rpm")
        .arg("-K")
        .arg(&kernel)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&k.stdout).contains("digests OK"),
        "{k:?}"
    );
}
