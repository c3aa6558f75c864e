//! `bisect --commits` on synthetic histories: a temporary clone of the project whose later
//! commits change the sanity suite that the quick stock-kernel `smoke` scenario boots. Real
//! git worktrees, the real stage cache, real QEMU under TCG.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{repo, run, text};

const LIMIT: Duration = Duration::from_secs(20 * 60);

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=fixture",
            "-c",
            "user.email=fixture@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new repository holding the project's committed files as its first commit.
fn clone_of_project(dir: &Path) -> PathBuf {
    let r = dir.join("project");
    std::fs::create_dir(&r).unwrap();
    let tar = dir.join("project.tar");
    git(&repo(), &["archive", "-o", tar.to_str().unwrap(), "HEAD"]);
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .current_dir(&r)
        .status()
        .unwrap();
    assert!(st.success());
    git(&r, &["init", "-q", "-b", "main"]);
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-q", "-m", "fixture: the project"]);
    r
}

/// Edits a file and commits it with `subject`; returns the hash.
fn commit(r: &Path, file: &str, edit: impl FnOnce(String) -> String, subject: &str) -> String {
    let path = r.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, edit(text)).unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-q", "-m", subject]);
    git(r, &["rev-parse", "HEAD"])
}

fn note(subject: &'static str) -> impl FnOnce(String) -> String {
    move |t| format!("{t}\n{subject}\n")
}

/// The sanity case `getpid_matches_stat` now fails.
fn break_getpid(t: String) -> String {
    let broken = t.replace("if (pid != getpid())", "if (pid == getpid())");
    assert_ne!(
        broken, t,
        "sanity.c changed: the fixture edit no longer applies"
    );
    broken
}

fn bisect(r: &Path, range: &str, junit: &Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(r.join("xsc.toml"))
        .args([
            "bisect",
            "smoke",
            "--accel",
            "tcg",
            "--commits",
            range,
            "--junit",
        ])
        .arg(junit)
        .stdin(std::process::Stdio::null());
    run(cmd, LIMIT)
}

fn worktrees(r: &Path) -> usize {
    git(r, &["worktree", "list"]).lines().count()
}

#[test]
fn bisect_commits_names_the_commit_that_broke_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let r = clone_of_project(dir.path());
    let good = git(&r, &["rev-parse", "HEAD"]);
    commit(&r, "README.md", note("docs one"), "docs: one");
    let culprit = commit(
        &r,
        "guest-tests/sanity.c",
        break_getpid,
        "sanity: compare pid the other way",
    );
    commit(&r, "README.md", note("docs two"), "docs: two");
    commit(&r, "README.md", note("docs three"), "docs: three");
    let junit = dir.path().join("bisect.xml");
    let out = bisect(&r, &format!("{good}..HEAD"), &junit);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // The session, for docs/bisect.md (`--nocapture`).
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains(&format!(
            "first bad commit: {culprit} sanity: compare pid the other way"
        )),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("  failing: ") && l.contains("getpid_matches_stat (assertion)")),
        "{stdout}"
    );
    assert!(stdout.contains("  reproduce: git -C "), "{stdout}");
    let run_dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  run dir: "))
        .expect("a run dir line");
    assert!(Path::new(run_dir).join("serial.log").is_file());
    // The endpoints first: the good commit, then HEAD.
    let steps: Vec<&str> = stdout.lines().filter(|l| l.starts_with("step ")).collect();
    assert!(
        steps[0].contains(&good[..12]) && steps[0].ends_with(" good"),
        "{stdout}"
    );
    assert!(
        steps[1].contains("docs: three") && steps[1].contains(" fails: "),
        "{stdout}"
    );
    assert!(steps.len() <= 4, "{stdout}");
    assert_eq!(worktrees(&r), 1, "worktrees left behind");
    let report = crate::support::junit(&junit);
    assert!(report.test_suites.len() >= 3);
}

#[test]
fn bisect_commits_reports_a_range_when_an_untestable_commit_borders_the_break() {
    let dir = tempfile::tempdir().unwrap();
    let r = clone_of_project(dir.path());
    let good = git(&r, &["rev-parse", "HEAD"]);
    let unbuildable = commit(
        &r,
        "guest-tests/sanity.c",
        |t| format!("{t}\n#error bisect fixture: this commit does not build\n"),
        "sanity: half a change (does not compile)",
    );
    let culprit = commit(
        &r,
        "guest-tests/sanity.c",
        |t| break_getpid(t.replace("\n#error bisect fixture: this commit does not build\n", "")),
        "sanity: the other half (compiles, breaks a case)",
    );
    commit(&r, "README.md", note("docs"), "docs: after");
    let junit = dir.path().join("bisect.xml");
    let out = bisect(&r, &format!("{good}..HEAD"), &junit);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // The session, for docs/bisect.md (`--nocapture`).
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("the first bad commit is one of these 2"),
        "{stdout}"
    );
    let skip_line = format!(
        "  {unbuildable} sanity: half a change (does not compile)  (skip: cannot test (build failed)"
    );
    assert!(stdout.contains(&skip_line), "{stdout}");
    assert!(
        stdout.contains(&format!("  {culprit} sanity: the other half")),
        "{stdout}"
    );
    assert!(!stdout.contains("first bad commit:"), "{stdout}");
    assert_eq!(worktrees(&r), 1, "worktrees left behind");
}

#[test]
fn bisect_commits_stops_when_the_good_endpoint_fails() {
    let dir = tempfile::tempdir().unwrap();
    let r = clone_of_project(dir.path());
    commit(&r, "guest-tests/sanity.c", break_getpid, "sanity: broken");
    let bad_good = git(&r, &["rev-parse", "HEAD"]);
    commit(&r, "README.md", note("docs"), "docs: after");
    let out = bisect(&r, &format!("{bad_good}..HEAD"), &dir.path().join("j.xml"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the good endpoint") && stderr.contains("does not pass (fails)"),
        "{}",
        text(&out)
    );
    assert_eq!(worktrees(&r), 1);
}

/// A kernel tree that builds in a second and boots for real: its `bzImage` target copies
/// the machine's cached stock kernel and writes the tree's `marker` byte into the setup
/// header's obsolete `ram_size` field (0x1F8), which boots unchanged and which the guest
/// reads back from `/sys/kernel/boot_params/data`. So a patch to `marker` changes what the
/// guest sees, as a patch to the real series changes what the ring suite sees.
const FIXTURE_MAKEFILE: &str = "\
tinyconfig defconfig:
\techo \"CONFIG_BASE_$@=y\" > .config

olddefconfig:
\ttrue

bzImage: marker a.c .config
\tmkdir -p arch/x86/boot
\tcp STOCK arch/x86/boot/bzImage
\tchmod u+w arch/x86/boot/bzImage
\tdd if=marker of=arch/x86/boot/bzImage bs=1 seek=504 count=1 conv=notrunc status=none
\techo \"$$KBUILD_BUILD_TIMESTAMP\" > System.map

kernelrelease:
\t@echo 6.1.0-fixture

.PHONY: tinyconfig defconfig olddefconfig kernelrelease
";

/// The guest side: KTAP from the marker byte.
const FIXTURE_PROGRAM: &str = r#"#include <stdio.h>
int main(void)
{
	unsigned char b[4096];
	FILE *f = fopen("/sys/kernel/boot_params/data", "rb");
	size_t n = f ? fread(b, 1, sizeof(b), f) : 0;

	printf("KTAP version 1\n1..3\n");
	printf("%sok 1 boot_params_readable\n", n > 0x1f8 ? "" : "not ");
	if (n > 0x1f8 && b[0x1f8] == 'A')
		printf("ok 2 marker\n");
	else
		printf("not ok 2 marker\n# marker byte 0x%02x, expected 'A'\n", n > 0x1f8 ? b[0x1f8] : 0);
	/* as the ring suite skips the cases of ops a prefix does not have yet */
	printf("ok 3 later_op # SKIP not in this prefix\n");
	return 0;
}
"#;

/// A gate like `xsc-ring`'s (no skips): prefixes are judged without its skip limit.
const FIXTURE_SCENARIO: &str = r#"description = "bisect fixture: the marker patched into the kernel"
tags = ["release-gate"]
[gate]
min-cases = 3
max-skips = 0
[image]
kind = "xsc-kernel"
profile = "qemu"
[timeouts]
boot = "90s"
silence = "60s"
[[program]]
name = "marker"
source = "bisect_marker.c"
timeout = "30s"
"#;

/// A one-hunk patch of a one-line file.
fn one_line_patch(subject: &str, file: &str, from: &str, to: &str) -> String {
    format!("Subject: {subject}\n\n--- a/{file}\n+++ b/{file}\n@@ -1 +1 @@\n-{from}\n+{to}\n")
}

/// The machine's cached stock kernel (fetched by `test smoke` when missing).
fn stock_kernel() -> PathBuf {
    let find = || {
        let cache = crate::support::xsc()
            .args(["cache", "path"])
            .output()
            .unwrap();
        let root = PathBuf::from(String::from_utf8_lossy(&cache.stdout).trim());
        std::fs::read_dir(root.join("stages/stock-kernel"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("vmlinuz"))
            .find(|p| p.is_file())
    };
    if let Some(k) = find() {
        return k;
    }
    let mut smoke = crate::support::xsc();
    smoke.args(["test", "smoke", "--accel", "tcg"]);
    run(smoke, LIMIT);
    find().expect("the stock kernel is in the cache after test smoke")
}

#[test]
fn bisect_series_names_the_patch_that_broke_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let r = clone_of_project(dir.path());
    // The fake kernel source, pinned in the clone's xsc.toml.
    let src = dir.path().join("src/linux-source-6.1");
    let fake = repo().join("src/stages/testdata/fakekernel/linux-source-6.1");
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let st = Command::new("cp")
        .arg("-r")
        .arg(&fake)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let makefile = FIXTURE_MAKEFILE.replace("STOCK", &stock_kernel().display().to_string());
    std::fs::write(src.join("Makefile"), makefile).unwrap();
    std::fs::write(src.join("marker"), "A\n").unwrap();
    let tar = dir.path().join("linux-source-6.1.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path().join("src"))
        .arg("linux-source-6.1")
        .status()
        .unwrap();
    assert!(st.success());
    let sum = Command::new("sha256sum").arg(&tar).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let toml = std::fs::read_to_string(r.join("xsc.toml")).unwrap();
    let pinned = toml
        .replace(
            "/usr/src/linux-source-6.1.tar.xz",
            &tar.display().to_string(),
        )
        .replace(
            "cacdc3830989309d042083be3307969e55600ed7f908cf00df544c5ff50759a1",
            &sum,
        );
    assert_ne!(
        pinned, toml,
        "xsc.toml's linux pin changed: update this fixture"
    );
    std::fs::write(r.join("xsc.toml"), pinned).unwrap();
    // The series: two harmless patches, the one that breaks the marker, one more.
    let p = r.join("patches/kernel");
    let patches = [
        (
            "0001-fixture-one.patch",
            one_line_patch("one", "a.c", "line1", "LINE1"),
        ),
        (
            "0002-fixture-two.patch",
            one_line_patch("two", "b.c", "line1", "B1"),
        ),
        (
            "0003-fixture-marker.patch",
            one_line_patch("marker", "marker", "A", "B"),
        ),
        (
            "0004-fixture-four.patch",
            one_line_patch("four", "b.c", "B1", "BB1"),
        ),
    ];
    let mut series = String::new();
    for (name, text) in &patches {
        std::fs::write(p.join(name), text).unwrap();
        series.push_str(&format!("{name}\n"));
    }
    std::fs::write(p.join("series"), series).unwrap();
    std::fs::write(r.join("guest-tests/bisect_marker.c"), FIXTURE_PROGRAM).unwrap();
    std::fs::write(r.join("scenarios/bisect-marker.toml"), FIXTURE_SCENARIO).unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(r.join("xsc.toml"))
        .args([
            "bisect",
            "bisect-marker",
            "--accel",
            "tcg",
            "--series",
            "kernel",
        ])
        // Its own cache: the fixture must not replace the machine's kept kernel tree.
        .env("XSC_CACHE_DIR", dir.path().join("cache"))
        .stdin(std::process::Stdio::null());
    let out = run(cmd, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // The session, for docs/bisect.md (`--nocapture`).
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("first bad patch: 0003-fixture-marker.patch prefix 3/4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  failing: marker.marker (assertion)")
            || stdout
                .lines()
                .any(|l| l.starts_with("  failing: ") && l.contains("marker (assertion)")),
        "{stdout}"
    );
    let steps: Vec<&str> = stdout.lines().filter(|l| l.starts_with("step ")).collect();
    assert!(
        steps[0].contains("(empty series)") && steps[0].ends_with(" good"),
        "{stdout}"
    );
    let repro = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  reproduce: xsc-release --config "))
        .expect("a reproduce line");
    let prefix_toml = PathBuf::from(repro.split(' ').next().unwrap());
    let prefix_series = prefix_toml.parent().unwrap().join("patches/kernel/series");
    assert_eq!(
        std::fs::read_to_string(prefix_series)
            .unwrap()
            .lines()
            .count(),
        3
    );
}

/// Ctrl-C while a step's guest runs: exit 130, no QEMU left, the step's worktree removed.
#[test]
fn ctrl_c_during_a_step_stops_qemu_and_removes_the_worktrees() {
    let dir = tempfile::tempdir().unwrap();
    let r = clone_of_project(dir.path());
    let good = git(&r, &["rev-parse", "HEAD"]);
    commit(&r, "README.md", note("docs"), "docs: after");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(r.join("xsc.toml"))
        .args(["bisect", "smoke", "--accel", "tcg", "--commits"])
        .arg(format!("{good}..HEAD"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let runs = r.join("out/runs");
    let start = std::time::Instant::now();
    let serial = loop {
        let found = std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("step-0/smoke/serial.log"))
            .find(|p| p.is_file());
        if let Some(p) = found {
            break p;
        }
        assert!(start.elapsed() < LIMIT, "no step started");
        std::thread::sleep(Duration::from_millis(200));
    };
    let state = serial.parent().unwrap().to_path_buf();
    assert!(crate::support::wait_for_text(
        &serial,
        "Linux version",
        Duration::from_secs(120)
    ));
    assert!(!crate::support::qemu_pids(&state.display().to_string()).is_empty());
    let worktree_dirs = git(&r, &["worktree", "list"]);
    assert_eq!(worktree_dirs.lines().count(), 2, "{worktree_dirs}");
    let step_dir = worktree_dirs
        .lines()
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = crate::support::wait(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(crate::support::qemu_pids(&state.display().to_string()).is_empty());
    assert_eq!(worktrees(&r), 1, "worktrees left behind");
    assert!(!Path::new(&step_dir).exists(), "{step_dir} left behind");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bisect aborted"), "{}", text(&out));
}

/// The KTAP parser judges every case numbered 1 failed: a harness regression. The guest
/// side is unchanged, so the current harness would call every commit good.
fn break_ktap(t: String) -> String {
    let broken = t.replace(
        "ok: &c[1] == \"ok\",",
        "ok: &c[1] == \"ok\" && number != 1,",
    );
    assert_ne!(
        broken, t,
        "ktap.rs changed: the fixture edit no longer applies"
    );
    broken
}

/// `--each-harness` on a history whose middle commit breaks the harness, not the product:
/// GOOD and HEAD boot identical inputs (only src/ and README.md differ), so HEAD failing
/// and GOOD passing can only come from each being judged by its own harness, built by
/// cargo from that commit.
#[test]
fn bisect_each_harness_judges_every_commit_with_its_own_harness() {
    let dir = tempfile::tempdir().unwrap();
    let r = clone_of_project(dir.path());
    let good = git(&r, &["rev-parse", "HEAD"]);
    let culprit = commit(
        &r,
        "src/observe/ktap.rs",
        break_ktap,
        "ktap: judge the result lines",
    );
    let after = commit(&r, "README.md", note("docs"), "docs: after");
    let junit = dir.path().join("bisect.xml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(r.join("xsc.toml"))
        .args(["bisect", "smoke", "--accel", "tcg", "--each-harness"])
        .arg("--commits")
        .arg(format!("{good}..HEAD"))
        .arg("--junit")
        .arg(&junit)
        .stdin(std::process::Stdio::null());
    let out = run(cmd, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // The session, for docs/bisect.md (`--nocapture`).
    eprintln!("{stdout}");
    let cache = cache_root();
    forget_harnesses(&cache, &[&good, &culprit, &after]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains(&format!(
            "first bad commit: {culprit} ktap: judge the result lines"
        )),
        "{stdout}"
    );
    let steps: Vec<&str> = stdout.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(steps.len(), 3, "{stdout}");
    assert!(
        steps[0].contains(&good[..12])
            && steps[0].contains(" harness ")
            && steps[0].ends_with(" good"),
        "{stdout}"
    );
    assert!(
        steps[1].contains(&after[..12]) && steps[1].contains(" fails: "),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("  failing: ")),
        "{stdout}"
    );
    let repro = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  reproduce: "))
        .expect("a reproduce line");
    assert!(
        repro.contains("/stages/harness/") && repro.ends_with("test smoke"),
        "{repro}"
    );
    let run_dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  run dir: "))
        .expect("a run dir line");
    assert!(
        run_dir.starts_with(&r.join("out/runs").display().to_string()),
        "{run_dir}"
    );
    assert!(Path::new(run_dir).join("serial.log").is_file());
    assert_eq!(worktrees(&r), 1, "worktrees left behind");
    let report = crate::support::junit(&junit);
    assert!(
        report
            .test_suites
            .iter()
            .any(|s| s.name.as_str() == format!("smoke@{culprit}")),
        "no suite of the culprit's harness"
    );
}

fn cache_root() -> PathBuf {
    let out = crate::support::xsc()
        .args(["cache", "path"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Removes the harness binaries this test's commits left in the machine's cache (each
/// run's fixture commits are new; the shared target directory stays for the next run).
fn forget_harnesses(cache: &Path, commits: &[&str]) {
    for e in std::fs::read_dir(cache.join("stages/harness"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let info = std::fs::read_to_string(e.path().join("entry.json")).unwrap_or_default();
        if commits.iter().any(|c| info.contains(c)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
