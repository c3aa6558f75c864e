//! Real QEMU under TCG: each test boots the stock Debian 6.1 kernel (fetched into the cache
//! by the harness) with the harness's own initramfs, and checks the verdict, the exit code
//! and the JUnit file (schema-validated). KVM is broken differently from host to host, so
//! every run here says `--accel tcg`, except the one that runs `auto` against this host's
//! real KVM and asserts only what holds everywhere.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::support::{
    cases, junit, property, qemu_pids, run, scenario, state_dir_from_stdout, text, wait,
    wait_for_text, xsc,
};

const VM: Duration = Duration::from_secs(300);

fn test_run(args: &[&str]) -> (Output, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    let mut cmd = xsc();
    cmd.arg("test").args(args).arg("--junit").arg(&xml);
    (run(cmd, VM), xml, dir)
}

fn kind_of<'a>(all: &'a [(String, String, String)], case: &str) -> Option<&'a str> {
    all.iter()
        .find(|(_, c, _)| c == case)
        .map(|(_, _, k)| k.as_str())
}

#[test]
fn smoke_passes_with_every_case_in_junit() {
    let (out, xml, _d) = test_run(&["smoke", "--accel", "tcg"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = junit(&xml);
    let all = cases(&report);
    assert_eq!(all[0].1, "boot", "boot comes first: {all:#?}");
    assert!(all.len() > 30, "expected the whole sanity suite: {all:#?}");
    assert!(all.iter().all(|(_, _, k)| k == "pass"), "{all:#?}");
    assert!(
        all.iter().any(|(_, c, _)| c == "sanity.fs.write_read"),
        "{all:#?}"
    );
    assert_eq!(property(&report, "smoke", "accel").as_deref(), Some("tcg"));
    assert!(
        property(&report, "smoke", "qemu.version")
            .is_some_and(|v| v.starts_with('7') || v.starts_with('8') || v.starts_with('9'))
    );
    assert!(property(&report, "smoke", "kernel.release").is_some_and(|v| v.starts_with("6.1")));
    assert!(property(&report, "smoke", "scenario.sha256").is_some_and(|v| v.len() == 64));
    let log = property(&report, "smoke", "serial-log").expect("serial log property");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("xsc-init: done")
    );
}

#[test]
fn a_failing_ktap_case_fails_the_run_with_exit_1() {
    let (out, xml, _d) = test_run(&[&scenario("faults/fail.toml"), "--accel", "tcg"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = cases(&junit(&xml));
    assert_eq!(
        kind_of(&all, "fault.broken"),
        Some("failure:assertion"),
        "{all:#?}"
    );
    assert_eq!(kind_of(&all, "fault.first"), Some("pass"), "{all:#?}");
    assert_eq!(kind_of(&all, "boot"), Some("pass"), "{all:#?}");
}

#[test]
fn a_kernel_panic_ends_the_run_at_once_as_a_crash() {
    let (out, xml, _d) = test_run(&[&scenario("faults/panic.toml"), "--accel", "tcg"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the guest kernel panicked"),
        "ended by the crash, not a clock:\n{stdout}"
    );
    let all = cases(&junit(&xml));
    assert_eq!(
        kind_of(&all, "console.panic"),
        Some("failure:crash"),
        "{all:#?}"
    );
    assert_eq!(
        kind_of(&all, "fault.before_panic"),
        Some("pass"),
        "{all:#?}"
    );
    assert!(
        !all.iter().any(|(_, _, k)| k.contains("timeout")),
        "no clock may have expired: {all:#?}"
    );
}

#[test]
fn a_silent_guest_is_caught_by_the_no_output_clock() {
    let (out, xml, _d) = test_run(&[&scenario("faults/hang.toml"), "--accel", "tcg"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("silence timeout: no console output for 8s"),
        "{}",
        text(&out)
    );
    let all = cases(&junit(&xml));
    assert_eq!(kind_of(&all, "run"), Some("failure:timeout"), "{all:#?}");
}

#[test]
fn a_program_past_its_clock_is_killed_in_the_guest_and_the_next_runs() {
    let (out, xml, _d) = test_run(&[&scenario("faults/timeout.toml"), "--accel", "tcg"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = cases(&junit(&xml));
    assert!(
        all.iter()
            .any(|(_, c, k)| c.starts_with("slow") && k == "failure:timeout"),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|(_, c, k)| c.starts_with("after.") && k == "pass"),
        "{all:#?}"
    );
}

#[test]
fn binary_garbage_on_the_console_keeps_junit_valid_and_segfaults_are_caught() {
    let (out, xml, _d) = test_run(&[&scenario("faults/garbage.toml"), "--accel", "tcg"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the segfault fails the run: {}",
        text(&out)
    );
    let all = cases(&junit(&xml));
    assert!(
        all.iter()
            .any(|(_, c, k)| c.starts_with("garbage.") && k == "pass"),
        "{all:#?}"
    );
    assert_eq!(
        kind_of(&all, "console.segfault"),
        Some("failure:crash"),
        "{all:#?}"
    );
}

/// Starts a long silent run and returns the child, its state directory and JUnit path once
/// the guest is up.
fn start_hanging_run(dir: &Path) -> (std::process::Child, PathBuf, PathBuf) {
    let xml = dir.join("junit.xml");
    let mut cmd = xsc();
    cmd.arg("test")
        .arg(scenario("faults/hang.toml"))
        .args(["--accel", "tcg", "--silence-timeout", "200s", "--junit"])
        .arg(&xml)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    let state = state_dir_from_stdout(&first)
        .expect("run line names the state dir")
        .join("hang");
    assert!(
        wait_for_text(&state.join("serial.log"), "1..1", Duration::from_secs(120)),
        "guest never started the program"
    );
    (child, state, xml)
}

#[test]
fn qemu_killed_mid_run_is_a_harness_failure_with_logs_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (child, state, xml) = start_hanging_run(dir.path());
    let pids = qemu_pids(&state.display().to_string());
    assert_eq!(pids.len(), 1, "exactly one QEMU for {}", state.display());
    std::process::Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status()
        .unwrap();
    let out = wait(child, VM);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(state.join("serial.log").is_file() && state.join("qemu.argv").is_file());
    let all = cases(&junit(&xml));
    assert_eq!(kind_of(&all, "run"), Some("error:infra"), "{all:#?}");
}

fn interrupt(signal: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let (child, state, xml) = start_hanging_run(dir.path());
    std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let out = wait(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    assert!(
        qemu_pids(&state.display().to_string()).is_empty(),
        "QEMU left behind after {signal}"
    );
    let all = cases(&junit(&xml));
    assert_eq!(
        kind_of(&all, "boot"),
        Some("pass"),
        "partial JUnit keeps what was seen: {all:#?}"
    );
}

#[test]
fn sigint_stops_qemu_writes_partial_junit_and_exits_130() {
    interrupt("-INT", 130);
}

#[test]
fn sigterm_stops_qemu_and_exits_143() {
    interrupt("-TERM", 143);
}

/// The ad-hoc loop with `--accel auto` on a fresh host cache: the KVM probe runs for real
/// against this host's KVM, whatever it does (missing, not openable, QEMU aborting on init,
/// stalling guests, or working). Only what holds on every host is asserted: TCG with a
/// reason that names the KVM probe, or KVM with the first kernel line seen. Each mode is
/// forced and checked on its own in tests/integration/accel.rs.
#[test]
fn adhoc_kernel_with_auto_accel_probes_kvm_and_records_why() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let kernel = crate::accel::stock_kernel_in(&cache);
    let xml = dir.path().join("junit.xml");
    let mut cmd = xsc();
    cmd.env("XSC_CACHE_DIR", &cache)
        .arg("test")
        .arg("--kernel")
        .arg(&kernel)
        .args(["--accel", "auto", "--junit"])
        .arg(&xml);
    let out = run(cmd, VM);
    let report = junit(&xml);
    let accel = property(&report, "adhoc", "accel").unwrap();
    let reason = property(&report, "adhoc", "accel.reason").unwrap();
    let probe = property(&report, "adhoc", "accel.probe").unwrap();
    assert!(reason.starts_with("auto: KVM probe"), "{reason}");
    if accel == "tcg" {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(reason.ends_with("; using tcg"), "{reason}");
        assert_ne!(probe, "works");
    } else {
        assert_eq!(accel, "kvm");
        assert_eq!(probe, "works");
        assert!(reason.contains("first kernel line"), "{reason}");
    }
}

/// An initramfs that prints no KTAP at all and powers off is a failure, never a pass.
#[test]
fn a_run_without_ktap_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::fs::write(root.join("init"), "#!/bin/busybox sh\n/bin/busybox echo hello from a foreign init\n/bin/busybox poweroff -f\n").unwrap();
    std::fs::set_permissions(
        root.join("init"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cpio = dir.path().join("foreign.cpio");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | sort | cpio -o -H newc > {} 2>/dev/null",
            root.display(),
            cpio.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = xsc_release::Cache::new(xsc_release::default_cache_dir());
    let (kernel, _) = rt
        .block_on(xsc_release::ensure_stock_kernel(&cache))
        .unwrap();
    let (out, xml, _d) = test_run(&[
        "--kernel",
        &kernel.vmlinuz.display().to_string(),
        "--initrd",
        &cpio.display().to_string(),
        "--accel",
        "tcg",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = cases(&junit(&xml));
    assert_eq!(kind_of(&all, "ktap"), Some("failure:assertion"), "{all:#?}");
}

/// The ring suite on a kernel without XSC fails loudly: every case a failure, none skipped
/// (a missing /dev/xsc is not a reason to skip a release gate).
#[test]
fn the_ring_suite_fails_loudly_on_an_unpatched_kernel() {
    let (out, xml, _d) = test_run(&[&scenario("faults/ring-on-stock.toml"), "--accel", "tcg"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = cases(&junit(&xml));
    let ring: Vec<_> = all
        .iter()
        .filter(|(_, c, _)| c.starts_with("xsc_ring_test."))
        .collect();
    assert!(ring.len() >= 60, "{all:#?}");
    assert!(
        ring.iter().all(|(_, _, k)| k.starts_with("failure")),
        "no case may pass or skip without /dev/xsc: {ring:#?}"
    );
    assert_eq!(
        kind_of(&all, "xsc_ring_test.setup.open_dev"),
        Some("failure:assertion"),
        "{all:#?}"
    );
}

/// `--jobs 2` must report exactly what a serial run reports.
#[test]
fn parallel_runs_report_what_serial_runs_report() {
    let verdicts = |jobs: &str| {
        let (out, xml, _d) = test_run(&[
            "smoke",
            &scenario("faults/fail.toml"),
            "--accel",
            "tcg",
            "--jobs",
            jobs,
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        cases(&junit(&xml))
    };
    assert_eq!(verdicts("2"), verdicts("1"));
}
