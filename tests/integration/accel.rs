//! The accelerator choice on every host, whatever its real KVM does: each of the KVM
//! probe's modes is forced with a QEMU wrapper first on `PATH` (it plays the mode for the
//! probe's boot and runs the real QEMU under TCG for everything else) and a device path in
//! `XSC_KVM_DEVICE`. `doctor` must name each mode; `test --accel auto` must fall back to TCG
//! with the reason in JUnit, or use KVM when the probe saw the first kernel line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{junit, property, run, text, which, xsc};

const VM: Duration = Duration::from_secs(300);

/// A cache for one test that shares the machine's stages (so the stock kernel is fetched
/// once), with its own `host/` directory so no probe verdict is shared. Returns the stock
/// kernel's path.
pub(crate) fn stock_kernel_in(cache: &Path) -> PathBuf {
    std::fs::create_dir_all(cache).unwrap();
    let shared = xsc_release::default_cache_dir();
    std::fs::create_dir_all(shared.join("stages")).unwrap();
    std::os::unix::fs::symlink(shared.join("stages"), cache.join("stages")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (kernel, _) = rt
        .block_on(xsc_release::ensure_stock_kernel(&xsc_release::Cache::new(
            &shared,
        )))
        .unwrap();
    kernel.vmlinuz
}

/// What the wrapper does when the probe boots it (the probe's argv has `-serial file:…`).
#[derive(Clone, Copy)]
enum Mode {
    Abort,
    Exit,
    Stall,
    Works,
}

impl Mode {
    fn probe_body(self) -> &'static str {
        match self {
            Mode::Abort => {
                "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; kill -ABRT $$"
            }
            Mode::Exit => {
                "echo 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Operation not permitted' >&2; exit 1"
            }
            Mode::Stall => "exec sleep 60",
            Mode::Works => "echo 'Linux version 6.1.0 (fake KVM)' > \"$serial\"; exec sleep 60",
        }
    }
}

/// Writes the wrapper into `dir/bin` and returns a `PATH` with it first.
fn wrapper_path(dir: &Path, mode: Mode) -> String {
    let real = which("qemu-system-x86_64").expect("qemu-system-x86 is installed by .ci/run");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/bin/bash
# Test wrapper: plays one KVM failure mode for the probe, runs real QEMU under TCG otherwise.
probe=0
for a in "$@"; do case "$a" in file:*) probe=1; serial="${{a#file:}}";; esac; done
if [ "$probe" = 1 ]; then
  {body}
fi
args=(); prev=
for a in "$@"; do
  if [ "$prev" = -accel ] && [ "$a" = kvm ]; then a=tcg; fi
  if [ "$prev" = -cpu ] && [ "$a" = host ]; then a=max; fi
  args+=("$a"); prev="$a"
done
exec {real} "${{args[@]}}"
"#,
        body = mode.probe_body(),
        real = real.display()
    );
    let path = bin.join("qemu-system-x86_64");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A path that opens read-write for anyone (root included), standing in for a KVM node.
fn openable_device(dir: &Path) -> PathBuf {
    let p = dir.join("kvm-node");
    std::fs::write(&p, b"").unwrap();
    p
}

/// `doctor --kernel K` with the given device and PATH; returns its `kvm` line and the
/// `what to do` line after it.
fn doctor_kvm(dir: &Path, device: &Path, path: Option<String>) -> (String, String) {
    let mut cmd = xsc();
    cmd.env("XSC_CACHE_DIR", dir.join("cache"))
        .env("XSC_KVM_DEVICE", device)
        .args(["doctor", "--kernel", "/boot/not-booted-by-the-fakes"]);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = run(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("kvm "));
    let kvm = lines
        .next()
        .unwrap_or_else(|| panic!("no kvm line:\n{}", text(&out)))
        .to_string();
    let advice = lines.next().unwrap_or_default().to_string();
    (kvm, advice)
}

#[test]
fn doctor_names_every_kvm_mode_in_words_a_user_can_act_on() {
    let d = tempfile::tempdir().unwrap();
    let (kvm, advice) = doctor_kvm(d.path(), &d.path().join("no-kvm-here"), None);
    assert!(kvm.starts_with("kvm     no-device — KVM probe:"), "{kvm}");
    assert!(advice.contains("modprobe kvm_intel"), "{advice}");

    // A directory never opens read-write, even for root.
    let dir_node = d.path().join("kvm-dir");
    std::fs::create_dir(&dir_node).unwrap();
    let (kvm, advice) = doctor_kvm(d.path(), &dir_node, None);
    assert!(kvm.starts_with("kvm     not-openable — "), "{kvm}");
    assert!(kvm.contains("cannot be opened read-write"), "{kvm}");
    assert!(advice.contains("what to do:"), "{advice}");

    let node = openable_device(d.path());
    for (mode, name, words) in [
        (Mode::Abort, "qemu-failed", "SIGABRT"),
        (Mode::Exit, "qemu-failed", "failed to initialize kvm"),
        (Mode::Stall, "stalled", "printed nothing within 8s"),
        (Mode::Works, "works", "first kernel line"),
    ] {
        let md = tempfile::tempdir().unwrap();
        let (kvm, advice) = doctor_kvm(md.path(), &node, Some(wrapper_path(md.path(), mode)));
        assert!(kvm.starts_with(&format!("kvm     {name} — ")), "{kvm}");
        assert!(kvm.contains(words), "{kvm}");
        if name == "works" {
            assert!(
                advice.starts_with("accel   `--accel auto` uses kvm"),
                "{advice}"
            );
        } else {
            assert!(advice.contains("runs use TCG"), "{advice}");
        }
    }
}

/// A full `test --accel auto` run through each forced mode that reaches QEMU.
fn auto_run(mode: Mode) -> (std::process::Output, quick_junit::Report) {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let kernel = stock_kernel_in(&cache);
    let xml = d.path().join("junit.xml");
    let mut cmd = xsc();
    cmd.env("XSC_CACHE_DIR", &cache)
        .env("XSC_KVM_DEVICE", openable_device(d.path()))
        .env("PATH", wrapper_path(d.path(), mode))
        .arg("test")
        .arg("--kernel")
        .arg(&kernel)
        // The "KVM" of the works mode is TCG underneath: keep TCG's clocks.
        .args([
            "--accel",
            "auto",
            "--boot-timeout",
            "120s",
            "--silence-timeout",
            "120s",
        ])
        .arg("--junit")
        .arg(&xml);
    let out = run(cmd, VM);
    let report = junit(&xml);
    (out, report)
}

#[test]
fn auto_falls_back_to_tcg_when_qemu_aborts_on_kvm_init() {
    let (out, report) = auto_run(Mode::Abort);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(property(&report, "adhoc", "accel").as_deref(), Some("tcg"));
    assert_eq!(
        property(&report, "adhoc", "accel.probe").as_deref(),
        Some("qemu-failed")
    );
    let reason = property(&report, "adhoc", "accel.reason").unwrap();
    assert!(
        reason.contains("SIGABRT") && reason.ends_with("; using tcg"),
        "{reason}"
    );
}

#[test]
fn auto_uses_kvm_when_the_probe_sees_the_first_kernel_line() {
    let (out, report) = auto_run(Mode::Works);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(property(&report, "adhoc", "accel").as_deref(), Some("kvm"));
    assert_eq!(
        property(&report, "adhoc", "accel.probe").as_deref(),
        Some("works")
    );
    let cmdline = property(&report, "adhoc", "qemu-cmdline").unwrap_or_default();
    assert!(cmdline.contains("-accel kvm"), "{cmdline}");
}

/// The probe's verdict is cached per host boot *and QEMU binary*: a different QEMU on PATH
/// is probed afresh, never judged by another binary's verdict.
#[test]
fn the_cached_verdict_belongs_to_one_qemu_binary() {
    let d = tempfile::tempdir().unwrap();
    let node = openable_device(d.path());
    let kernel = d.path().join("k");
    std::fs::write(&kernel, b"").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let host_dir = d.path().join("host");
    let mut verdicts = Vec::new();
    for (sub, mode) in [("a", Mode::Abort), ("b", Mode::Works)] {
        let md = d.path().join(sub);
        let path = wrapper_path(&md, mode);
        let qemu = PathBuf::from(path.split(':').next().unwrap()).join("qemu-system-x86_64");
        let host = xsc_release::KvmHost {
            device: node.clone(),
            qemu,
            wait: Duration::from_secs(8),
        };
        let c = rt.block_on(xsc_release::resolve_accel(
            xsc_release::AccelRequest::Auto,
            &host,
            &kernel,
            &host_dir,
        ));
        verdicts.push(c.probe_name());
    }
    assert_eq!(verdicts, ["qemu-failed", "works"]);
}
