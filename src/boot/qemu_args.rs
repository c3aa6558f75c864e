//! QEMU command lines, built by pure functions from a [`MachineSpec`] and tested as data.
//!
//! The harness's own argv and the benchmark's bare argv come from the same functions, so
//! a benchmark measures exactly what the harness adds (`-S`, QMP, socket chardevs).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::input::scenario::Clock;

/// Which accelerator QEMU uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation (works everywhere, many times slower).
    Tcg,
}

impl Accel {
    /// The `-accel` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What the machine boots from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Boot {
    /// Direct kernel boot.
    Kernel {
        /// bzImage.
        kernel: PathBuf,
        /// Initramfs.
        initrd: Option<PathBuf>,
        /// Full kernel command line.
        append: String,
    },
    /// An ISO as CD-ROM.
    Cdrom(PathBuf),
    /// An ISO as a virtio disk (the isohybrid path); read-only, via snapshot.
    Disk(PathBuf),
    /// Nothing but [`MachineSpec::disk`]: the firmware boots what an earlier phase of a
    /// multi-phase scenario installed there.
    FromDisk,
}

/// UEFI firmware files; the VARS file is a per-run copy because OVMF writes to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ovmf {
    /// Read-only code image.
    pub code: PathBuf,
    /// The per-run writable variable store.
    pub vars: PathBuf,
}

/// Everything that decides a QEMU command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MachineSpec {
    /// QEMU binary.
    pub qemu: PathBuf,
    /// Accelerator.
    pub accel: Accel,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// vCPUs.
    pub cpus: u32,
    /// Boot medium.
    pub boot: Boot,
    /// UEFI firmware; SeaBIOS when `None`.
    pub ovmf: Option<Ovmf>,
    /// `-fw_cfg name=…,string=…` items.
    pub fw_cfg: Vec<(String, String)>,
    /// The guest's clock: `Icount` adds [`ICOUNT_ARGS`] and pins the CPU model.
    pub clock: Clock,
    /// A writable qcow2 disk kept across the phases of a multi-phase scenario: the first
    /// virtio disk (`/dev/vda`, as the kickstarts say), ahead of any ISO attached as one.
    pub disk: Option<PathBuf>,
}

/// The CPU model of an icount run: a named, versioned model, so the guest's CPUID (and
/// with it every `ifunc` glibc picks and every alternative the kernel patches in) is the
/// same on every host and QEMU release that has it. `max` would follow QEMU's TCG
/// feature set. Nehalem has SSE4.2/POPCNT (what distro userlands assume) and nothing TCG
/// lacks, and no RDRAND, so guest randomness cannot come from the host.
pub(crate) const ICOUNT_CPU: &str = "Nehalem-v1";

/// What an icount run adds to the machine: one guest instruction is one nanosecond of
/// virtual time (`shift=0`), an idle guest skips ahead to its next timer instead of
/// sleeping in host time (`sleep=off`), and the RTC runs on that virtual clock from a
/// fixed date, so nothing the guest reads comes from the host's clock.
pub(crate) const ICOUNT_ARGS: &[&str] = &[
    "-icount",
    "shift=0,sleep=off",
    "-rtc",
    "clock=vm,base=2024-01-01T00:00:00",
];

/// Kernel arguments an icount run adds: no address-space randomisation (KASLR and mmap
/// bases), so page-table walks, cache-line splits and hash buckets cannot move between
/// runs, and the TSC as the one clocksource, so the clocksource watchdog cannot switch
/// `clock_gettime`'s cost in the middle of a measurement.
pub(crate) const ICOUNT_APPEND: &str = "nokaslr norandmaps clocksource=tsc tsc=reliable";

/// Default kernel arguments: serial console, no reboot on panic (QEMU exits at once with
/// `-no-reboot`), and printk timestamps so the crash scanner can tell kernel lines from
/// program output.
pub(crate) const DEFAULT_APPEND: &str = "console=ttyS0 panic=-1 printk.time=1";

/// Sockets and files of one run, all inside its state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunFiles {
    /// QMP socket (we listen, QEMU connects).
    pub qmp: PathBuf,
    /// Serial socket (we listen, QEMU connects).
    pub serial: PathBuf,
}

impl RunFiles {
    /// The files inside `state_dir`.
    pub(crate) fn in_dir(state_dir: &Path) -> Self {
        RunFiles {
            qmp: state_dir.join("qmp.sock"),
            serial: state_dir.join("serial.sock"),
        }
    }
}

/// The machine itself: everything but the control channels.
pub(crate) fn machine_args(spec: &MachineSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    for s in ["-nodefaults", "-display", "none", "-no-reboot"] {
        push(s);
    }
    push("-machine");
    push("q35");
    push("-accel");
    push(spec.accel.as_str());
    if spec.clock == Clock::Icount {
        push("-cpu");
        push(ICOUNT_CPU);
        for s in ICOUNT_ARGS {
            push(s);
        }
    } else if spec.accel == Accel::Kvm {
        push("-cpu");
        push("host");
    } else {
        // The default qemu64 model lacks SSE4/POPCNT that distro userlands may assume.
        push("-cpu");
        push("max");
    }
    push("-m");
    push(&spec.memory_mb.to_string());
    push("-smp");
    push(&spec.cpus.to_string());
    // A display device so QMP screendump has something to capture on failure.
    push("-device");
    push("VGA");
    // pvpanic turns a guest panic into a GUEST_PANICKED event when the guest has the driver.
    push("-device");
    push("pvpanic");
    if let Some(ovmf) = &spec.ovmf {
        a.push("-drive".into());
        a.push(
            format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                ovmf.code.display()
            )
            .into(),
        );
        a.push("-drive".into());
        a.push(format!("if=pflash,format=raw,unit=1,file={}", ovmf.vars.display()).into());
    }
    if let Some(disk) = &spec.disk {
        a.push("-drive".into());
        a.push(format!("file={},format=qcow2,if=virtio", disk.display()).into());
    }
    match &spec.boot {
        Boot::Kernel {
            kernel,
            initrd,
            append,
        } => {
            a.push("-kernel".into());
            a.push(kernel.into());
            if let Some(initrd) = initrd {
                a.push("-initrd".into());
                a.push(initrd.into());
            }
            a.push("-append".into());
            if spec.clock == Clock::Icount {
                a.push(format!("{append} {ICOUNT_APPEND}").into());
            } else {
                a.push(append.into());
            }
        }
        Boot::Cdrom(iso) => {
            a.push("-drive".into());
            a.push(format!("file={},media=cdrom,readonly=on,if=ide", iso.display()).into());
            a.push("-boot".into());
            a.push("d".into());
        }
        Boot::Disk(iso) => {
            a.push("-drive".into());
            a.push(format!("file={},format=raw,if=virtio,snapshot=on", iso.display()).into());
        }
        Boot::FromDisk => {
            a.push("-boot".into());
            a.push("c".into());
        }
    }
    for (name, value) in &spec.fw_cfg {
        a.push("-fw_cfg".into());
        a.push(format!("name={name},string={value}").into());
    }
    a
}

/// The harness's argv: the machine, paused at start (`-S`), the serial port and the QMP
/// monitor on unix sockets that the harness listens on and QEMU connects to.
pub(crate) fn harness_args(spec: &MachineSpec, files: &RunFiles) -> Vec<OsString> {
    let mut a = vec![spec.qemu.clone().into_os_string()];
    a.extend(machine_args(spec));
    a.push("-S".into());
    a.push("-chardev".into());
    a.push(format!("socket,id=serial0,path={}", files.serial.display()).into());
    a.push("-serial".into());
    a.push("chardev:serial0".into());
    a.push("-chardev".into());
    a.push(format!("socket,id=qmp0,path={}", files.qmp.display()).into());
    a.push("-mon".into());
    a.push("chardev=qmp0,mode=control".into());
    a
}

/// The benchmark's bare argv: the same machine, serial to a file, no pause, no QMP.
pub(crate) fn bare_args(spec: &MachineSpec, serial_file: &Path) -> Vec<OsString> {
    let mut a = vec![spec.qemu.clone().into_os_string()];
    a.extend(machine_args(spec));
    a.push("-serial".into());
    a.push(format!("file:{}", serial_file.display()).into());
    a
}

/// The KVM liveness probe: boot `kernel` with no initramfs and look for its first line.
pub(crate) fn kvm_probe_args(qemu: &Path, kernel: &Path, serial_file: &Path) -> Vec<OsString> {
    let spec = MachineSpec {
        qemu: qemu.to_path_buf(),
        accel: Accel::Kvm,
        memory_mb: 256,
        cpus: 1,
        boot: Boot::Kernel {
            kernel: kernel.to_path_buf(),
            initrd: None,
            append: "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1".into(),
        },
        ovmf: None,
        fw_cfg: Vec::new(),
        clock: Clock::Host,
        disk: None,
    };
    bare_args(&spec, serial_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MachineSpec {
        MachineSpec {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            memory_mb: 512,
            cpus: 1,
            boot: Boot::Kernel {
                kernel: "/k/bzImage".into(),
                initrd: Some("/r/init.cpio".into()),
                append: DEFAULT_APPEND.into(),
            },
            ovmf: None,
            fw_cfg: vec![],
            clock: Clock::Host,
            disk: None,
        }
    }

    fn words(a: &[OsString]) -> String {
        a.iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn harness_argv_for_a_kernel_boot() {
        let files = RunFiles::in_dir(Path::new("/out/run/smoke"));
        assert_eq!(
            words(&harness_args(&spec(), &files)),
            "qemu-system-x86_64 -nodefaults -display none -no-reboot -machine q35 -accel tcg -cpu max -m 512 -smp 1 \
             -device VGA -device pvpanic -kernel /k/bzImage -initrd /r/init.cpio \
             -append console=ttyS0 panic=-1 printk.time=1 -S \
             -chardev socket,id=serial0,path=/out/run/smoke/serial.sock -serial chardev:serial0 \
             -chardev socket,id=qmp0,path=/out/run/smoke/qmp.sock -mon chardev=qmp0,mode=control"
        );
    }

    #[test]
    fn bare_argv_is_the_same_machine_without_control_channels() {
        let bare = words(&bare_args(&spec(), Path::new("/tmp/s.log")));
        let harness = words(&harness_args(&spec(), &RunFiles::in_dir(Path::new("/o"))));
        let machine = words(&machine_args(&spec()));
        assert!(bare.contains(&machine) && harness.contains(&machine));
        assert!(
            !bare.contains("-S")
                && !bare.contains("qmp")
                && bare.ends_with("-serial file:/tmp/s.log")
        );
    }

    #[test]
    fn uefi_cd_and_disk() {
        let mut s = spec();
        s.boot = Boot::Cdrom("/iso/x.iso".into());
        s.ovmf = Some(Ovmf {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars: "/o/OVMF_VARS.fd".into(),
        });
        s.fw_cfg = vec![("opt/org.xsc/selftest".into(), "1".into())];
        let w = words(&machine_args(&s));
        assert!(w.contains(
            "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        ));
        assert!(w.contains("-drive if=pflash,format=raw,unit=1,file=/o/OVMF_VARS.fd"));
        assert!(w.contains("-drive file=/iso/x.iso,media=cdrom,readonly=on,if=ide -boot d"));
        assert!(w.ends_with("-fw_cfg name=opt/org.xsc/selftest,string=1"));
        s.boot = Boot::Disk("/iso/x.iso".into());
        assert!(
            words(&machine_args(&s))
                .contains("-drive file=/iso/x.iso,format=raw,if=virtio,snapshot=on")
        );
    }

    #[test]
    fn the_phase_disk_comes_first_and_can_be_the_only_boot_medium() {
        let mut s = spec();
        s.boot = Boot::Cdrom("/iso/alma.iso".into());
        s.disk = Some("/o/alma-install/disk.qcow2".into());
        let w = words(&machine_args(&s));
        let disk = w
            .find("-drive file=/o/alma-install/disk.qcow2,format=qcow2,if=virtio")
            .expect("the disk is attached writable");
        let cd = w.find("media=cdrom").unwrap();
        assert!(disk < cd, "{w}");
        s.boot = Boot::FromDisk;
        let w = words(&machine_args(&s));
        assert!(
            w.ends_with("-drive file=/o/alma-install/disk.qcow2,format=qcow2,if=virtio -boot c"),
            "{w}"
        );
        assert!(!w.contains("-kernel") && !w.contains("cdrom"), "{w}");
    }

    #[test]
    fn icount_counts_instructions_on_a_pinned_cpu() {
        let mut s = spec();
        s.clock = Clock::Icount;
        assert_eq!(
            words(&machine_args(&s)),
            "-nodefaults -display none -no-reboot -machine q35 -accel tcg -cpu Nehalem-v1 \
             -icount shift=0,sleep=off -rtc clock=vm,base=2024-01-01T00:00:00 -m 512 -smp 1 \
             -device VGA -device pvpanic -kernel /k/bzImage -initrd /r/init.cpio \
             -append console=ttyS0 panic=-1 printk.time=1 nokaslr norandmaps clocksource=tsc tsc=reliable"
        );
        // The host clock keeps the machine as it was.
        let host = words(&machine_args(&spec()));
        assert!(!host.contains("-icount") && !host.contains("-rtc") && host.contains("-cpu max"));
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let mut s = spec();
        s.accel = Accel::Kvm;
        assert!(words(&machine_args(&s)).contains("-accel kvm -cpu host"));
        let probe = words(&kvm_probe_args(
            Path::new("q"),
            Path::new("/k"),
            Path::new("/p.log"),
        ));
        assert!(
            probe.contains("-accel kvm")
                && probe.contains("earlyprintk=serial,ttyS0")
                && !probe.contains("-initrd")
        );
    }
}
