//! `doctor`: which host tools are there, whether KVM is really usable, and the exact
//! `apt-get install` line for what is missing.

use std::path::Path;

use crate::boot::accel;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::sys::cache::Cache;
use crate::sys::process::which;

/// Tools outside the kernel stage: (binary or file, Debian package, what needs it). The
/// build stages' own lists (`build::KERNEL_TOOLS`, `build::GLIBC_TOOLS`) are shown too.
pub(crate) const TOOLS: &[(&str, &str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86", "booting images"),
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf", "UEFI boots"),
    ("cpio", "cpio", "initramfs checks"),
    ("/bin/busybox", "busybox-static", "shell in test initramfs"),
    ("debootstrap", "debootstrap", "Debian ISO"),
    ("xorriso", "xorriso", "ISOs"),
    ("grub-mkimage", "grub-common", "UEFI ISO boot"),
    (
        "/usr/lib/ISOLINUX/isolinux.bin",
        "isolinux",
        "BIOS ISO boot",
    ),
    ("mcopy", "mtools", "UEFI ISO boot"),
    ("mksquashfs", "squashfs-tools", "Debian ISO"),
    (
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        "syslinux-common",
        "BIOS ISO boot",
    ),
    (
        "/usr/lib/grub/x86_64-efi/linux.mod",
        "grub-efi-amd64-bin",
        "UEFI ISO boot",
    ),
    ("mkfs.vfat", "dosfstools", "FAT images (ESP)"),
    ("faketime", "faketime", "make repro-iso (a day later)"),
    ("wget", "wget", "Debian ISO (archive identity)"),
    ("minisign", "minisign", "release interop checks"),
    ("xmllint", "libxml2-utils", "JUnit validation in tests"),
];

fn present(tool: &str) -> bool {
    if tool.starts_with('/') {
        Path::new(tool).exists()
    } else {
        which(tool).is_some()
    }
}

/// Prints the report; exit 4 when something is missing. `kernel` is booted for the KVM
/// probe (default: the stock kernel in the cache).
pub(crate) async fn run(cfg: &Config, kernel: Option<&Path>) -> ExitCode {
    let mut missing = Vec::new();
    let stage_tools = crate::stages::KERNEL_TOOLS
        .iter()
        .map(|(t, p)| (*t, *p, "kernel stage"));
    let glibc_tools = crate::stages::GLIBC_TOOLS
        .iter()
        .map(|(t, p)| (*t, *p, "glibc stage"));
    let fetch_tools = crate::stages::FETCH_TOOLS
        .iter()
        .map(|(t, p)| (*t, *p, "stock kernel, pinned sources"));
    let all: Vec<(&str, &str, &str)> = TOOLS
        .iter()
        .copied()
        .chain(stage_tools)
        .chain(glibc_tools)
        .chain(fetch_tools)
        .collect();
    for (tool, package, why) in all {
        let ok = present(tool);
        println!(
            "{} {tool:<36} ({package}; {why})",
            if ok { "ok     " } else { "MISSING" }
        );
        if !ok && !missing.contains(&package) {
            missing.push(package);
        }
    }
    let cache = Cache::new(&cfg.cache_dir);
    let probe_kernel = kernel.map(Path::to_path_buf).or_else(|| {
        cache
            .latest("stock-kernel")
            .and_then(|e| e.artifact("vmlinuz"))
    });
    let host = accel::KvmHost::new(Path::new("qemu-system-x86_64"));
    // doctor reports what holds now, so it never reads the cached probe verdict.
    let mode = match &probe_kernel {
        Some(k) => Some(accel::probe_now(&host, k, &cache.host_dir()).await),
        None => accel::device_mode(&host.device),
    };
    match mode {
        Some(mode) => {
            println!("kvm     {} — {}", mode.name(), mode.finding());
            if !mode.advice().is_empty() {
                println!("        what to do: {}", mode.advice());
            }
            let choice = accel::AccelChoice::from_probe(mode);
            println!("accel   `--accel auto` uses {}", choice.accel);
        }
        None => println!(
            "kvm     unknown — {} opens; no kernel to boot the probe with yet (run `xsc-release test smoke` once, or `doctor --kernel K`)",
            host.device.display()
        ),
    }
    println!("cache   {}", cache.root().display());
    if missing.is_empty() {
        println!("all host tools present");
        ExitCode::Success
    } else {
        println!(
            "install what is missing with:\n  apt-get install -y {}",
            missing.join(" ")
        );
        ExitCode::Harness
    }
}
