//! Choosing the accelerator. `auto` does not trust that `/dev/kvm` exists: on some hosts
//! (this project's CI among them) it opens fine but guests hang. So `auto` opens it, then
//! boots a kernel under KVM for a few seconds and waits for its first console line. The
//! verdict is cached per host boot (`/proc/sys/kernel/random/boot_id`), and the choice and
//! its reason go into the log and the JUnit properties.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::boot::qemu_args::{Accel, kvm_probe_args};
use crate::process::{self, Cmd, Output};

/// How long the probe waits for the kernel's first line. A working KVM prints it in well
/// under a second; TCG would take ~2 s, so 8 s is generous without slowing every run.
pub const PROBE_WAIT: Duration = Duration::from_secs(8);

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

/// The decision and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelChoice {
    /// `kvm` or `tcg`.
    pub accel: String,
    /// Why, in a sentence.
    pub reason: String,
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
        }
    }
}

/// Decides the accelerator. `probe_kernel` is booted for the liveness probe; `host_dir`
/// caches the probe verdict for this host boot.
pub async fn resolve(
    req: AccelRequest,
    qemu: &Path,
    probe_kernel: &Path,
    host_dir: &Path,
) -> AccelChoice {
    match req {
        AccelRequest::Tcg => AccelChoice::new(Accel::Tcg, "requested: tcg"),
        AccelRequest::Kvm => AccelChoice::new(Accel::Kvm, "requested: kvm"),
        AccelRequest::Auto => {
            if let Err(e) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
            {
                return AccelChoice::new(
                    Accel::Tcg,
                    format!("auto: /dev/kvm unusable ({e}); using tcg"),
                );
            }
            let cache = probe_cache_file(host_dir);
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
            let choice = probe(qemu, probe_kernel, host_dir).await;
            if let Some(file) = cache {
                let _ = std::fs::create_dir_all(host_dir);
                let _ = std::fs::write(file, serde_json::to_vec(&choice).unwrap_or_default());
            }
            choice
        }
    }
}

fn probe_cache_file(host_dir: &Path) -> Option<PathBuf> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(host_dir.join(format!("kvm-probe-{}.json", boot_id.trim())))
}

/// Boots `kernel` under KVM and waits for "Linux version" on the serial port.
async fn probe(qemu: &Path, kernel: &Path, host_dir: &Path) -> AccelChoice {
    let _ = std::fs::create_dir_all(host_dir);
    let serial = host_dir.join(format!("kvm-probe-{}.serial", std::process::id()));
    let _ = std::fs::remove_file(&serial);
    let cmd = Cmd::new(kvm_probe_args(qemu, kernel, &serial));
    let stderr = host_dir.join("kvm-probe.stderr");
    let _ = std::fs::remove_file(&stderr);
    let mut child = match process::spawn(&cmd, Output::File(stderr.clone())) {
        Ok(c) => c,
        Err(e) => {
            return AccelChoice::new(
                Accel::Tcg,
                format!("auto: KVM probe could not start QEMU ({e}); using tcg"),
            );
        }
    };
    let started = tokio::time::Instant::now();
    let verdict = loop {
        let text = std::fs::read(&serial).unwrap_or_default();
        if text.windows(13).any(|w| w == b"Linux version") {
            break AccelChoice::new(
                Accel::Kvm,
                format!(
                    "auto: KVM probe printed the first kernel line after {} ms",
                    started.elapsed().as_millis()
                ),
            );
        }
        if let Ok(Some(status)) = child.try_wait() {
            let why = std::fs::read_to_string(&stderr).unwrap_or_default();
            break AccelChoice::new(
                Accel::Tcg,
                format!(
                    "auto: KVM probe QEMU exited ({status}): {}; using tcg",
                    why.trim()
                ),
            );
        }
        if started.elapsed() >= PROBE_WAIT {
            break AccelChoice::new(
                Accel::Tcg,
                format!(
                    "auto: /dev/kvm opens but a KVM guest printed nothing within {}s (stalled KVM); using tcg",
                    PROBE_WAIT.as_secs()
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.terminate(Duration::from_secs(1)).await;
    let _ = std::fs::remove_file(&serial);
    tracing::info!(accel = %verdict.accel, reason = %verdict.reason, "accelerator chosen");
    verdict
}

/// Scales a TCG clock for the accelerator: KVM boots roughly five times faster.
pub fn scale(tcg: Duration, accel: Accel) -> Duration {
    match accel {
        Accel::Tcg => tcg,
        Accel::Kvm => (tcg / 5).max(Duration::from_secs(10)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn explicit_requests_are_not_probed() {
        let c = resolve(
            AccelRequest::Tcg,
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        )
        .await;
        assert_eq!(
            (c.accel(), c.reason.as_str()),
            (Accel::Tcg, "requested: tcg")
        );
        assert_eq!(AccelRequest::parse("hvf"), None);
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
