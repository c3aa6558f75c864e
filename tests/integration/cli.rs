//! Command-line behaviour that needs no VM: validation, exit codes, doctor, offline reports.

use std::time::Duration;

use crate::support::{cases, junit, repo, run, text, xsc};

const QUICK: Duration = Duration::from_secs(60);

#[test]
fn shipped_scenarios_are_valid() {
    let mut cmd = xsc();
    cmd.args(["scenarios", "check"]);
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut cmd = xsc();
    cmd.args(["scenarios", "check"]);
    for dir in ["scenarios/faults", "scenarios/bench"] {
        for f in std::fs::read_dir(repo().join(dir)).unwrap() {
            cmd.arg(f.unwrap().path());
        }
    }
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn invalid_scenarios_list_every_problem_and_exit_2() {
    let dir = repo().join("tests/fixtures/scenarios-invalid");
    let mut cmd = xsc();
    cmd.args(["scenarios", "check"])
        .arg(dir.join("typos.toml"))
        .arg(dir.join("syntax.toml"));
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "typos.toml:2: nmae: unknown key",
        "typos.toml:6: image.kind: unknown image kind \"floppy\"",
        "typos.toml:9: machine.memory: invalid memory \"lots\"",
        "typos.toml:10: machine.cpus: cpus must be 1 to 64",
        "typos.toml:13: timeouts.boot: invalid duration \"forever\"",
        "typos.toml:16: program[0].name: invalid program name \"Bad Name\"",
        "typos.toml:17: program[0].source: no such file",
        "typos.toml:20: gate.min-cases: expected a non-negative integer",
        "syntax.toml:3: invalid TOML",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("9 problems found"), "{err}");
}

#[test]
fn bad_command_lines_exit_2() {
    for args in [
        &["test", "--accel", "hvf"][..],
        &["test", "--boot-timeout", "soon"],
        &["test", "no-such-scenario"],
        &["frobnicate"],
    ] {
        let mut cmd = xsc();
        cmd.args(args);
        let out = run(cmd, QUICK);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", text(&out));
    }
}

#[test]
fn an_invalid_config_exits_2_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xsc.toml");
    let good = std::fs::read_to_string(repo().join("xsc.toml")).unwrap();
    std::fs::write(&cfg, format!("{good}\n[tset]\njobs = 1\n")).unwrap();
    let out = run(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_xsc-release"));
            c.arg("--config").arg(&cfg).args(["scenarios", "list"]);
            c
        },
        QUICK,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tset: unknown key"),
        "{}",
        text(&out)
    );
}

#[test]
fn doctor_names_the_packages_to_install() {
    let mut cmd = xsc();
    cmd.arg("doctor").env("PATH", "/nonexistent");
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MISSING qemu-system-x86_64"), "{stdout}");
    assert!(
        stdout.contains("apt-get install -y qemu-system-x86"),
        "{stdout}"
    );
    let mut cmd = xsc();
    cmd.arg("doctor");
    let out = run(cmd, QUICK);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok      qemu-system-x86_64"),
        "{}",
        text(&out)
    );
}

#[test]
fn report_ktap_judges_captured_logs() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("lab-good.log");
    std::fs::write(
        &good,
        "[    1.0] Linux version 6.1\r\nKTAP version 1\r\n1..2\r\nok 1 a\r\nok 2 b\r\n",
    )
    .unwrap();
    let bad = dir.path().join("lab-bad.log");
    std::fs::write(
        &bad,
        "KTAP version 1\n1..3\nok 1 a\nnot ok 2 b\n# b: expected 1 got 2\n[   12.5] Kernel panic - not syncing: sysrq triggered crash\n",
    )
    .unwrap();
    let xml = dir.path().join("report.xml");
    let mut cmd = xsc();
    cmd.args(["report", "ktap"])
        .arg(&good)
        .arg(&bad)
        .arg("--junit")
        .arg(&xml);
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = cases(&junit(&xml));
    assert!(
        all.contains(&("lab-good".into(), "a".into(), "pass".into())),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|(s, c, k)| s == "lab-bad" && c == "b" && k.starts_with("failure")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|(s, c, k)| s == "lab-bad" && c.contains("panic") && k == "failure:crash"),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|(s, c, k)| s == "lab-bad" && c.ends_with('3') && k.starts_with("error")),
        "case 3 never ran: {all:#?}"
    );
    let mut cmd = xsc();
    cmd.args(["report", "ktap"]).arg(&good);
    assert_eq!(run(cmd, QUICK).status.code(), Some(0));
}

// `--no-build` with a missing image (exit 3) moved to exit_codes.rs with the other rows.
