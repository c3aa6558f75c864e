//! Helpers shared by the integration tests: run the binary with a deadline, read JUnit,
//! validate it against the schema, find stray QEMU processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command for the binary with the repository config.
pub(crate) fn xsc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    c.arg("--config")
        .arg(repo().join("xsc.toml"))
        .stdin(Stdio::null());
    c
}

/// Runs to completion; panics after `limit` (a hung harness is a failed test, not a hang).
pub(crate) fn run(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xsc-release");
    wait(child, limit)
}

/// Waits for a spawned child with a limit. Its pipes are drained while it runs: a child
/// that writes more than a pipe buffer (64 KiB) would otherwise block forever on a full pipe.
pub(crate) fn wait(mut child: Child, limit: Duration) -> Output {
    fn drain(
        pipe: Option<impl std::io::Read + Send + 'static>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            timed_out = true;
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    if timed_out {
        panic!(
            "xsc-release did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// stdout + stderr as text, for assertion messages.
pub(crate) fn text(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scenario file under scenarios/.
pub(crate) fn scenario(rel: &str) -> String {
    repo().join("scenarios").join(rel).display().to_string()
}

/// Validates a JUnit file with xmllint against the Jenkins (Surefire) schema and returns
/// its parsed form.
pub(crate) fn junit(path: &Path) -> quick_junit::Report {
    let xsd = repo().join("tests/fixtures/junit-xsd/jenkins-xunit-junit-10.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(path)
        .output()
        .expect("xmllint (libxml2-utils) is installed by .ci/run");
    assert!(
        out.status.success(),
        "JUnit {} does not validate:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(path).expect("read junit");
    quick_junit::Report::deserialize_from_str(&xml).expect("parse junit")
}

/// All test cases of a report as (suite, case, status kind) triples.
pub(crate) fn cases(report: &quick_junit::Report) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for s in &report.test_suites {
        for c in &s.test_cases {
            let kind = match &c.status {
                quick_junit::TestCaseStatus::Success { .. } => "pass".to_string(),
                quick_junit::TestCaseStatus::Skipped { .. } => "skip".to_string(),
                quick_junit::TestCaseStatus::NonSuccess { kind, ty, .. } => {
                    format!(
                        "{}:{}",
                        if matches!(kind, quick_junit::NonSuccessKind::Failure) {
                            "failure"
                        } else {
                            "error"
                        },
                        ty.as_ref().map(|t| t.to_string()).unwrap_or_default()
                    )
                }
            };
            out.push((s.name.to_string(), c.name.to_string(), kind));
        }
    }
    out
}

/// A suite property's value.
pub(crate) fn property(report: &quick_junit::Report, suite: &str, name: &str) -> Option<String> {
    let s = report
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == suite)?;
    s.properties
        .iter()
        .find(|p| p.name.as_str() == name)
        .map(|p| p.value.to_string())
}

/// Pids of QEMU processes whose command line mentions `needle`.
pub(crate) fn qemu_pids(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "));
        if cmd.starts_with("qemu-system") && cmd.contains(needle) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// Waits until `path` contains `needle`, up to `limit`.
pub(crate) fn wait_for_text(path: &Path, needle: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::fs::read(path).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The run's state directory, from the first line the binary prints.
pub(crate) fn state_dir_from_stdout(line: &str) -> Option<PathBuf> {
    line.split("state in ")
        .nth(1)
        .map(|p| PathBuf::from(p.trim()))
}

/// The first `name` on the test process's PATH.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A throw-away RSA key without a passphrase exported to `dir/repo-signing.asc`, as a
/// user exports the repository key; returns its fingerprint.
pub(crate) fn repo_signing_key(dir: &Path) -> String {
    let home = tempfile::Builder::new().prefix("g").tempdir().unwrap();
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .args(["--batch", "--no-tty", "--passphrase", "", "--homedir"])
            .arg(home.path())
            .args(args)
            .output()
            .expect("gpg (gnupg in .ci/packages)");
        assert!(o.status.success(), "gpg {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    gpg(&[
        "--quick-gen-key",
        "XSC candidate test <t@example.org>",
        "rsa2048",
        "sign",
        "never",
    ]);
    let colons = gpg(&["--with-colons", "--list-secret-keys"]);
    let fpr = colons
        .lines()
        .find_map(|l| l.strip_prefix("fpr:::::::::"))
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_string();
    let armored = gpg(&["--armor", "--export-secret-keys", &fpr]);
    std::fs::write(dir.join("repo-signing.asc"), armored).unwrap();
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home.path())
        .args(["--kill", "gpg-agent"])
        .status();
    fpr
}
