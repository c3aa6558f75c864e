//! A built stage carried between CI jobs (docs/ci.md): `build kernel --stage-artifact DIR`
//! exports the real kernel entry of this checkout's cache (4-5 MB; a hit when any VM test
//! built it), `cache import DIR` brings it into an empty cache, where `status --json` shows
//! it built and `build kernel` finds it without building; an artifact with an edited file
//! or another key is refused (exit 2) and leaves that cache empty.

use std::path::Path;
use std::time::Duration;

use crate::support::{run, text, xsc};

/// A kernel built cold on a slow runner fits in this; a hit takes seconds.
const BUILD: Duration = Duration::from_secs(3600);
const QUICK: Duration = Duration::from_secs(120);

/// `(state, key)` of `kernel qemu` in `status --json` against `cache`.
fn kernel_status(cache: &Path) -> (String, String) {
    let mut cmd = xsc();
    cmd.env("XSC_CACHE_DIR", cache).args(["status", "--json"]);
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = doc["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "kernel" && s["variant"] == "qemu")
        .expect("a kernel qemu row")
        .clone();
    (
        row["state"].as_str().unwrap().to_string(),
        row["key"].as_str().unwrap().to_string(),
    )
}

fn import(cache: &Path, art: &Path) -> std::process::Output {
    let mut cmd = xsc();
    cmd.env("XSC_CACHE_DIR", cache)
        .args(["cache", "import"])
        .arg(art);
    run(cmd, QUICK)
}

fn copy_dir(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_kernel_stage_artifact_moves_between_caches_and_a_tampered_or_foreign_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("kernel-artifact");
    // The build job: the shared cache (XSC_CACHE_DIR as the caller set it).
    let mut cmd = xsc();
    cmd.args(["build", "kernel", "--profile", "qemu", "--stage-artifact"])
        .arg(&art);
    let out = run(cmd, BUILD);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stage artifact: kernel qemu key"),
        "{}",
        text(&out)
    );
    let seal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(art.join("seal.json")).unwrap()).unwrap();
    assert!(art.join("entry/bzImage").is_file());

    // The gate job: an empty cache of its own.
    let cache = dir.path().join("cache");
    let (state, key) = kernel_status(&cache);
    assert_eq!(state, "not-built");
    assert_eq!(seal["key"], key.as_str());

    // An edited bzImage (one byte) is refused before anything lands.
    let edited = dir.path().join("edited");
    copy_dir(&art, &edited);
    let bz = edited.join("entry/bzImage");
    let mut bytes = std::fs::read(&bz).unwrap();
    bytes[4096] ^= 1;
    std::fs::write(&bz, bytes).unwrap();
    let out = import(&cache, &edited);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("does not match its seal: bzImage has sha256"),
        "{}",
        text(&out)
    );

    // An artifact of other inputs (its seal's key is not this checkout's) is refused,
    // naming both keys.
    let foreign = dir.path().join("foreign");
    copy_dir(&art, &foreign);
    let other = "0".repeat(64);
    let seal_text = std::fs::read_to_string(foreign.join("seal.json")).unwrap();
    std::fs::write(foreign.join("seal.json"), seal_text.replace(&key, &other)).unwrap();
    let out = import(&cache, &foreign);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "key {other}, but this checkout's kernel qemu key is {key}"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(kernel_status(&cache).0, "not-built", "nothing landed");

    // The real one: imported, built in that cache, and `build kernel` there only finds it
    // (a build would unpack its tree under <cache>/work/kernel and log to logs/).
    let out = import(&cache, &art);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("imported"), "{}", text(&out));
    assert_eq!(kernel_status(&cache), ("built".to_string(), key.clone()));
    let mut cmd = xsc();
    cmd.env("XSC_CACHE_DIR", &cache)
        .args(["build", "kernel", "--profile", "qemu"]);
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kernel: cache hit, nothing built"),
        "{}",
        text(&out)
    );
    assert!(!cache.join("work/kernel").exists(), "nothing was built");
    let imported = cache.join("stages/kernel").join(&key).join("bzImage");
    assert_eq!(
        std::fs::read(imported).unwrap(),
        std::fs::read(art.join("entry/bzImage")).unwrap()
    );
}
