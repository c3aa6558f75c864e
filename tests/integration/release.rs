//! The release half end to end through the binary: `candidate` on the repository's config
//! (builds the XSC kernel through the cache, runs the release gates in QEMU, publishes a
//! dev-signed candidate), checked with Debian's `minisign` and `sha256sum` alone and with
//! `verify`; a red gate publishes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{cases, junit, repo, run, text, xsc};

/// A cold CI run builds the kernel here (~6–11 min on 2 cores) before booting the gate.
const CANDIDATE: Duration = Duration::from_secs(40 * 60);

fn config_with(dir: &Path, extra_paths: &str) -> PathBuf {
    let base = std::fs::read_to_string(repo().join("xsc.toml")).unwrap();
    // The repository's own out/publish keys would be duplicates of the test's.
    let base: String = base
        .lines()
        .filter(|l| !l.starts_with("out =") && !l.starts_with("publish ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let base = base.replace("[paths]\n", &format!("[paths]\n{extra_paths}\n"));
    let file = dir.join("xsc.toml");
    std::fs::write(&file, base).unwrap();
    file
}

fn published(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("candidates");
    std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_red_gate_publishes_nothing_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    let red = std::fs::read_to_string(repo().join("scenarios/faults/fail.toml"))
        .unwrap()
        .replace("tags = [\"fault\"]", "tags = [\"release-gate\"]");
    std::fs::write(scenarios.join("red.toml"), red).unwrap();
    let publish = dir.path().join("pub");
    let cfg = config_with(
        dir.path(),
        &format!(
            "scenarios = \"{}\"\nguest-tests = \"{}\"\nout = \"{}\"\npublish = \"{}\"",
            scenarios.display(),
            repo().join("guest-tests").display(),
            dir.path().join("out").display(),
            publish.display()
        ),
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(&cfg)
        .args(["candidate", "--accel", "tcg"]);
    let out = run(cmd, Duration::from_secs(600));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing was published"),
        "{}",
        text(&out)
    );
    assert!(
        published(&publish).is_empty(),
        "a red gate published {:?}",
        published(&publish)
    );
    // The JUnit of the red run is still written, with both attempts (one rerun allowed).
    let junit_file = std::fs::read_dir(dir.path().join("out/runs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("junit.xml");
    let all = cases(&junit(&junit_file));
    assert!(
        all.iter()
            .any(|(_, c, k)| c == "fault.broken" && k == "failure:assertion"),
        "{all:#?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rerunning 1 failed gate(s) once"),
        "{}",
        text(&out)
    );
}

#[test]
fn candidate_publishes_a_release_that_minisign_and_sha256sum_accept() {
    let dir = tempfile::tempdir().unwrap();
    let publish = dir.path().join("pub");
    let cfg = config_with(
        dir.path(),
        &format!(
            "scenarios = \"{}\"\nguest-tests = \"{}\"\nout = \"{}\"\npublish = \"{}\"",
            repo().join("scenarios").display(),
            repo().join("guest-tests").display(),
            repo().join("out").display(),
            publish.display()
        ),
    );
    // The config lives in a temp dir, but the stages read patches/ and recipes/ from its
    // root, and the bench gate benches/baseline.json.
    for tree in ["patches", "recipes", "benches"] {
        std::os::unix::fs::symlink(repo().join(tree), dir.path().join(tree)).unwrap();
    }
    let candidate = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
        cmd.arg("--config")
            .arg(&cfg)
            // The bench gate's verdict is tests/integration/verdicts.rs's to test; this one
            // publishes whatever the committed baseline says of the current kernel.
            .args(["candidate", "--accel", "tcg", "--allow-regression"])
            .args(extra);
        run(cmd, CANDIDATE)
    };
    // --retest: boot the gate for real even when an earlier CI run on this machine left a
    // green verdict in the shared cache.
    let out = candidate(&["--retest"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("cached verdict"),
        "{}",
        text(&out)
    );
    let dirs = published(&publish);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let rel = &dirs[0];

    // Every KTAP case of the xsc-ring gate is in the published JUnit.
    let all = cases(&junit(&rel.join("junit.xml")));
    let ring: Vec<_> = all
        .iter()
        .filter(|(s, c, _)| s == "xsc-ring" && c.starts_with("xsc_ring_test."))
        .collect();
    assert!(
        ring.len() >= 60,
        "xsc-ring must report at least 60 cases: {all:#?}"
    );
    // Every gate passed, but the EL install gates: no base ISO is configured here, so they
    // are not applicable (skipped with the reason; tests/integration/phases.rs).
    let (el, rest): (Vec<_>, Vec<_>) = all.iter().partition(|(s, _, _)| s.ends_with("-install"));
    assert!(rest.iter().all(|(_, _, k)| k == "pass"), "{all:#?}");
    assert!(el.iter().all(|(_, _, k)| k == "skip"), "{all:#?}");

    // A user with minisign and sha256sum alone.
    let sums = Command::new("sha256sum")
        .arg("--strict")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(rel)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    let pubkey = xsc_release::dev_key_paths(&xsc_release::default_cache_dir()).1;
    for entry in std::fs::read_dir(rel).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".minisig")
            || entry.path().is_dir()
            || !rel.join(format!("{name}.minisig")).exists()
        {
            continue;
        }
        let v = Command::new("minisign")
            .args(["-V", "-H", "-q", "-p"])
            .arg(&pubkey)
            .arg("-m")
            .arg(entry.path())
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "minisign rejects {name}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rel.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["signed-by"], "dev", "{manifest:#}");

    // Our own verify agrees, and catches one changed byte.
    let mut cmd = xsc();
    cmd.arg("verify").arg(rel).arg("--pubkey").arg(&pubkey);
    let out = run(cmd, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bz = std::fs::read_dir(rel)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "bzImage"))
        .expect("kernel artifact");
    let mut bytes = std::fs::read(&bz).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&bz, bytes).unwrap();
    let mut cmd = xsc();
    cmd.arg("verify").arg(rel).arg("--pubkey").arg(&pubkey);
    let out = run(cmd, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Same image, scenario and harness: the gate verdict is reused, nothing boots.
    let again = candidate(&[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("cached verdict"),
        "{}",
        text(&again)
    );
}
