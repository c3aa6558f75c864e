//! The app's own behaviour through the real binary, without booting anything: finding
//! `xsc.toml` from a subdirectory, `--json` documents, shell completions.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::{repo, run, text};

/// The binary run in `cwd` with no `--config` and no `XSC_CONFIG`: it must find the config.
fn xsc_in(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    c.current_dir(cwd)
        .env_remove("XSC_CONFIG")
        .stdin(Stdio::null());
    c
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", text(out)))
}

#[test]
fn the_config_is_found_from_a_subdirectory() {
    let mut cmd = xsc_in(&repo().join("scenarios/faults"));
    cmd.args(["scenarios", "list", "--json"]);
    let out = run(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["schema"], 1);
    let list = v["scenarios"].as_array().expect("scenarios array");
    let smoke = list
        .iter()
        .find(|s| s["name"] == "smoke")
        .unwrap_or_else(|| panic!("no smoke scenario: {v}"));
    // Resolved from the config's directory, not from the working directory.
    assert_eq!(
        smoke["file"].as_str().map(Path::new),
        Some(repo().join("scenarios/smoke.toml").as_path())
    );
    assert!(smoke["tags"].is_array() && smoke["description"].is_string());
}

#[test]
fn without_a_config_anywhere_the_error_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    if dir.path().ancestors().any(|d| d.join("xsc.toml").is_file()) {
        return; // this host keeps an xsc.toml above the temp dir: nothing to show
    }
    let mut cmd = xsc_in(dir.path());
    cmd.args(["scenarios", "list"]);
    let out = run(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no xsc.toml in"), "{err}");
    // XSC_CONFIG (like --config) wins over the search.
    let mut cmd = xsc_in(dir.path());
    cmd.env("XSC_CONFIG", repo().join("xsc.toml"))
        .args(["scenarios", "list"]);
    let out = run(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("smoke"));
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = xsc_in(&repo());
        cmd.args(["completions", shell]);
        let out = run(cmd, Duration::from_secs(60));
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("xsc-release") && script.contains("candidate"),
            "{shell}: {script}"
        );
    }
    let mut cmd = xsc_in(&repo());
    cmd.args(["completions", "tcsh"]);
    assert_eq!(run(cmd, Duration::from_secs(60)).status.code(), Some(2));
}

#[test]
fn test_json_is_one_document_on_stdout_even_when_nothing_could_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = xsc_in(&repo().join("scenarios"));
    // An empty cache under --no-build: the scenario cannot get its kernel (exit 3). A missing
    // --kernel file would be bad input, refused before any run and without a document.
    cmd.env("XSC_CACHE_DIR", dir.path())
        .args(["test", "xsc-ring", "--no-build", "--json"]);
    let out = run(cmd, Duration::from_secs(120));
    let v = json(&out);
    assert_eq!(v["schema"], 1);
    assert_eq!(v["exit_code"].as_i64(), out.status.code().map(i64::from));
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(v["run_id"].is_string() && v["scenarios"].is_array(), "{v}");
    let errors = v["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("--no-build"))),
        "{v}"
    );
    // The human lines went to stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("scenarios: 0 passed"));
}

/// The stages' epochs of `status --json` run in `cwd`: (stage/variant, epoch, source).
fn epochs(cwd: &Path, cache: &Path, sde: Option<&str>) -> Vec<(String, i64, String)> {
    let mut cmd = xsc_in(cwd);
    cmd.env("XSC_CACHE_DIR", cache)
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["status", "--json"]);
    if let Some(v) = sde {
        cmd.env("SOURCE_DATE_EPOCH", v);
    }
    let out = run(cmd, Duration::from_secs(300));
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    v["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter(|s| !s["epoch"].is_null())
        .map(|s| {
            (
                format!(
                    "{}/{}",
                    s["stage"].as_str().unwrap(),
                    s["variant"].as_str().unwrap()
                ),
                s["epoch"].as_i64().expect("epoch is a number"),
                s["epoch_source"]
                    .as_str()
                    .expect("epoch_source")
                    .to_string(),
            )
        })
        .collect()
}

/// A source tarball of the repository (no `.git`): the epoch is xsc.toml's `[build] epoch`,
/// for every stage that stamps a time; the environment still wins; and in the clone itself
/// git history decides.
#[test]
fn without_git_history_the_build_epoch_comes_from_xsc_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("xsc-release");
    std::fs::create_dir_all(&copy).unwrap();
    for part in ["xsc.toml", "patches", "guest-tests", "scenarios", "recipes"] {
        let st = Command::new("cp")
            .arg("-a")
            .arg(repo().join(part))
            .arg(&copy)
            .status()
            .unwrap();
        assert!(st.success(), "cp {part}");
    }
    let mut toml = std::fs::read_to_string(copy.join("xsc.toml")).unwrap();
    toml.push_str("\n[build]\nepoch = 1234567890\n");
    std::fs::write(copy.join("xsc.toml"), toml).unwrap();
    let cache = dir.path().join("cache");

    let got = epochs(&copy, &cache, None);
    let stages: Vec<&str> = got.iter().map(|(s, _, _)| s.as_str()).collect();
    assert!(
        stages.contains(&"kernel/qemu") && stages.contains(&"debian-iso/-"),
        "{got:?}"
    );
    for (stage, secs, source) in &got {
        assert_eq!(
            (*secs, source.as_str()),
            (1_234_567_890, "config"),
            "{stage}"
        );
    }
    for (stage, secs, source) in epochs(&copy, &cache, Some("1700000000")) {
        assert_eq!((secs, source.as_str()), (1_700_000_000, "env"), "{stage}");
    }
    // The clone itself has the history (a CI checkout that is shallow may not: skip then).
    let shallow = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["rev-parse", "--is-shallow-repository"])
        .output()
        .expect("git");
    if String::from_utf8_lossy(&shallow.stdout).trim() == "false" {
        for (stage, _, source) in epochs(&repo(), &cache, None) {
            assert_eq!(source, "git", "{stage}");
        }
    }
}
