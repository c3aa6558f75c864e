//! Multi-phase scenarios and the not-applicable rule, through the binary.
//!
//! - Four phases on one blank qcow2 disk under TCG (~15 s here), three of the cached XSC
//!   kernel (qemu profile): the first sees zeros, the second writes a marker with a random
//!   token and a boot sector, the third — a new QEMU process — reads the same token back,
//!   and the fourth boots the disk alone (`boot = "disk"`): its boot sector prints it too.
//! - A phase that fails stops the scenario; the later phases are reported as not run.
//! - EL install gates without a configured base ISO are *not applicable*: `test` reports
//!   them as not run (JUnit skipped with the reason), alone they exit 3, beside others they
//!   change nothing; `candidate` publishes without them and says so (manifest, last line),
//!   with the package repositories GPG-signed by the configured `[packages]` key (gpgv,
//!   `rpm -K`, listed in SHA256SUMS, a changed one caught by `verify`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{cases, junit, property, repo, repo_signing_key, run, text, xsc};

const VM: Duration = Duration::from_secs(300);

fn fixture() -> String {
    repo()
        .join("tests/fixtures/scenarios-phases/disk-phases.toml")
        .display()
        .to_string()
}

/// The token a `disk_marker` run (or the disk's boot sector) printed in a phase's console
/// log.
fn token(serial_log: &str) -> Option<String> {
    let text = std::fs::read_to_string(serial_log).ok()?;
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("# token ")
                .or_else(|| l.strip_prefix("# XSC-PHASE-MARKER v1 token="))
        })
        .map(str::to_string)
}

#[test]
fn a_later_phase_sees_what_an_earlier_phase_wrote_to_the_shared_disk() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    let mut cmd = xsc();
    // alma-install beside it: not applicable here, and it changes nothing (exit 0).
    cmd.args([
        "test",
        &fixture(),
        "alma-install",
        "--accel",
        "tcg",
        "--junit",
    ])
    .arg(&xml);
    let out = run(cmd, VM);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("scenarios: 1 passed, 0 failed, 1 not applicable (not run)"),
        "{}",
        text(&out)
    );
    let report = junit(&xml);
    let all = cases(&report);
    let phases: Vec<&str> = all
        .iter()
        .filter(|(s, _, _)| s == "disk-phases")
        .map(|(_, c, _)| c.as_str())
        .collect();
    for want in [
        "blank.boot",
        "blank.disk_blank.disk_is_blank",
        "write.boot",
        "check.boot",
        "check.disk_check.marker_seen",
        "boot.boot",
        "boot.booted_from_disk",
    ] {
        assert!(phases.contains(&want), "missing {want}: {all:#?}");
    }
    assert_eq!(phases[0], "blank.boot", "each phase's boot case leads it");
    assert!(
        all.iter()
            .filter(|(s, _, _)| s == "disk-phases")
            .all(|(_, _, k)| k == "pass"),
        "{all:#?}"
    );
    // The token the write phase printed is the one the check phase read from the disk.
    let log = |p: &str| {
        property(&report, "disk-phases", &format!("phase.{p}.serial-log"))
            .unwrap_or_else(|| panic!("phase.{p}.serial-log property"))
    };
    let written = token(&log("write")).expect("the write phase prints its token");
    assert_eq!(written.len(), 32);
    assert_eq!(token(&log("check")), Some(written.clone()));
    // The last phase booted the disk alone (no kernel, no CD): its boot sector read it.
    assert_eq!(token(&log("boot")), Some(written));
    let boot_argv = property(&report, "disk-phases", "phase.boot.qemu-cmdline").unwrap();
    assert!(
        boot_argv.contains("-boot c") && !boot_argv.contains("-kernel"),
        "{boot_argv}"
    );
    assert_ne!(
        log("write"),
        log("check"),
        "each phase has its own console log"
    );
    let disk = property(&report, "disk-phases", "disk").expect("disk property");
    assert!(disk.ends_with("disk-phases/disk.qcow2") && Path::new(&disk).is_file());
    // Phase boundaries and the phase's progress lines are shown while it runs.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("disk-phases/boot: phase 4 of 4 starts (the disk)"),
        "{stderr}"
    );
    assert!(stderr.contains("disk-phases/write: # token "), "{stderr}");
    // The EL gate beside it: skipped with the reason.
    assert!(
        all.contains(&("alma-install".into(), "boot".into(), "skip".into())),
        "{all:#?}"
    );
}

#[test]
fn a_phase_that_fails_stops_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("check-first.toml");
    // Checking a fresh disk for a marker must fail; the write phase then never runs.
    let text_of = std::fs::read_to_string(fixture()).unwrap();
    let check_first = text_of.split("[[phase]]").next().unwrap().to_string()
        + "[[phase]]\nname = \"check\"\n[[phase.program]]\nname = \"disk_check\"\n\
           source = \"disk_marker.c\"\nargs = [\"check\", \"/dev/vda\"]\n\
           [[phase]]\nname = \"write\"\n[[phase.program]]\nname = \"disk_write\"\n\
           source = \"disk_marker.c\"\nargs = [\"write\", \"/dev/vda\"]\n";
    std::fs::write(&scenario, check_first).unwrap();
    let xml = dir.path().join("junit.xml");
    let mut cmd = xsc();
    cmd.arg("test")
        .arg(&scenario)
        .args(["--accel", "tcg", "--junit"])
        .arg(&xml);
    let out = run(cmd, VM);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = cases(&junit(&xml));
    assert!(
        all.contains(&(
            "check-first".into(),
            "check.disk_check.marker_seen".into(),
            "failure:assertion".into()
        )),
        "{all:#?}"
    );
    assert!(
        all.contains(&("check-first".into(), "write.boot".into(), "skip".into())),
        "{all:#?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("✗ check.disk_check"), "{}", text(&out));
}

#[test]
fn el_gates_without_a_base_iso_are_not_run_and_alone_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    let mut cmd = xsc();
    cmd.args(["test", "--tag", "el", "--junit"]).arg(&xml);
    let out = run(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for d in ["alma", "rocky"] {
        assert!(
            stdout.contains(&format!("N/A   {d}-install — not run, not applicable")),
            "{}",
            text(&out)
        );
    }
    let xml_text = std::fs::read_to_string(&xml).unwrap();
    let all = cases(&junit(&xml));
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().all(|(_, c, k)| c == "boot" && k == "skip"));
    assert!(
        xml_text.contains("skipped message=\"not applicable: the AlmaLinux 9 base ISO is not configured (add [sources.alma]"),
        "{xml_text}"
    );
}

fn config_in(dir: &Path, scenarios: &Path) -> PathBuf {
    let base = std::fs::read_to_string(repo().join("xsc.toml")).unwrap();
    let base: String = base
        .lines()
        .filter(|l| {
            !l.starts_with("out =") && !l.starts_with("publish =") && !l.starts_with("scenarios =")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let paths = format!(
        "[paths]\nscenarios = \"{}\"\nguest-tests = \"{}\"\nout = \"{}\"\npublish = \"{}\"\n",
        scenarios.display(),
        repo().join("guest-tests").display(),
        dir.join("out").display(),
        dir.join("pub").display()
    );
    let file = dir.join("xsc.toml");
    std::fs::write(&file, base.replace("[paths]\n", &paths)).unwrap();
    for tree in ["patches", "recipes"] {
        std::os::unix::fs::symlink(repo().join(tree), dir.join(tree)).unwrap();
    }
    file
}

#[test]
fn candidate_publishes_without_the_distributions_it_cannot_build_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    // One cheap gate on the XSC kernel, and the two EL install gates as shipped.
    std::fs::write(
        scenarios.join("kernel-sanity.toml"),
        "tags = [\"release-gate\"]\n[image]\nkind = \"xsc-kernel\"\n[machine]\nmemory = \"256M\"\n\
         [[program]]\nname = \"sanity\"\nsource = \"sanity.c\"\ntimeout = \"60s\"\n",
    )
    .unwrap();
    for d in ["alma", "rocky"] {
        std::fs::copy(
            repo().join(format!("scenarios/{d}-install.toml")),
            scenarios.join(format!("{d}-install.toml")),
        )
        .unwrap();
    }
    let cfg = config_in(dir.path(), &scenarios);
    // A repository signing key, made here as a user would export theirs.
    let fpr = repo_signing_key(dir.path());
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str(&format!(
        "\n[packages]\ngpg-keyring = \"repo-signing.asc\"\ngpg-fingerprint = \"{fpr}\"\n"
    ));
    std::fs::write(&cfg, text_cfg).unwrap();
    // A release names the commit its scenarios come from.
    for args in [
        &["init", "-q"][..],
        &["add", "scenarios"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "gates",
        ],
    ] {
        let git = Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(git.status.success(), "{git:?}");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(&cfg)
        .args(["candidate", "--accel", "tcg"]);
    let out = run(cmd, Duration::from_secs(40 * 60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("candidate: published without alma, rocky (not built: alma: the AlmaLinux 9 base ISO is not configured"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("N/A   alma-install"), "{}", text(&out));
    let published: Vec<PathBuf> = std::fs::read_dir(dir.path().join("pub/candidates"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    let rel = &published[0];
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rel.join("manifest.json")).unwrap()).unwrap();
    let not_built = &manifest["not-built"];
    assert!(
        not_built["alma"]
            .as_str()
            .is_some_and(|w| w.contains("[sources.alma]")),
        "{manifest:#}"
    );
    assert!(not_built["rocky"].is_string(), "{manifest:#}");
    assert_eq!(manifest["tests"]["skipped"], 0, "{manifest:#}");
    // No EL ISO was shipped; the kernel was.
    let names: Vec<String> = std::fs::read_dir(rel)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".bzImage")), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("alma") || n.contains("rocky")),
        "{names:?}"
    );
    // The published JUnit says why the EL gates did not run.
    let xml = std::fs::read_to_string(rel.join("junit.xml")).unwrap();
    assert!(
        xml.contains(
            "<skipped message=\"not applicable: the Rocky Linux 9 base ISO is not configured"
        ),
        "{xml}"
    );
    // The package repositories are published beside the artifacts, GPG-signed with the
    // configured key, and listed in the minisign-signed SHA256SUMS.
    assert!(
        stdout.contains(&format!(
            "candidate: apt/ and rpm/ repositories, GPG-signed by {fpr}"
        )),
        "{}",
        text(&out)
    );
    assert!(
        manifest["repository-signing"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("GPG-signed by {fpr}"))),
        "{manifest:#}"
    );
    let keyring = dir.path().join("published.gpg");
    let dearmor = Command::new("gpg")
        .arg("--dearmor")
        .arg("--output")
        .arg(&keyring)
        .arg(rel.join("apt/xsc-archive-keyring.asc"))
        .output()
        .unwrap();
    assert!(dearmor.status.success(), "{dearmor:?}");
    for (sig, data) in [
        ("apt/InRelease", None),
        ("apt/Release.gpg", Some("apt/Release")),
        (
            "rpm/repodata/repomd.xml.asc",
            Some("rpm/repodata/repomd.xml"),
        ),
    ] {
        let mut gpgv = Command::new("gpgv");
        gpgv.arg("--keyring").arg(&keyring).arg(rel.join(sig));
        if let Some(d) = data {
            gpgv.arg(rel.join(d));
        }
        let o = gpgv.output().unwrap();
        assert!(
            o.status.success(),
            "gpgv {sig}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let rpms: Vec<PathBuf> = std::fs::read_dir(rel.join("rpm"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rpm"))
        .collect();
    assert_eq!(rpms.len(), 3, "{rpms:?}");
    let db = dir.path().join("rpmdb");
    let import = Command::new("rpm")
        .arg("--dbpath")
        .arg(&db)
        .arg("--import")
        .arg(rel.join("rpm/RPM-GPG-KEY-xsc"))
        .output()
        .unwrap();
    assert!(import.status.success(), "{import:?}");
    let k = Command::new("rpm")
        .arg("--dbpath")
        .arg(&db)
        .arg("-K")
        .args(&rpms)
        .output()
        .unwrap();
    let k = String::from_utf8_lossy(&k.stdout);
    assert_eq!(k.matches("digests signatures OK").count(), 3, "{k}");
    let sums = std::fs::read_to_string(rel.join("SHA256SUMS")).unwrap();
    for f in [
        "apt/InRelease",
        "apt/Packages",
        "rpm/repodata/repomd.xml.asc",
    ] {
        assert!(sums.contains(&format!("  {f}\n")), "{f} in\n{sums}");
    }
    // And the release verifies with the manifest's new field.
    let pubkey = xsc_release::dev_key_paths(&xsc_release::default_cache_dir()).1;
    let mut cmd = xsc();
    cmd.arg("verify").arg(rel).arg("--pubkey").arg(&pubkey);
    let out = run(cmd, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A changed repository file is caught by verify.
    std::fs::write(rel.join("apt/Packages"), "Package: evil\n").unwrap();
    let mut cmd = xsc();
    cmd.arg("verify").arg(rel).arg("--pubkey").arg(&pubkey);
    let out = run(cmd, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
