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
