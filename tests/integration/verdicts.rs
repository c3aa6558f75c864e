//! Distributed verdicts, the nightly played on this machine: a fixture project whose
//! release gates are quick (two copies of smoke on the stock kernel, and xsc-ring on the
//! cached XSC kernel), 3 shards as separate processes writing verdict records, their JUnit
//! merged and compared case for case with one unsharded run, then `candidate --verdicts`
//! publishing from the records with a `qemu-system-x86_64` on PATH that only leaves a mark:
//! no QEMU may run. Tampered records (flipped result, changed image hash, other harness
//! binary, other run id) are each refused (exit 5) and publish nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{cases, junit, repo, run, text};

const VM: Duration = Duration::from_secs(900);
const QUICK: Duration = Duration::from_secs(300);
const RUN_ID: &str = "nightly-4711";

/// The project: its own xsc.toml (out/ and publish/ inside it), scenarios, and a git
/// history (a candidate names its commit); the stages' inputs are the repository's.
/// `bench`: one release gate (smoke), a not-applicable one (alma-install) and the icount
/// bench instead of the three gates.
fn fixture(bench: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sc = d.join("scenarios");
    std::fs::create_dir(&sc).unwrap();
    let smoke = std::fs::read_to_string(repo().join("scenarios/smoke.toml"))
        .unwrap()
        .replace("tags = [\"smoke\"]", "tags = [\"release-gate\"]");
    std::fs::write(sc.join("quick-a.toml"), &smoke).unwrap();
    if bench {
        // Not applicable here (no [sources.alma]): the shard writes no record for it and
        // the candidate must not ask for one.
        std::fs::copy(
            repo().join("scenarios/alma-install.toml"),
            sc.join("alma-install.toml"),
        )
        .unwrap();
        std::fs::create_dir(sc.join("bench")).unwrap();
        std::fs::copy(
            repo().join("scenarios/bench/xsc-ring-icount.toml"),
            sc.join("bench/xsc-ring-icount.toml"),
        )
        .unwrap();
    } else {
        std::fs::write(sc.join("quick-b.toml"), &smoke).unwrap();
        std::fs::copy(
            repo().join("scenarios/xsc-ring.toml"),
            sc.join("xsc-ring.toml"),
        )
        .unwrap();
    }
    std::fs::write(
        sc.join("durations.json"),
        r#"{"default_seconds": 20, "seconds": {"quick-a": 12, "quick-b": 13, "xsc-ring": 30}}"#,
    )
    .unwrap();
    let base: String = std::fs::read_to_string(repo().join("xsc.toml"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("out =") && !l.starts_with("publish ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = base.replacen(
        "[paths]\n",
        &format!(
            "[paths]\nscenarios = \"scenarios\"\nguest-tests = \"{}\"\nout = \"out\"\npublish = \"publish\"\n",
            repo().join("guest-tests").display()
        ),
        1,
    );
    std::fs::write(d.join("xsc.toml"), cfg).unwrap();
    for tree in ["patches", "recipes"] {
        std::os::unix::fs::symlink(repo().join(tree), d.join(tree)).unwrap();
    }
    for args in [
        &["init", "-q"][..],
        &["add", "scenarios", "xsc.toml"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "fixture",
        ],
    ] {
        let st = Command::new("git")
            .args(args)
            .current_dir(d)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }
    // A QEMU that boots nothing: it only says that it was called.
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("qemu-system-x86_64");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ntouch {}\nexit 1\n",
            d.join("qemu-ran").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

fn xsc_in(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    c.arg("--config")
        .arg(dir.join("xsc.toml"))
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

/// `candidate --verdicts` with the marking QEMU first on PATH.
fn candidate(d: &Path, verdicts: &Path, run_id: &str) -> std::process::Output {
    candidate_with(d, verdicts, run_id, &[])
}

fn candidate_with(d: &Path, verdicts: &Path, run_id: &str, extra: &[&str]) -> std::process::Output {
    let mut c = xsc_in(d);
    let path = format!(
        "{}:{}",
        d.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("PATH", path)
        .args(["candidate", "--no-build", "--verdicts"])
        .arg(verdicts)
        .args(["--run-id", run_id])
        .args(extra);
    run(c, QUICK)
}

fn published(d: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(d.join("publish/candidates"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn edit_record(dir: &Path, gate: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(gate).join("record.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// A tampering: its name, the run id the candidate is given, and what it does to the records.
type Tamper = (&'static str, &'static str, fn(&Path));

fn sorted(mut v: Vec<(String, String, String)>) -> Vec<(String, String, String)> {
    v.sort();
    v
}

#[test]
fn shards_prove_the_gates_and_the_candidate_signs_without_booting() {
    let dir = fixture(false);
    let d = dir.path();
    let verdicts = d.join("verdicts");
    let mut shard_files = Vec::new();
    for k in 1..=3 {
        let xml = d.join(format!("junit-shard-{k}.xml"));
        let mut c = xsc_in(d);
        c.args(["test", "--tag", "release-gate", "--accel", "tcg", "--shard"])
            .arg(format!("{k}/3"))
            .arg("--junit")
            .arg(&xml)
            .arg("--verdicts")
            .arg(&verdicts)
            .args(["--run-id", RUN_ID]);
        let out = run(c, VM);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        shard_files.push(xml);
    }
    for g in ["quick-a", "quick-b", "xsc-ring"] {
        for f in ["record.json", "serial.log", "junit.xml"] {
            assert!(verdicts.join(g).join(f).is_file(), "{g}/{f}");
        }
    }
    let merged = d.join("junit-merged.xml");
    let mut c = xsc_in(d);
    c.args(["report", "merge", "--expect-shards", "3", "-o"])
        .arg(&merged)
        .args(&shard_files);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let merged = junit(&merged);

    let whole = d.join("junit-whole.xml");
    let mut c = xsc_in(d);
    c.args(["test", "--tag", "release-gate", "--accel", "tcg", "--junit"])
        .arg(&whole);
    let out = run(c, VM);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sorted(cases(&merged)), sorted(cases(&junit(&whole))));

    // Each tampering, on its own copy of the records: refused, nothing published or booted.
    let tampered: [Tamper; 4] = [
        ("flipped", RUN_ID, |v| {
            // The shard's run failed (its log says so); the record was made to say pass.
            let log = v.join("quick-a/serial.log");
            let t = std::fs::read_to_string(&log).unwrap();
            let ok = t
                .lines()
                .find(|l| l.trim_start().starts_with("ok "))
                .unwrap()
                .to_string();
            std::fs::write(&log, t.replacen(&ok, &ok.replacen("ok ", "not ok ", 1), 1)).unwrap();
        }),
        ("image", RUN_ID, |v| {
            edit_record(v, "xsc-ring", |r| r["image"][0][1] = "0".repeat(64).into());
        }),
        ("harness", RUN_ID, |v| {
            edit_record(v, "quick-b", |r| {
                r["harness_sha256"] = "f".repeat(64).into();
            });
        }),
        ("run-id", "nightly-4712", |_| {}),
    ];
    for (what, run_id, tamper) in tampered {
        let copy = d.join(format!("verdicts-{what}"));
        copy_tree(&verdicts, &copy);
        tamper(&copy);
        let out = candidate(d, &copy, run_id);
        assert_eq!(out.status.code(), Some(5), "{what}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let want = match what {
            "flipped" => "not what its serial log judges to",
            "image" => "record's image is kernel.sha256=0000",
            "harness" => "harness binary hash",
            _ => "run id is nightly-4711, this job's is nightly-4712",
        };
        assert!(err.contains(want), "{what}: {}", text(&out));
        assert!(published(d).is_empty(), "{what} published");
    }
    // The record's result flipped with its log untouched.
    let copy = d.join("verdicts-result");
    copy_tree(&verdicts, &copy);
    edit_record(&copy, "quick-a", |r| {
        r["result"]["cases"][0]["status"] =
            serde_json::json!({"Failed": {"kind": "Assertion", "message": "x"}});
        r["passed"] = false.into();
    });
    let out = candidate(d, &copy, RUN_ID);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));

    // The real records: published from them, case for case what the shards reported.
    let out = candidate(d, &verdicts, RUN_ID);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rel = published(d);
    assert_eq!(rel.len(), 1, "{}", text(&out));
    assert_eq!(
        sorted(cases(&junit(&rel[0].join("junit.xml")))),
        sorted(cases(&merged))
    );
    assert!(
        !d.join("qemu-ran").exists(),
        "candidate --verdicts started QEMU"
    );
}

/// Issue 12's bench gate, proven by a bench job's records: the same figures against a
/// baseline they beat (published), one they miss by 3 % on one figure (exit 1, nothing
/// published), and that one with `--allow-regression` (published, the figure named in the
/// manifest). No QEMU runs in any candidate.
#[test]
fn the_bench_gate_travels_as_a_verdict_and_blocks_a_regression() {
    let dir = fixture(true);
    let d = dir.path();
    let verdicts = d.join("verdicts");
    let mut c = xsc_in(d);
    c.args([
        "test",
        "--tag",
        "release-gate",
        "--accel",
        "tcg",
        "--verdicts",
    ])
    .arg(&verdicts)
    .args(["--run-id", RUN_ID]);
    let out = run(c, VM);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!verdicts.join("alma-install").exists(), "{}", text(&out));
    let seed = d.join("seed.json");
    let mut c = xsc_in(d);
    c.args(["bench", "--update-baseline", "--baseline"])
        .arg(&seed)
        .arg("--verdicts")
        .arg(&verdicts)
        .args(["--run-id", RUN_ID]);
    let out = run(c, VM);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(verdicts.join("xsc-ring-icount/bench.json").is_file());
    let seed: serde_json::Value = serde_json::from_slice(&std::fs::read(&seed).unwrap()).unwrap();

    let baseline = |scale: &dyn Fn(&str) -> f64| {
        let mut b = seed.clone();
        for f in b["runs"][0]["figures"].as_array_mut().unwrap() {
            let k = scale(f["name"].as_str().unwrap());
            f["value"] = serde_json::json!(f["value"].as_f64().unwrap() * k);
        }
        std::fs::create_dir_all(d.join("benches")).unwrap();
        std::fs::write(
            d.join("benches/baseline.json"),
            serde_json::to_vec_pretty(&b).unwrap(),
        )
        .unwrap();
    };
    let manifest = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
    };

    // Every figure 10 % better than the baseline's: improved, published.
    baseline(&|_| 1.10);
    let out = candidate(d, &verdicts, RUN_ID);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("IMPROVED"),
        "{}",
        text(&out)
    );
    let first = published(d);
    assert_eq!(first.len(), 1);
    assert!(manifest(&first[0]).get("allowed-regressions").is_none());

    // The baseline says ring getpid at batch 64 cost 3 % less: regressed, blocked.
    baseline(&|n| if n == "ring.getpid.b64" { 0.97 } else { 1.0 });
    let out = candidate(d, &verdicts, RUN_ID);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("regressed past their threshold: xsc-ring-icount/ring.getpid.b64;"),
        "{}",
        text(&out)
    );
    assert_eq!(published(d).len(), 1, "a regression published");

    let out = candidate_with(d, &verdicts, RUN_ID, &["--allow-regression"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let now = published(d);
    assert_eq!(now.len(), 2);
    let new = now.iter().find(|p| !first.contains(p)).unwrap();
    assert_eq!(
        manifest(new)["allowed-regressions"],
        serde_json::json!(["xsc-ring-icount/ring.getpid.b64"])
    );
    assert!(!d.join("qemu-ran").exists(), "a candidate started QEMU");
}
