//! README's exit-code table, row by row, caused for real through the binary. Every test
//! here is quick: nothing boots and nothing builds (a temp XSC_CACHE_DIR where the cache
//! matters). 130 and 143 need a running guest to interrupt: vm.rs
//! `sigint_stops_qemu_writes_partial_junit_and_exits_130` and
//! `sigterm_stops_qemu_and_exits_143`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use xsc_release::ExitCode;

use crate::support::{cases, junit, repo, run, scenario, text, xsc};

const QUICK: Duration = Duration::from_secs(60);

fn xsc_run(args: &[&str]) -> Output {
    let mut cmd = xsc();
    cmd.args(args);
    run(cmd, QUICK)
}

fn assert_code(out: &Output, code: ExitCode) {
    assert_eq!(
        out.status.code(),
        Some(i32::from(code.code())),
        "{}",
        text(out)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn log(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const PASSING: &str = "KTAP version 1\n1..2\nok 1 a\nok 2 b\n";
const FAILING: &str = "KTAP version 1\n1..2\nok 1 a\nnot ok 2 b\n";

#[test]
fn exit_0_all_passed() {
    assert_code(&xsc_run(&["scenarios", "check"]), ExitCode::Success);
    let dir = tempfile::tempdir().unwrap();
    let good = log(dir.path(), "good.log", PASSING);
    assert_code(&xsc_run(&["report", "ktap", &good]), ExitCode::Success);
}

#[test]
fn exit_1_the_product_failed() {
    let dir = tempfile::tempdir().unwrap();
    let bad = log(dir.path(), "bad.log", FAILING);
    assert_code(&xsc_run(&["report", "ktap", &bad]), ExitCode::ProductFailed);
}

/// "No case ran" is never green: a KTAP plan of nothing fails `report ktap` like it fails a
/// live run (the live rule is the same function, observe/judge.rs).
#[test]
fn exit_1_when_no_case_ran() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    let empty = log(dir.path(), "empty.log", "KTAP version 1\n1..0\n");
    let out = xsc_run(&[
        "report",
        "ktap",
        &empty,
        "--junit",
        &xml.display().to_string(),
    ]);
    assert_code(&out, ExitCode::ProductFailed);
    assert!(stdout(&out).contains("FAIL  empty"), "{}", text(&out));
    let all = cases(&junit(&xml));
    assert!(
        all.contains(&("empty".into(), "ktap".into(), "failure:assertion".into())),
        "{all:#?}"
    );
}

#[test]
fn exit_2_bad_flag() {
    assert_code(&xsc_run(&["test", "--accel", "hvf"]), ExitCode::BadInput);
    assert_code(&xsc_run(&["frobnicate"]), ExitCode::BadInput);
}

#[test]
fn exit_2_bad_config_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xsc.toml");
    let good = std::fs::read_to_string(repo().join("xsc.toml")).unwrap();
    std::fs::write(&cfg, format!("{good}\n[tset]\njobs = 1\n")).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config").arg(&cfg).args(["scenarios", "list"]);
    let out = run(cmd, QUICK);
    assert_code(&out, ExitCode::BadInput);
    assert!(stderr(&out).contains("tset: unknown key"), "{}", text(&out));
}

/// A missing input file is bad input, said once, in words, before any run starts.
#[test]
fn exit_2_missing_input_files_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = log(dir.path(), "bzImage", "not really a kernel");
    for (args, said) in [
        (
            vec!["test", "--kernel", "/nonexistent"],
            "error: kernel /nonexistent: no such file",
        ),
        (
            vec!["test", "--kernel", &kernel, "--initrd", "/nonexistent.cpio"],
            "error: initrd /nonexistent.cpio: no such file",
        ),
        (
            vec!["test", "--iso", "/nonexistent.iso"],
            "error: iso /nonexistent.iso: no such file",
        ),
    ] {
        let mut cmd = xsc();
        cmd.env("XSC_CACHE_DIR", dir.path().join("cache"))
            .args(&args);
        let out = run(cmd, QUICK);
        assert_code(&out, ExitCode::BadInput);
        assert_eq!(stderr(&out).trim(), said, "{args:?}: {}", text(&out));
        assert!(
            stdout(&out).is_empty(),
            "no run header, no totals: {}",
            text(&out)
        );
    }
}

#[test]
fn exit_2_missing_log() {
    let out = xsc_run(&["report", "ktap", "/nonexistent.log"]);
    assert_code(&out, ExitCode::BadInput);
    assert_eq!(
        stderr(&out).trim(),
        "error: log /nonexistent.log: no such file",
        "{}",
        text(&out)
    );
}

/// `scenarios check` refuses an image path that is not there, with its place.
#[test]
fn exit_2_scenario_image_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.toml");
    std::fs::write(
        &file,
        "[image]\nkind = \"kernel\"\npath = \"gone.bzImage\"\n\n[[program]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n",
    )
    .unwrap();
    let out = xsc_run(&["scenarios", "check", &file.display().to_string()]);
    assert_code(&out, ExitCode::BadInput);
    assert!(
        stderr(&out).contains("k.toml:3: image.path: no such file"),
        "{}",
        text(&out)
    );
}

/// `--no-build` with an image that is not in the cache is a build failure, not a boot.
#[test]
fn exit_3_no_build_with_a_missing_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = xsc();
    cmd.env("XSC_CACHE_DIR", dir.path())
        .args(["test", "xsc-ring", "--no-build", "--accel", "tcg"]);
    let out = run(cmd, QUICK);
    assert_code(&out, ExitCode::BuildFailed);
    assert!(
        stderr(&out).contains("xsc-release build kernel"),
        "{}",
        text(&out)
    );
}

/// No QEMU on PATH: the harness cannot do its job, says which package, before anything
/// is built or booted.
#[test]
fn exit_4_a_missing_tool_names_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = xsc();
    cmd.env("XSC_CACHE_DIR", dir.path())
        .env("PATH", "/nonexistent")
        .args(["test", &scenario("smoke.toml"), "--accel", "tcg"]);
    let out = run(cmd, QUICK);
    assert_code(&out, ExitCode::Harness);
    let err = stderr(&out);
    assert!(
        err.contains("qemu-system-x86_64 is missing")
            && err.contains("apt-get install qemu-system-x86"),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).is_empty(), "no run started: {}", text(&out));
}

/// A release refusal: another release holds the publish root's lock (`candidate` takes it
/// before anything else, so nothing builds or boots).
#[test]
fn exit_5_release_refused_while_the_lock_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let publish = dir.path().join("pub");
    std::fs::create_dir_all(&publish).unwrap();
    let cfg = dir.path().join("xsc.toml");
    let base = std::fs::read_to_string(repo().join("xsc.toml")).unwrap();
    let base: String = base
        .lines()
        .map(|l| {
            if l.starts_with("publish =") {
                format!("publish = \"{}\"\n", publish.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&cfg, base).unwrap();
    // The holder: flock(1) on the same file, exec'ing sleep so one process holds it.
    let lock = publish.join(".lock");
    let mut holder = std::process::Command::new("flock")
        .args(["--no-fork", "--exclusive"])
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock (util-linux)");
    let started = std::time::Instant::now();
    while !lock.exists() && started.elapsed() < QUICK {
        std::thread::sleep(Duration::from_millis(50));
    }
    // flock creates the file before it locks it: give it a moment to hold it.
    std::thread::sleep(Duration::from_millis(300));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(&cfg)
        .env("XSC_CACHE_DIR", dir.path().join("cache"))
        .args(["candidate", "--no-build", "--accel", "tcg"]);
    let out = run(cmd, QUICK);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_code(&out, ExitCode::ReleaseRefused);
    assert!(
        stderr(&out).contains("another release is in progress"),
        "{}",
        text(&out)
    );
}

/// Every row of the table has its test here or in vm.rs.
#[test]
fn every_code_is_covered() {
    let covered = [0, 1, 2, 3, 4, 5, 130, 143];
    let table: Vec<u8> = ExitCode::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(table, covered);
}
