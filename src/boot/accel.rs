//! Choosing the accelerator. `auto` does not trust that `/dev/kvm` exists: on some hosts
//! (this project's CI among them) it opens fine but guests stall, on others QEMU aborts on
//! KVM init. So `auto` opens the device, then boots a kernel under KVM for a few seconds
//! and waits for its first console line. What it found is one of five [`KvmMode`]s, each
//! with a sentence a user can act on; the verdict is cached per host boot
//! (`/proc/sys/kernel/random/boot_id`) and QEMU binary, and the choice, the mode and its
//! reason go into the log and the JUnit properties (`accel`, `accel.probe`, `accel.reason`).
//!
//! The probe's inputs are a [`KvmHost`] (device node, QEMU binary, wait) so that tests can
//! force every mode on any host: a device path that is missing or not openable, a QEMU
//! wrapper that aborts, stalls or prints the first kernel line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::boot::qemu_args::{Accel, kvm_probe_args};
use crate::sys::process::{self, Cmd, Output};

/// How long the probe waits for the kernel's first line. A working KVM prints it in well
/// under a second; TCG would take ~2 s, so 8 s is generous without slowing every run.
pub(crate) const PROBE_WAIT: Duration = Duration::from_secs(8);

/// Where KVM's device node is; `XSC_KVM_DEVICE` overrides it (a container that passes the
/// node elsewhere, and the tests that force each probe mode).
pub(crate) const KVM_DEVICE: &str = "/dev/kvm";

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelRequest {
    /// Probe and decide.
    Auto,
    /// Force KVM.
    Kvm,
    /// Force TCG.
    Tcg,
}

impl AccelRequest {
    /// Parses `auto|kvm|tcg`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(AccelRequest::Auto),
            "kvm" => Some(AccelRequest::Kvm),
            "tcg" => Some(AccelRequest::Tcg),
            _ => None,
        }
    }
}

/// What the KVM probe found on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum KvmMode {
    /// The device node does not exist.
    NoDevice {
        /// The path looked at.
        device: PathBuf,
    },
    /// The node exists but cannot be opened read-write.
    NotOpenable {
        /// The path.
        device: PathBuf,
        /// The OS error, in words.
        error: String,
        /// Whether the error was a permission problem (the common, fixable case).
        permission: bool,
    },
    /// QEMU could not be started for the probe at all.
    QemuMissing {
        /// The binary.
        qemu: PathBuf,
        /// Why it did not start.
        error: String,
    },
    /// QEMU exited or aborted during KVM init, before the guest printed its first line.
    QemuFailed {
        /// The exit status, as the OS reports it.
        status: String,
        /// QEMU's stderr, trimmed.
        stderr: String,
    },
    /// QEMU ran under KVM but the guest printed nothing within the wait.
    Stalled {
        /// How long the probe waited, in seconds.
        waited_s: u64,
    },
    /// The guest printed its first kernel line under KVM.
    Works {
        /// After how many milliseconds.
        first_line_ms: u64,
    },
}

impl KvmMode {
    /// A short stable name for JUnit (`accel.probe`) and scripts.
    pub fn name(&self) -> &'static str {
        match self {
            KvmMode::NoDevice { .. } => "no-device",
            KvmMode::NotOpenable { .. } => "not-openable",
            KvmMode::QemuMissing { .. } => "qemu-missing",
            KvmMode::QemuFailed { .. } => "qemu-failed",
            KvmMode::Stalled { .. } => "stalled",
            KvmMode::Works { .. } => "works",
        }
    }

    /// Whether guests can run under KVM.
    pub fn usable(&self) -> bool {
        matches!(self, KvmMode::Works { .. })
    }

    /// What was found, in one sentence that starts with "KVM probe".
    pub fn finding(&self) -> String {
        match self {
            KvmMode::NoDevice { device } => {
                format!("KVM probe: {} does not exist", device.display())
            }
            KvmMode::NotOpenable { device, error, .. } => format!(
                "KVM probe: {} exists but cannot be opened read-write ({error})",
                device.display()
            ),
            KvmMode::QemuMissing { qemu, error } => {
                format!("KVM probe could not start {} ({error})", qemu.display())
            }
            KvmMode::QemuFailed { status, stderr } => {
                let stderr = stderr.lines().take(3).collect::<Vec<_>>().join(" / ");
                format!("KVM probe: QEMU exited on KVM init ({status}): {stderr}")
            }
            KvmMode::Stalled { waited_s } => format!(
                "KVM probe: the device opens but a KVM guest printed nothing within {waited_s}s (stalled KVM)"
            ),
            KvmMode::Works { first_line_ms } => {
                format!("KVM probe printed the first kernel line after {first_line_ms} ms")
            }
        }
    }

    /// What a user can do about it (empty when KVM works).
    pub fn advice(&self) -> &'static str {
        match self {
            KvmMode::NoDevice { .. } => {
                "load the module (modprobe kvm_intel or kvm_amd), enable virtualization in the firmware, or nested virtualization on a VM host"
            }
            KvmMode::NotOpenable {
                permission: true, ..
            } => {
                "give your user access: add it to group kvm, or a udev rule KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0666\" (docs/config.md)"
            }
            KvmMode::NotOpenable { .. } => {
                "the node is not a working KVM device: check that the kvm module is loaded and the node is the real one"
            }
            KvmMode::QemuMissing { .. } => "install qemu-system-x86",
            KvmMode::QemuFailed { .. } => {
                "this host's KVM is broken for QEMU (a CPU feature or MSR it cannot set); runs use TCG, which is correct but slower"
            }
            KvmMode::Stalled { .. } => {
                "this host's KVM is broken (guests hang); runs use TCG, which is correct but slower"
            }
            KvmMode::Works { .. } => "",
        }
    }
}

/// The inputs of the probe: which device node and QEMU binary, how long to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmHost {
    /// KVM's device node.
    pub device: PathBuf,
    /// The QEMU binary (a bare name is looked up on `PATH`).
    pub qemu: PathBuf,
    /// How long to wait for the guest's first line.
    pub wait: Duration,
}

impl KvmHost {
    /// This host: `XSC_KVM_DEVICE` or `/dev/kvm`, the given QEMU, [`PROBE_WAIT`].
    pub fn new(qemu: &Path) -> Self {
        KvmHost {
            device: std::env::var_os("XSC_KVM_DEVICE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(KVM_DEVICE)),
            qemu: qemu.to_path_buf(),
            wait: PROBE_WAIT,
        }
    }
}

/// The decision and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelChoice {
    /// `kvm` or `tcg`.
    pub accel: String,
    /// Why, in a sentence.
    pub reason: String,
    /// What the KVM probe found, when `auto` ran it.
    #[serde(default)]
    pub probe: Option<KvmMode>,
}

impl AccelChoice {
    /// The accelerator.
    pub fn accel(&self) -> Accel {
        if self.accel == "kvm" {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    fn new(accel: Accel, reason: impl Into<String>) -> Self {
        AccelChoice {
            accel: accel.as_str().into(),
            reason: reason.into(),
            probe: None,
        }
    }

    /// The `auto` choice for what the probe found.
    pub fn from_probe(mode: KvmMode) -> Self {
        let accel = if mode.usable() {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        let reason = if mode.usable() {
            format!("auto: {}", mode.finding())
        } else {
            format!("auto: {}; using tcg", mode.finding())
        };
        AccelChoice {
            accel: accel.as_str().into(),
            reason,
            probe: Some(mode),
        }
    }

    /// The probe mode's name, or `none` when no probe ran.
    pub fn probe_name(&self) -> &'static str {
        self.probe.as_ref().map_or("none", KvmMode::name)
    }
}

/// Decides the accelerator. `probe_kernel` is booted for the liveness probe; `host_dir`
/// caches the probe verdict for this host boot.
pub async fn resolve(
    req: AccelRequest,
    host: &KvmHost,
    probe_kernel: &Path,
    host_dir: &Path,
) -> AccelChoice {
    match req {
        AccelRequest::Tcg => AccelChoice::new(Accel::Tcg, "requested: tcg"),
        AccelRequest::Kvm => AccelChoice::new(Accel::Kvm, "requested: kvm"),
        AccelRequest::Auto => {
            let cache = probe_cache_file(host, host_dir);
            // The device checks are cheap and change without a reboot (a udev rule, a
            // module load): only the boot probe's verdict is cached.
            if let Some(mode) = device_mode(&host.device) {
                return AccelChoice::from_probe(mode);
            }
            if let Some(hit) = cache
                .as_ref()
                .and_then(|f| std::fs::read(f).ok())
                .and_then(|b| serde_json::from_slice::<AccelChoice>(&b).ok())
            {
                return AccelChoice {
                    reason: format!("{} (cached for this host boot)", hit.reason),
                    ..hit
                };
            }
            let choice = AccelChoice::from_probe(probe(host, probe_kernel, host_dir).await);
            if let Some(file) = cache {
                let _ = std::fs::create_dir_all(host_dir);
                // Another run may read it at the same time: whole or not at all.
                let _ = crate::sys::atomic_file::write(
                    &file,
                    &serde_json::to_vec(&choice).unwrap_or_default(),
                );
            }
            choice
        }
    }
}

/// Runs the whole probe without the cache (for `doctor`, which reports what it finds now).
pub(crate) async fn probe_now(host: &KvmHost, probe_kernel: &Path, host_dir: &Path) -> KvmMode {
    match device_mode(&host.device) {
        Some(mode) => mode,
        None => probe(host, probe_kernel, host_dir).await,
    }
}

/// `Some` when the device alone decides: missing or not openable.
pub(crate) fn device_mode(device: &Path) -> Option<KvmMode> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
    {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(KvmMode::NoDevice {
            device: device.to_path_buf(),
        }),
        Err(e) => Some(KvmMode::NotOpenable {
            device: device.to_path_buf(),
            permission: e.kind() == std::io::ErrorKind::PermissionDenied,
            error: e.to_string(),
        }),
    }
}

/// The cache file: per host boot, device and QEMU binary (a QEMU upgrade can fix or break
/// KVM, so its identity is part of the key).
fn probe_cache_file(host: &KvmHost, host_dir: &Path) -> Option<PathBuf> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let qemu = process::which(&host.qemu.to_string_lossy())?;
    let meta = std::fs::metadata(&qemu).ok()?;
    let ident = format!(
        "{}\0{}\0{}\0{:?}",
        host.device.display(),
        qemu.display(),
        meta.len(),
        meta.modified().ok()
    );
    let digest = crate::sys::cache::sha256_bytes(ident.as_bytes());
    Some(host_dir.join(format!(
        "kvm-probe-{}-{}.json",
        boot_id.trim(),
        &digest[..12]
    )))
}

/// Boots `kernel` under KVM and waits for "Linux version" on the serial port.
async fn probe(host: &KvmHost, kernel: &Path, host_dir: &Path) -> KvmMode {
    let _ = std::fs::create_dir_all(host_dir);
    let serial = host_dir.join(format!("kvm-probe-{}.serial", std::process::id()));
    let _ = std::fs::remove_file(&serial);
    let cmd = Cmd::new(kvm_probe_args(&host.qemu, kernel, &serial));
    let stderr = host_dir.join(format!("kvm-probe-{}.stderr", std::process::id()));
    let _ = std::fs::remove_file(&stderr);
    let mut child = match process::spawn(&cmd, Output::File(stderr.clone())) {
        Ok(c) => c,
        Err(e) => {
            return KvmMode::QemuMissing {
                qemu: host.qemu.clone(),
                error: e.to_string(),
            };
        }
    };
    let started = tokio::time::Instant::now();
    let mode = loop {
        let text = std::fs::read(&serial).unwrap_or_default();
        if text.windows(13).any(|w| w == b"Linux version") {
            break KvmMode::Works {
                first_line_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            let why = std::fs::read_to_string(&stderr).unwrap_or_default();
            break KvmMode::QemuFailed {
                status: status.to_string(),
                stderr: why.trim().to_string(),
            };
        }
        if started.elapsed() >= host.wait {
            break KvmMode::Stalled {
                waited_s: host.wait.as_secs(),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.terminate(Duration::from_secs(1)).await;
    let _ = std::fs::remove_file(&serial);
    let _ = std::fs::remove_file(&stderr);
    tracing::info!(mode = mode.name(), finding = %mode.finding(), "KVM probe");
    mode
}

/// Scales a TCG clock for the accelerator: KVM boots roughly five times faster.
pub(crate) fn scale(tcg: Duration, accel: Accel) -> Duration {
    match accel {
        Accel::Tcg => tcg,
        Accel::Kvm => (tcg / 5).max(Duration::from_secs(10)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake QEMU: a shell script whose body sees the probe's argv as "$@".
    fn fake_qemu(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("qemu-system-x86_64");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    }

    /// A device node that opens read-write for anyone, root included: a regular file
    /// stands in for /dev/kvm, so the probe goes on to boot.
    fn openable_device(dir: &Path) -> PathBuf {
        let p = dir.join("kvm");
        std::fs::write(&p, b"").unwrap();
        p
    }

    fn host(device: PathBuf, qemu: PathBuf) -> KvmHost {
        KvmHost {
            device,
            qemu,
            wait: Duration::from_secs(2),
        }
    }

    async fn auto(h: &KvmHost, dir: &Path) -> AccelChoice {
        resolve(
            AccelRequest::Auto,
            h,
            Path::new("/k/bzImage"),
            &dir.join("host"),
        )
        .await
    }

    /// The serial file is the argument after `-serial file:`; the fake writes to it.
    const SERIAL: &str = r#"for a in "$@"; do case "$a" in file:*) s="${a#file:}";; esac; done"#;

    #[tokio::test]
    async fn explicit_requests_are_not_probed() {
        let h = KvmHost::new(Path::new("/nonexistent"));
        let c = resolve(AccelRequest::Tcg, &h, Path::new("/x"), Path::new("/x")).await;
        assert_eq!(
            (c.accel(), c.reason.as_str(), c.probe_name()),
            (Accel::Tcg, "requested: tcg", "none")
        );
        assert_eq!(AccelRequest::parse("hvf"), None);
    }

    #[tokio::test]
    async fn no_device_falls_back_without_booting() {
        let d = tempfile::tempdir().unwrap();
        // A QEMU that would fail the test if the probe ran it.
        let q = fake_qemu(d.path(), "touch \"$0.ran\"; exit 1");
        let c = auto(&host(d.path().join("absent-kvm"), q.clone()), d.path()).await;
        assert_eq!((c.accel(), c.probe_name()), (Accel::Tcg, "no-device"));
        assert!(
            c.reason.contains("absent-kvm does not exist"),
            "{}",
            c.reason
        );
        assert!(c.reason.ends_with("; using tcg"), "{}", c.reason);
        assert!(!d.path().join("qemu-system-x86_64.ran").exists());
    }

    #[tokio::test]
    async fn device_that_does_not_open_falls_back_and_says_why() {
        let d = tempfile::tempdir().unwrap();
        // A directory never opens read-write, even for root (EISDIR).
        let dev = d.path().join("kvm");
        std::fs::create_dir(&dev).unwrap();
        let q = fake_qemu(d.path(), "exit 1");
        let c = auto(&host(dev, q), d.path()).await;
        assert_eq!((c.accel(), c.probe_name()), (Accel::Tcg, "not-openable"));
        assert!(
            c.reason.contains("cannot be opened read-write"),
            "{}",
            c.reason
        );
        let Some(KvmMode::NotOpenable { permission, .. }) = &c.probe else {
            panic!("{c:?}")
        };
        assert!(!permission);
    }

    #[test]
    fn permission_problems_get_the_group_advice() {
        let m = KvmMode::NotOpenable {
            device: "/dev/kvm".into(),
            error: "Permission denied (os error 13)".into(),
            permission: true,
        };
        assert!(m.advice().contains("group kvm"));
        assert!(!m.usable());
    }

    #[tokio::test]
    async fn qemu_aborting_on_kvm_init_falls_back_with_its_stderr() {
        let d = tempfile::tempdir().unwrap();
        let q = fake_qemu(
            d.path(),
            "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; kill -ABRT $$",
        );
        let c = auto(&host(openable_device(d.path()), q), d.path()).await;
        assert_eq!((c.accel(), c.probe_name()), (Accel::Tcg, "qemu-failed"));
        assert!(c.reason.contains("failed to set MSR"), "{}", c.reason);
        assert!(c.reason.contains("SIGABRT"), "{}", c.reason);
    }

    #[tokio::test]
    async fn qemu_exiting_with_an_error_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let q = fake_qemu(
            d.path(),
            "echo 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Invalid argument' >&2; exit 1",
        );
        let c = auto(&host(openable_device(d.path()), q), d.path()).await;
        assert_eq!((c.accel(), c.probe_name()), (Accel::Tcg, "qemu-failed"));
        assert!(
            c.reason.contains("failed to initialize kvm"),
            "{}",
            c.reason
        );
    }

    #[tokio::test]
    async fn a_guest_that_stalls_under_kvm_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let q = fake_qemu(d.path(), "exec sleep 30");
        let c = auto(&host(openable_device(d.path()), q), d.path()).await;
        assert_eq!((c.accel(), c.probe_name()), (Accel::Tcg, "stalled"));
        assert!(
            c.reason.contains("printed nothing within 2s"),
            "{}",
            c.reason
        );
    }

    #[tokio::test]
    async fn kvm_that_works_is_chosen_and_cached_for_this_boot() {
        let d = tempfile::tempdir().unwrap();
        let q = fake_qemu(
            d.path(),
            &format!(
                "{SERIAL}\ntouch \"$0.ran\"; echo 'Linux version 6.1.0 (fake)' > \"$s\"; exec sleep 30"
            ),
        );
        let h = host(openable_device(d.path()), q);
        let c = auto(&h, d.path()).await;
        assert_eq!((c.accel(), c.probe_name()), (Accel::Kvm, "works"), "{c:?}");
        assert!(c.reason.contains("first kernel line"), "{}", c.reason);
        // The second resolve reads the cache and does not boot again.
        std::fs::remove_file(d.path().join("qemu-system-x86_64.ran")).unwrap();
        let again = auto(&h, d.path()).await;
        assert_eq!(again.accel(), Accel::Kvm);
        assert!(again.reason.ends_with("(cached for this host boot)"));
        assert!(!d.path().join("qemu-system-x86_64.ran").exists());
    }

    #[tokio::test]
    async fn a_missing_qemu_is_its_own_mode() {
        let d = tempfile::tempdir().unwrap();
        let mode = probe_now(
            &host(openable_device(d.path()), d.path().join("no-such-qemu")),
            Path::new("/k"),
            d.path(),
        )
        .await;
        assert_eq!(mode.name(), "qemu-missing");
        assert_eq!(mode.advice(), "install qemu-system-x86");
    }

    #[test]
    fn every_finding_names_the_kvm_probe() {
        for m in [
            KvmMode::NoDevice {
                device: "/dev/kvm".into(),
            },
            KvmMode::QemuFailed {
                status: "signal: 6".into(),
                stderr: "a\nb".into(),
            },
            KvmMode::Stalled { waited_s: 8 },
            KvmMode::Works { first_line_ms: 5 },
        ] {
            assert!(m.finding().contains("KVM probe"), "{}", m.finding());
        }
    }

    #[test]
    fn kvm_clocks_are_shorter_but_not_tiny() {
        assert_eq!(
            scale(Duration::from_secs(120), Accel::Kvm),
            Duration::from_secs(24)
        );
        assert_eq!(
            scale(Duration::from_secs(20), Accel::Kvm),
            Duration::from_secs(10)
        );
        assert_eq!(
            scale(Duration::from_secs(20), Accel::Tcg),
            Duration::from_secs(20)
        );
    }
}
