//! The Debian ISO recipe as data: boot-loader configs, the kernel command line and every
//! command line of the stage (debootstrap, chroot apt, mksquashfs, grub-mkimage, mtools,
//! xorriso), built by pure functions and unit-tested as data. `debian.rs` runs them.
//!
//! The layout follows variant A of the verified recipe (docs/debian-iso.md): isolinux for
//! BIOS, a GRUB core image with an embedded config for UEFI (not grub-mkstandalone, whose
//! memdisk embeds mtimes), a FAT ESP made with mtools (no loop device, fixed serial), and
//! one hybrid xorriso image that boots as CD and as disk.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::sys::process::Cmd;

/// Volume label; the live initramfs finds the medium by it.
pub(crate) const VOLUME_LABEL: &str = "XSC_DEBIAN";
/// The squashfs root inside the ISO.
pub(crate) const SQUASHFS_PATH: &str = "live/filesystem.squashfs";
/// Files of the ISO tree.
pub(crate) const KERNEL_PATH: &str = "boot/vmlinuz";
/// The initramfs inside the ISO.
pub(crate) const INITRD_PATH: &str = "boot/initrd.img";
/// The UEFI FAT image inside the ISO (second El Torito entry).
pub(crate) const EFI_IMAGE_PATH: &str = "boot/efiboot.img";
/// Where isolinux lives in the ISO.
pub(crate) const ISOLINUX_DIR: &str = "isolinux";

/// Packages added to debootstrap's minbase: an init (sysvinit: the lean kernel has no
/// cgroups, which systemd needs) and `procps` so a person on the console can look around.
pub(crate) const EXTRA_PACKAGES: &[&str] = &["sysvinit-core", "procps"];

/// GRUB modules in the EFI core image: enough to find the ISO and load a bzImage.
pub(crate) const GRUB_MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "iso9660",
    "fat",
    "search",
    "search_fs_file",
    "linux",
    "gzio",
    "serial",
    "terminal",
    "normal",
    "echo",
    "all_video",
];

/// isolinux files copied from the host (Debian's isolinux and syslinux-common).
pub(crate) const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
/// The hybrid MBR that makes the ISO bootable as a disk under BIOS.
pub(crate) const ISOHDPFX_BIN: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
/// isolinux's core module.
pub(crate) const LDLINUX_C32: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";

/// The kernel command line of the default (and only) boot entry. `console=ttyS0` comes
/// last so that /dev/console (init's output, the self-test's KTAP) is the serial port;
/// tty0 still shows the kernel log and gets a getty.
pub(crate) fn kernel_cmdline() -> String {
    "console=tty0 console=ttyS0,115200 panic=-1 printk.time=1".to_string()
}

/// `isolinux.cfg`: serial + screen, the one entry, no prompt, no wait.
pub(crate) fn isolinux_cfg() -> String {
    format!(
        "SERIAL 0 115200\nDEFAULT xsc\nPROMPT 0\nTIMEOUT 0\nLABEL xsc\n  KERNEL /{KERNEL_PATH}\n  APPEND initrd=/{INITRD_PATH} {}\n",
        kernel_cmdline()
    )
}

/// The config embedded in the GRUB EFI core image: serial + screen, find the ISO by the
/// kernel file, boot at once (no menu).
pub(crate) fn grub_embedded_cfg() -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         search --no-floppy --set=root --file /{KERNEL_PATH}\n\
         linux /{KERNEL_PATH} {}\n\
         initrd /{INITRD_PATH}\n\
         boot\n",
        kernel_cmdline()
    )
}

/// The apt sources of the live system: the suite, its updates, and security.
pub(crate) fn sources_list(mirror: &str, security: &str, suite: &str) -> String {
    format!(
        "deb {mirror} {suite} main\ndeb {mirror} {suite}-updates main\ndeb {security} {suite}-security main\n"
    )
}

/// The environment for everything run inside the chroot: no prompts, C locale, UTC.
fn chroot_env(cmd: Cmd, sde: i64) -> Cmd {
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
}

/// `debootstrap --variant=minbase` with the .deb cache outside the root.
pub(crate) fn debootstrap_cmd(
    suite: &str,
    root: &Path,
    mirror: &str,
    debs: &Path,
    extra: &[&str],
    sde: i64,
) -> Cmd {
    let mut argv: Vec<OsString> = vec![
        "debootstrap".into(),
        "--variant=minbase".into(),
        "--arch=amd64".into(),
        "--components=main".into(),
        format!("--include={}", extra.join(",")).into(),
        format!("--cache-dir={}", debs.display()).into(),
        "--merged-usr".into(),
        suite.into(),
    ];
    argv.push(root.into());
    argv.push(mirror.into());
    chroot_env(Cmd::new(argv), sde).deadline(Duration::from_secs(3600))
}

/// A command run inside the root with `chroot`.
pub(crate) fn chroot_cmd(root: &Path, args: &[&str], sde: i64) -> Cmd {
    let mut argv: Vec<OsString> = vec!["chroot".into(), root.into()];
    argv.extend(args.iter().map(Into::into));
    chroot_env(Cmd::new(argv), sde).deadline(Duration::from_secs(3600))
}

/// Where the XSC `.deb`s are put inside the root for `dpkg -i` (removed afterwards).
pub(crate) const DEBS_IN_ROOT: &str = "var/cache/xsc-debs";

/// `dpkg -i` of the XSC packages inside the root, all in one call so `xsc-tests` finds
/// the `xsc-glibc` it depends on; `names` are file names in [`DEBS_IN_ROOT`].
pub(crate) fn dpkg_install_cmd(root: &Path, names: &[String], sde: i64) -> Cmd {
    let paths: Vec<String> = names
        .iter()
        .map(|n| format!("/{DEBS_IN_ROOT}/{n}"))
        .collect();
    let mut args = vec!["dpkg", "-i"];
    args.extend(paths.iter().map(String::as_str));
    chroot_cmd(root, &args, sde)
}

/// `apt-get -y upgrade` inside the root, keeping configs as shipped.
pub(crate) fn apt_upgrade_args() -> Vec<&'static str> {
    vec![
        "apt-get",
        "-y",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        "upgrade",
    ]
}

/// The package list of the root (`dpkg -l`, wide, so versions are not cut).
pub(crate) fn dpkg_list_cmd(root: &Path) -> Cmd {
    Cmd::new([
        OsString::from("dpkg-query"),
        format!("--admindir={}", root.join("var/lib/dpkg").display()).into(),
        "-l".into(),
    ])
    .env("COLUMNS", "200")
    .env("LC_ALL", "C")
}

/// mksquashfs of the root: zstd (fast to build and to read under TCG), no appending to a
/// stale image. SOURCE_DATE_EPOCH in the environment pins the mkfs time and every inode
/// time (squashfs-tools 4.5; it refuses `-all-time`/`-mkfs-time` alongside it).
pub(crate) fn mksquashfs_cmd(root: &Path, out: &Path, sde: i64) -> Cmd {
    let mut argv: Vec<OsString> = vec!["mksquashfs".into(), root.into(), out.into()];
    for a in ["-noappend", "-comp", "zstd", "-no-progress"] {
        argv.push(a.into());
    }
    Cmd::new(argv)
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        .deadline(Duration::from_secs(1800))
}

/// grub-mkimage with the embedded config.
pub(crate) fn grub_mkimage_cmd(out: &Path, embedded_cfg: &Path) -> Cmd {
    let mut argv: Vec<OsString> = vec![
        "grub-mkimage".into(),
        "-O".into(),
        "x86_64-efi".into(),
        "-o".into(),
        out.into(),
        "-p".into(),
        "/boot/grub".into(),
        "-c".into(),
        embedded_cfg.into(),
    ];
    argv.extend(GRUB_MODULES.iter().map(Into::into));
    Cmd::new(argv).deadline(Duration::from_secs(120))
}

/// The FAT serial number: derived from SOURCE_DATE_EPOCH so it is fixed per input set
/// (mformat picks a random one otherwise).
pub(crate) fn fat_serial(sde: i64) -> String {
    format!("{:08x}", (sde as u64) & 0xffff_ffff)
}

/// The mtools commands that make the ESP image (the file must exist, sized, before).
pub(crate) fn efi_image_cmds(img: &Path, bootx64: &Path, sde: i64) -> Vec<Cmd> {
    // mtools stamps FAT entries (directory dots, create/access dates) with the clock;
    // measured: a build a day later differed there. faketime with an absolute time (no
    // '@') stops the clock at SDE for these three commands.
    let frozen = utc_string(sde);
    let i = |mut argv: Vec<OsString>| {
        argv.insert(1, "-i".into());
        argv.insert(2, img.into());
        let mut full: Vec<OsString> = vec!["faketime".into(), "-f".into(), frozen.clone().into()];
        full.extend(argv);
        Cmd::new(full)
            .env("TZ", "UTC")
            .env("SOURCE_DATE_EPOCH", sde.to_string())
            .env("MTOOLS_SKIP_CHECK", "1")
            .deadline(Duration::from_secs(60))
    };
    vec![
        i(vec![
            "mformat".into(),
            "-T".into(),
            "16384".into(),
            "-h".into(),
            "64".into(),
            "-s".into(),
            "32".into(),
            "-N".into(),
            fat_serial(sde).into(),
            "-v".into(),
            "XSC_ESP".into(),
            "::".into(),
        ]),
        i(vec!["mmd".into(), "::/EFI".into(), "::/EFI/BOOT".into()]),
        i(vec![
            "mcopy".into(),
            "-m".into(),
            bootx64.into(),
            "::/EFI/BOOT/BOOTX64.EFI".into(),
        ]),
    ]
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of an epoch, the absolute form faketime freezes the clock at.
pub(crate) fn utc_string(epoch: i64) -> String {
    // compact_utc gives 20261130T032218Z.
    let c = super::make::compact_utc(epoch);
    format!(
        "{}-{}-{} {}:{}:{}",
        &c[0..4],
        &c[4..6],
        &c[6..8],
        &c[9..11],
        &c[11..13],
        &c[13..15]
    )
}

/// Size of the ESP image: 8 MiB holds the ~0.7 MB GRUB image with room to spare.
pub(crate) const EFI_IMAGE_BYTES: u64 = 8 << 20;

/// xorriso: the hybrid ISO (BIOS El Torito + isohybrid MBR, UEFI El Torito + GPT entry).
/// The preparer id is set because xorriso's default contains its own version.
pub(crate) fn xorriso_cmd(tree: &Path, out: &Path, sde: i64) -> Cmd {
    // Native command first (before -as mkisofs): every file and directory date = SDE.
    // SDE alone leaves directory records with the build day (measured: a rebuild a day
    // later differed only there).
    let mut argv: Vec<OsString> = vec![
        "xorriso".into(),
        "-volume_date".into(),
        "all_file_dates".into(),
        format!("={sde}").into(),
        "-as".into(),
        "mkisofs".into(),
    ];
    for a in [
        "-iso-level",
        "3",
        "-full-iso9660-filenames",
        "-joliet",
        "-joliet-long",
        "-rational-rock",
        "-volid",
        VOLUME_LABEL,
        "-preparer",
        "XSC-RELEASE",
        "-publisher",
        "XSC",
        "-isohybrid-mbr",
        ISOHDPFX_BIN,
        "-eltorito-boot",
        "isolinux/isolinux.bin",
        "-eltorito-catalog",
        "isolinux/boot.cat",
        "-no-emul-boot",
        "-boot-load-size",
        "4",
        "-boot-info-table",
        "-eltorito-alt-boot",
        "-e",
        EFI_IMAGE_PATH,
        "-no-emul-boot",
        "-isohybrid-gpt-basdat",
        "-output",
    ] {
        argv.push(a.into());
    }
    argv.push(out.into());
    argv.push(tree.into());
    Cmd::new(argv)
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .deadline(Duration::from_secs(600))
}

/// diffoscope on two differing ISOs (when installed): says which files differ.
pub(crate) fn diffoscope_cmd(a: &Path, b: &Path) -> Cmd {
    Cmd::new([
        OsString::from("diffoscope"),
        "--text".into(),
        "-".into(),
        "--max-report-size".into(),
        "200000".into(),
        a.into(),
        b.into(),
    ])
    .deadline(Duration::from_secs(1800))
}

/// Mirrors from an apt sources file: deb822 `.sources` (`Types: deb` stanzas' `URIs` with
/// their `Suites`) or one-line `sources.list`. Returns (uri, suites) in file order.
pub(crate) fn parse_apt_sources(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let deb822 = text.lines().any(|l| l.trim_start().starts_with("URIs:"));
    if deb822 {
        for stanza in text.split("\n\n") {
            let mut types = Vec::new();
            let mut uris = Vec::new();
            let mut suites = Vec::new();
            for line in stanza.lines() {
                let line = line.trim();
                if line.starts_with('#') {
                    continue;
                }
                if let Some((k, v)) = line.split_once(':') {
                    let words: Vec<String> = v.split_whitespace().map(str::to_string).collect();
                    match k.trim() {
                        "Types" => types = words,
                        "URIs" => uris = words,
                        "Suites" => suites = words,
                        _ => {}
                    }
                }
            }
            if types.iter().any(|t| t == "deb") {
                for u in uris {
                    out.push((u, suites.clone()));
                }
            }
        }
    } else {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            if words.next() != Some("deb") {
                continue;
            }
            let mut rest: Vec<&str> = words.collect();
            // `deb [arch=amd64 signed-by=…] URI suite comp…`
            if rest.first().is_some_and(|w| w.starts_with('[')) {
                while let Some(w) = rest.first().copied() {
                    rest.remove(0);
                    if w.ends_with(']') {
                        break;
                    }
                }
            }
            if let (Some(uri), Some(suite)) = (rest.first(), rest.get(1)) {
                out.push(((*uri).to_string(), vec![(*suite).to_string()]));
            }
        }
    }
    out
}

/// The main and security mirrors from parsed apt sources: the first URI serving `suite`
/// (or any non-security suite), and the first serving `suite-security`. Without a security
/// entry the Debian archive layout is assumed: `<main>-security`.
pub(crate) fn pick_mirrors(
    sources: &[(String, Vec<String>)],
    suite: &str,
) -> Option<(String, String)> {
    let security_suite = format!("{suite}-security");
    let main = sources
        .iter()
        .find(|(_, s)| s.iter().any(|s| s == suite))
        .or_else(|| {
            sources
                .iter()
                .find(|(_, s)| s.iter().all(|s| !s.ends_with("-security")))
        })
        .map(|(u, _)| u.trim_end_matches('/').to_string())?;
    let security = sources
        .iter()
        .find(|(_, s)| s.contains(&security_suite))
        .map(|(u, _)| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("{main}-security"));
    Some((main, security))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(c: &Cmd) -> Vec<String> {
        c.argv
            .iter()
            .map(|a| a.to_string_lossy().to_string())
            .collect()
    }

    #[test]
    fn boot_loader_configs_boot_the_one_entry_at_once_with_serial_last() {
        let iso = isolinux_cfg();
        assert!(iso.starts_with("SERIAL 0 115200\nDEFAULT xsc\nPROMPT 0\nTIMEOUT 0\n"));
        assert!(iso.contains("KERNEL /boot/vmlinuz\n"));
        assert!(
            iso.contains(
                "APPEND initrd=/boot/initrd.img console=tty0 console=ttyS0,115200 panic=-1"
            )
        );
        let grub = grub_embedded_cfg();
        let lines: Vec<&str> = grub.lines().collect();
        assert_eq!(lines[0], "serial --unit=0 --speed=115200");
        assert_eq!(
            lines[3],
            "search --no-floppy --set=root --file /boot/vmlinuz"
        );
        assert!(lines[4].starts_with("linux /boot/vmlinuz console=tty0 console=ttyS0,115200"));
        assert_eq!(lines[5], "initrd /boot/initrd.img");
        assert_eq!(lines.last(), Some(&"boot"), "no menu: boot at once");
        // The last console= wins /dev/console: it must be the serial port.
        let cmdline = kernel_cmdline();
        let last = cmdline
            .split_whitespace()
            .rfind(|w| w.starts_with("console="))
            .unwrap();
        assert_eq!(last, "console=ttyS0,115200");
    }

    #[test]
    fn debootstrap_and_chroot_argv() {
        let c = debootstrap_cmd(
            "bookworm",
            Path::new("/w/root"),
            "http://m/debian",
            Path::new("/c/downloads/debian-debs"),
            EXTRA_PACKAGES,
            1_700_000_000,
        );
        assert_eq!(
            argv(&c),
            [
                "debootstrap",
                "--variant=minbase",
                "--arch=amd64",
                "--components=main",
                "--include=sysvinit-core,procps",
                "--cache-dir=/c/downloads/debian-debs",
                "--merged-usr",
                "bookworm",
                "/w/root",
                "http://m/debian"
            ]
        );
        assert!(
            c.env
                .contains(&("DEBIAN_FRONTEND".into(), "noninteractive".into()))
        );
        let u = chroot_cmd(Path::new("/w/root"), &apt_upgrade_args(), 1);
        assert_eq!(argv(&u)[..4], ["chroot", "/w/root", "apt-get", "-y"]);
        assert_eq!(argv(&u).last().unwrap(), "upgrade");
        let i = dpkg_install_cmd(
            Path::new("/w/root"),
            &["a_1_amd64.deb".into(), "b_1_amd64.deb".into()],
            1,
        );
        assert_eq!(
            argv(&i),
            [
                "chroot",
                "/w/root",
                "dpkg",
                "-i",
                "/var/cache/xsc-debs/a_1_amd64.deb",
                "/var/cache/xsc-debs/b_1_amd64.deb"
            ]
        );
        assert_eq!(
            argv(&dpkg_list_cmd(Path::new("/w/root"))),
            ["dpkg-query", "--admindir=/w/root/var/lib/dpkg", "-l"]
        );
        assert_eq!(
            sources_list("http://m/debian", "http://m/debian-security", "bookworm"),
            "deb http://m/debian bookworm main\ndeb http://m/debian bookworm-updates main\n\
             deb http://m/debian-security bookworm-security main\n"
        );
    }

    #[test]
    fn squashfs_grub_mtools_and_xorriso_argv_pin_every_date() {
        let sde = 1_700_000_000;
        let s = mksquashfs_cmd(Path::new("/r"), Path::new("/i/fs.sq"), sde);
        assert_eq!(
            argv(&s),
            [
                "mksquashfs",
                "/r",
                "/i/fs.sq",
                "-noappend",
                "-comp",
                "zstd",
                "-no-progress",
            ]
        );
        assert!(
            s.env
                .contains(&("SOURCE_DATE_EPOCH".into(), "1700000000".into()))
        );
        let g = grub_mkimage_cmd(Path::new("/t/BOOTX64.EFI"), Path::new("/t/embedded.cfg"));
        let ga = argv(&g);
        assert_eq!(
            ga[..9],
            [
                "grub-mkimage",
                "-O",
                "x86_64-efi",
                "-o",
                "/t/BOOTX64.EFI",
                "-p",
                "/boot/grub",
                "-c",
                "/t/embedded.cfg"
            ]
        );
        assert!(ga.contains(&"iso9660".to_string()) && ga.contains(&"linux".to_string()));
        let m = efi_image_cmds(Path::new("/e.img"), Path::new("/t/BOOTX64.EFI"), sde);
        assert_eq!(m.len(), 3);
        let m0 = argv(&m[0]);
        assert_eq!(
            m0[..6],
            [
                "faketime",
                "-f",
                "2023-11-14 22:13:20",
                "mformat",
                "-i",
                "/e.img"
            ]
        );
        let n = m0.iter().position(|a| a == "-N").unwrap();
        assert_eq!(m0[n + 1], "6553f100", "the FAT serial is derived from SDE");
        assert_eq!(
            argv(&m[2])[3..],
            [
                "mcopy",
                "-i",
                "/e.img",
                "-m",
                "/t/BOOTX64.EFI",
                "::/EFI/BOOT/BOOTX64.EFI"
            ]
        );
        let x = xorriso_cmd(Path::new("/tree"), Path::new("/o.iso"), sde);
        let xa = argv(&x);
        assert_eq!(
            xa[..6],
            [
                "xorriso",
                "-volume_date",
                "all_file_dates",
                "=1700000000",
                "-as",
                "mkisofs"
            ]
        );
        for pair in [
            ["-volid", VOLUME_LABEL],
            ["-preparer", "XSC-RELEASE"],
            ["-isohybrid-mbr", ISOHDPFX_BIN],
            ["-eltorito-boot", "isolinux/isolinux.bin"],
            ["-e", EFI_IMAGE_PATH],
        ] {
            let i = xa.iter().position(|a| a == pair[0]).unwrap();
            assert_eq!(xa[i + 1], pair[1]);
        }
        assert!(xa.contains(&"-isohybrid-gpt-basdat".to_string()));
        assert_eq!(xa[xa.len() - 2..], ["/o.iso", "/tree"]);
        assert!(
            x.env
                .contains(&("SOURCE_DATE_EPOCH".into(), "1700000000".into()))
        );
    }

    #[test]
    fn mirrors_come_from_deb822_or_one_line_sources() {
        let deb822 = "Types: deb\n# a comment\nURIs: http://a.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n\nTypes: deb\nURIs: http://a.example/debian-security\n\
                      Suites: bookworm-security\nComponents: main\n";
        let p = parse_apt_sources(deb822);
        assert_eq!(p.len(), 2);
        assert_eq!(
            pick_mirrors(&p, "bookworm"),
            Some((
                "http://a.example/debian".into(),
                "http://a.example/debian-security".into()
            ))
        );
        let list = "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://b.example/debian/ bookworm main\n\
                    deb-src http://b.example/debian bookworm main\n";
        let p = parse_apt_sources(list);
        assert_eq!(
            pick_mirrors(&p, "bookworm"),
            Some((
                "http://b.example/debian".into(),
                "http://b.example/debian-security".into()
            ))
        );
        assert_eq!(
            pick_mirrors(&parse_apt_sources("# nothing\n"), "bookworm"),
            None
        );
    }
}
