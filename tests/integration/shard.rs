//! The nightly's gate matrix played on this machine: a fixture project whose scenarios are
//! quick (the stock kernel with the sanity suite, and one fault that fails by design), run
//! as 3 shards in separate processes, their JUnit merged, compared case for case and
//! verdict for verdict with one unsharded run. Real QEMU under TCG, real xmllint.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{cases, junit, property, repo, run, text};

const VM: Duration = Duration::from_secs(600);

/// A project dir with its own xsc.toml and scenarios (copies of smoke and faults/fail under
/// new names), sharing the repository's guest tests and the machine's cache.
fn fixture(scenarios: &[(&str, &str)], durations: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("scenarios");
    std::fs::create_dir(&sc).unwrap();
    for (name, from) in scenarios {
        std::fs::copy(
            repo().join("scenarios").join(from),
            sc.join(format!("{name}.toml")),
        )
        .unwrap();
    }
    if let Some(d) = durations {
        std::fs::write(sc.join("durations.json"), d).unwrap();
    }
    // The repository's config (its pinned sources) with this project's scenarios.
    let cfg = std::fs::read_to_string(repo().join("xsc.toml"))
        .unwrap()
        .replacen(
            "[paths]\n",
            &format!(
                "[paths]\nscenarios = \"scenarios\"\nguest-tests = \"{}\"\n",
                repo().join("guest-tests").display()
            ),
            1,
        );
    std::fs::write(dir.path().join("xsc.toml"), cfg).unwrap();
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

fn sorted(mut v: Vec<(String, String, String)>) -> Vec<(String, String, String)> {
    v.sort();
    v
}

#[test]
fn three_shards_merged_equal_one_unsharded_run() {
    let dir = fixture(
        &[
            ("quick-a", "smoke.toml"),
            ("quick-b", "smoke.toml"),
            ("red", "faults/fail.toml"),
        ],
        Some(r#"{"default_seconds": 20, "seconds": {"quick-a": 12, "red": 15}}"#),
    );
    let d = dir.path();
    // The shards run one after another here (2 cores); in CI they are separate jobs.
    let mut shard_files: Vec<PathBuf> = Vec::new();
    let mut per_shard = Vec::new();
    for k in 1..=3 {
        let xml = d.join(format!("junit-shard-{k}.xml"));
        let mut c = xsc_in(d);
        c.args([
            "test",
            "--accel",
            "tcg",
            "--shard",
            &format!("{k}/3"),
            "--junit",
        ])
        .arg(&xml);
        let out = run(c, VM);
        let report = junit(&xml);
        assert_eq!(
            report.name.as_deref(),
            Some(format!("xsc-release shard {k}/3").as_str())
        );
        // Exactly one scenario per shard: equal-ish durations spread by count.
        assert_eq!(report.test_suites.len(), 1, "{}", text(&out));
        let suite = report.test_suites[0].name.to_string();
        assert_eq!(property(&report, &suite, "shard"), Some(format!("{k}/3")));
        assert_eq!(property(&report, &suite, "accel").as_deref(), Some("tcg"));
        assert!(property(&report, &suite, "accel.reason").is_some());
        assert!(property(&report, &suite, "host").is_some());
        assert!(property(&report, &suite, "harness.version").is_some());
        assert!(property(&report, &suite, "kernel.sha256").is_some_and(|h| h.len() == 64));
        let want = if suite == "red" { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{}", text(&out));
        per_shard.push(suite);
        shard_files.push(xml);
    }
    per_shard.sort();
    assert_eq!(per_shard, ["quick-a", "quick-b", "red"]);

    let merged = d.join("merged.xml");
    let mut c = xsc_in(d);
    c.args(["report", "merge", "--expect-shards", "3", "-o"])
        .arg(&merged)
        .args(&shard_files);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let merged = junit(&merged);

    let whole = d.join("junit-whole.xml");
    let mut c = xsc_in(d);
    c.args(["test", "--accel", "tcg", "--junit"]).arg(&whole);
    let out = run(c, VM);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let whole = junit(&whole);

    assert_eq!(sorted(cases(&merged)), sorted(cases(&whole)));
    assert_eq!(
        (merged.tests, merged.failures, merged.errors),
        (whole.tests, whole.failures, whole.errors)
    );
    assert!(
        merged.failures + merged.errors > 0,
        "the fault must stay red"
    );

    // The shards' times refresh the durations file; entries not measured are kept.
    let mut c = xsc_in(d);
    c.args(["report", "durations"]).args(&shard_files);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("scenarios/durations.json")).unwrap())
            .unwrap();
    for s in ["quick-a", "quick-b", "red"] {
        assert!(v["seconds"][s].as_f64().is_some_and(|t| t > 0.0), "{v}");
    }
    assert_eq!(v["default_seconds"], 20.0);
}

/// No QEMU here: an empty shard, a missing shard, a duplicate test, a bad shard spec.
#[test]
fn empty_missing_and_duplicate_shards() {
    let dir = fixture(
        &[("quick-a", "smoke.toml"), ("quick-b", "smoke.toml")],
        None,
    );
    let d = dir.path();
    let empty = d.join("junit-shard-3.xml");
    let mut c = xsc_in(d);
    c.args(["test", "--shard", "3/3", "--no-build", "--junit"])
        .arg(&empty);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("shard 3/3 selected nothing"),
        "{}",
        text(&out)
    );
    let r = junit(&empty);
    assert_eq!(r.name.as_deref(), Some("xsc-release shard 3/3"));
    assert!(r.test_suites.is_empty());

    // Shards 1 and 2 are missing.
    let merged = d.join("m.xml");
    let mut c = xsc_in(d);
    c.args(["report", "merge", "--expect-shards", "3", "-o"])
        .arg(&merged)
        .arg(&empty);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("missing shard(s) 1, 2 of 3"),
        "{}",
        text(&out)
    );
    assert!(!merged.exists());

    // A report with a test, given twice: a duplicate naming both files.
    let one = d.join("one.xml");
    let mut c = xsc_in(d);
    c.args(["report", "ktap", "--junit"])
        .arg(&one)
        .arg(repo().join("tests/fixtures/ktap/kunit-6.1.log"));
    run(c, Duration::from_secs(60));
    let two = d.join("two.xml");
    std::fs::copy(&one, &two).unwrap();
    let mut c = xsc_in(d);
    c.args(["report", "merge", "-o"])
        .arg(&merged)
        .arg(&one)
        .arg(&two);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("duplicate test") && t.contains("one.xml") && t.contains("two.xml"),
        "{t}"
    );

    for bad in ["0/3", "4/3", "x"] {
        let mut c = xsc_in(d);
        c.args(["test", "--shard", bad]);
        let out = run(c, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
    }
}
