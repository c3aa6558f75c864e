//! `xsc-release bench` for real: the icount bench scenario on the real XSC kernel from the
//! cache, run twice. The figures are instruction counts, so the test asserts counts, never
//! time: the second run's figures must equal the first's within 0.5 % (the determinism
//! docs/bench.md states), and a baseline crafted 3 % below the real `ring.getpid.b64`
//! (threshold 2 %) must make `bench` exit 1 naming that figure, with the JUnit carrying the
//! clock, CPU model and figures.

use std::time::Duration;

use crate::support::{junit, property, run, state_dir_from_stdout, text, xsc};

const LIMIT: Duration = Duration::from_secs(1800);

fn figures(v: &serde_json::Value) -> Vec<(String, f64)> {
    v["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn icount_figures_repeat_and_a_crafted_baseline_regresses() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("baseline.json");

    // Run 1 writes a baseline.
    let mut cmd = xsc();
    cmd.args([
        "bench",
        "xsc-ring-icount",
        "--update-baseline",
        "--baseline",
    ])
    .arg(&base);
    let out = run(cmd, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    let run1 = &first["runs"][0];
    assert_eq!(run1["clock"], "icount");
    assert_eq!(run1["cpu_model"], "Nehalem-v1");
    assert!(run1["kernel_key"].as_str().is_some_and(|k| k.len() == 64));
    let f1 = figures(run1);
    assert_eq!(
        f1.len(),
        20,
        "4 ops x 4 batch sizes + 4 direct calls: {f1:?}"
    );

    // The baseline says ring getpid at batch 64 cost 3 % less than it really does.
    let mut crafted = first.clone();
    for f in crafted["runs"][0]["figures"].as_array_mut().unwrap() {
        if f["name"] == "ring.getpid.b64" {
            let v = f["value"].as_f64().unwrap();
            f["value"] = serde_json::json!(v * 0.97);
        }
    }
    let slow = dir.path().join("crafted.json");
    std::fs::write(&slow, serde_json::to_vec_pretty(&crafted).unwrap()).unwrap();

    // Run 2 against it.
    let xml = dir.path().join("junit.xml");
    let mut cmd = xsc();
    cmd.args(["bench", "xsc-ring-icount", "--baseline"])
        .arg(&slow)
        .arg("--junit")
        .arg(&xml);
    let out = run(cmd, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let regressed: Vec<&str> = stdout.lines().filter(|l| l.contains("REGRESSED")).collect();
    assert_eq!(regressed.len(), 1, "{stdout}");
    assert!(
        regressed[0].trim_start().starts_with("ring.getpid.b64 "),
        "{stdout}"
    );

    // Determinism: run 2's figures against run 1's, by count.
    let state = stdout
        .lines()
        .find_map(state_dir_from_stdout)
        .expect("run line");
    let second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("xsc-ring-icount/bench.json")).unwrap())
            .unwrap();
    let f2 = figures(&second);
    assert_eq!(
        f1.iter().map(|f| &f.0).collect::<Vec<_>>(),
        f2.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((name, a), (_, b)) in f1.iter().zip(&f2) {
        let spread = (b - a).abs() / a;
        assert!(
            spread <= 0.005,
            "{name}: {a} then {b} ({:.2} %)",
            spread * 100.0
        );
    }

    let report = junit(&xml);
    let suite = "xsc-ring-icount";
    assert_eq!(property(&report, suite, "clock").as_deref(), Some("icount"));
    assert_eq!(
        property(&report, suite, "cpu.model").as_deref(),
        Some("Nehalem-v1")
    );
    assert!(property(&report, suite, "qemu.version").is_some());
    assert!(
        property(&report, suite, "bench.ring.getpid.b64")
            .is_some_and(|v| v.ends_with(" ns/op better=lower")),
        "{:?}",
        property(&report, suite, "bench.ring.getpid.b64")
    );
}

#[test]
fn a_wall_clock_bench_cannot_be_gated() {
    let mut cmd = xsc();
    cmd.args(["bench", "xsc-glibc-bench", "--no-build"]);
    let out = run(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("runs on the host clock"),
        "{}",
        text(&out)
    );
}
