//! The EL9 remaster (`build alma`, `build rocky`): the distribution's own install ISO with
//! the XSC kickstart and the XSC RPM repository injected, the way lorax's `mkksiso` does it,
//! around xorriso, osirrox, mtools and implantisomd5 (no root, no lorax):
//!
//! ```text
//! base ISO (sha256 checked) ─► volume id, file list (xorriso) ─► extract boot configs and
//!   images/efiboot.img (osirrox) ─► add inst.ks=hd:LABEL=<volid>:/<ks> console=ttyS0 to every
//!   append/linux/linuxefi line, the install entry becomes the default ─► grub.cfg into the
//!   El Torito EFI image (mcopy) ─► xorriso -boot_image any replay -update … -map ks, xsc/
//!   ─► implantisomd5 ─► <cache>/stages/el-iso/<key>/ ─► iso/<distro>/xsc-<distro>9.iso
//! ```
//! EL9's ISOs boot UEFI from an El Torito image inside the tree (`images/efiboot.img`, lorax
//! 34), not from an appended partition: that file is what `-boot_image any replay` keeps
//! pointing at, so it is updated in place. Everything here is a pure function but [`remaster`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::BuildError;
use super::iso::utc_string;
use crate::sys::process::{self, Cmd};

/// Boot configs mkksiso edits, where they exist on the medium.
pub(crate) const BOOT_CONFIGS: &[&str] = &[
    "isolinux/isolinux.cfg",
    "boot/grub2/grub.cfg",
    "EFI/BOOT/grub.cfg",
    "EFI/BOOT/BOOT.conf",
];
/// The El Torito EFI image of EL9 media.
pub(crate) const EFI_IMAGE: &str = "images/efiboot.img";
/// Where the XSC repository goes on the medium (`file:///run/install/repo/xsc/`).
pub(crate) const REPO_DIR: &str = "xsc";
/// The argument every boot entry gets besides `inst.ks`: the console the harness reads.
pub(crate) const CONSOLE_ARG: &str = "console=ttyS0,115200n8";
/// Host tools of the remaster, with their Debian packages.
pub(crate) const EL_ISO_TOOLS: &[(&str, &str)] = &[
    ("xorriso", "xorriso"),
    ("osirrox", "xorriso"),
    ("mcopy", "mtools"),
    ("implantisomd5", "isomd5sum"),
    ("faketime", "faketime"),
];

/// A volume id as udev escapes it in `/dev/disk/by-label` (what `hd:LABEL=` matches):
/// every byte outside `A-Za-z0-9#+.:=@_-` becomes `\xNN` (lorax's `udev_escape`).
pub(crate) fn udev_escape(label: &str) -> String {
    label
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"#+.:=@_-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// `inst.ks=hd:LABEL=<escaped volid>:/<ks>`.
pub(crate) fn ks_arg(volid: &str, ks_name: &str) -> String {
    format!("inst.ks=hd:LABEL={}:/{ks_name}", udev_escape(volid))
}

/// One kernel command line with any `inst.ks=` (and any word of `add`) removed and `add`
/// appended, so a second edit changes nothing.
pub(crate) fn edit_args(args: &str, add: &[String]) -> String {
    let mut words: Vec<&str> = args
        .split_whitespace()
        .filter(|w| !w.starts_with("inst.ks=") && !add.iter().any(|a| a == w))
        .collect();
    words.extend(add.iter().map(String::as_str));
    words.join(" ")
}

/// Edits every kernel line of a boot config: isolinux `append`, GRUB `linux`/`linuxefi`
/// (keeping their indentation and the kernel path), then makes the first entry without
/// `rd.live.check` (the media test) the default.
pub(crate) fn edit_config(text: &str, add: &[String]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let mut parts = trimmed.splitn(2, char::is_whitespace);
        let word = parts.next().unwrap_or_default();
        let rest = parts.next().unwrap_or_default();
        let edited = match word.to_ascii_lowercase().as_str() {
            "append" => format!("{indent}{word} {}", edit_args(rest, add)),
            "linux" | "linuxefi" => {
                let mut r = rest.trim_start().splitn(2, char::is_whitespace);
                let kernel = r.next().unwrap_or_default();
                let args = r.next().unwrap_or_default();
                // As mkksiso: the udev-escaped label as it is. EL's grub2 hands `\x20` to the
                // kernel (RHEL 7 media carry `LABEL=RHEL-7.0\x20Server.x86_64` in grub.cfg);
                // upstream GRUB 2.06 drops or doubles the backslash (measured, docs/el-iso.md).
                // EL9's own volume ids have no character to escape.
                format!("{indent}{word} {kernel} {}", edit_args(args, add))
            }
            _ => line.to_string(),
        };
        out.push_str(&edited);
        out.push('\n');
    }
    if text
        .lines()
        .any(|l| l.trim_start().starts_with("menuentry"))
    {
        grub_default_install(&out)
    } else {
        isolinux_default_install(&out)
    }
}

/// isolinux: `menu default` moves to the first `label` whose `append` lacks
/// `rd.live.check` (EL9 ships the media check as the default).
fn isolinux_default_install(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_label = |l: &str| l.trim_start().to_ascii_lowercase().starts_with("label ");
    let mut target = None;
    for (i, l) in lines.iter().enumerate() {
        if !is_label(l) {
            continue;
        }
        let block = lines[i + 1..].iter().take_while(|l| !is_label(l));
        let append = block
            .clone()
            .find(|l| l.trim_start().to_ascii_lowercase().starts_with("append"));
        if append.is_some_and(|a| !a.contains("rd.live.check")) {
            target = Some(i);
            break;
        }
    }
    let Some(target) = target else {
        return text.to_string();
    };
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().eq_ignore_ascii_case("menu default") {
            continue;
        }
        out.push_str(l);
        out.push('\n');
        if i == target {
            out.push_str("  menu default\n");
        }
    }
    out
}

/// GRUB: `set default="N"` names the first top-level `menuentry` whose kernel line lacks
/// `rd.live.check`.
fn grub_default_install(text: &str) -> String {
    let mut index = 0;
    let mut depth = 0usize;
    let mut found = None;
    let mut in_entry: Option<usize> = None;
    for l in text.lines() {
        let t = l.trim_start();
        if depth == 0 && t.starts_with("menuentry") {
            in_entry = Some(index);
            index += 1;
        }
        if let Some(e) = in_entry {
            if (t.starts_with("linux") || t.starts_with("linuxefi")) && !t.contains("rd.live.check")
            {
                found.get_or_insert(e);
            }
        }
        depth += t.matches('{').count();
        depth = depth.saturating_sub(t.matches('}').count());
        if depth == 0 {
            in_entry = None;
        }
    }
    let Some(n) = found else {
        return text.to_string();
    };
    let mut out = String::new();
    let mut set = false;
    for l in text.lines() {
        if l.trim_start().starts_with("set default=") {
            out.push_str(&format!("set default=\"{n}\"\n"));
            set = true;
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !set {
        out = format!("set default=\"{n}\"\n{out}");
    }
    out
}

/// `xorriso -indev ISO -pvd_info`: the primary volume descriptor, `Volume Id    : …`.
pub(crate) fn pvd_cmd(iso: &Path) -> Cmd {
    Cmd::new([
        OsString::from("xorriso"),
        "-indev".into(),
        iso.into(),
        "-pvd_info".into(),
    ])
    .env("LC_ALL", "C")
    .deadline(Duration::from_secs(120))
}

/// The volume id from `-pvd_info` output.
pub(crate) fn parse_volid(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("Volume Id    :"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `xorriso -indev ISO -find / -type f`: every file, one quoted path a line.
pub(crate) fn list_cmd(iso: &Path) -> Cmd {
    Cmd::new([
        OsString::from("xorriso"),
        "-indev".into(),
        iso.into(),
        "-find".into(),
        "/".into(),
        "-type".into(),
        "f".into(),
    ])
    .env("LC_ALL", "C")
    .deadline(Duration::from_secs(120))
}

/// The paths (without the leading `/`) of a `-find` listing.
pub(crate) fn parse_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("'/"))
        .filter_map(|l| l.strip_suffix('\''))
        .map(str::to_string)
        .collect()
}

/// `osirrox -indev ISO -extract /a dest/a …` for `files` (relative paths on the medium).
pub(crate) fn extract_cmd(iso: &Path, files: &[String], dest: &Path) -> Cmd {
    let mut argv: Vec<OsString> = vec!["osirrox".into(), "-indev".into(), iso.into()];
    for f in files {
        argv.push("-extract".into());
        argv.push(format!("/{f}").into());
        argv.push(dest.join(f).into());
    }
    Cmd::new(argv).deadline(Duration::from_secs(300))
}

/// `mcopy -o` of the edited `grub.cfg` into the FAT image, the clock stopped at SDE (mtools
/// stamps directory entries with it).
pub(crate) fn efi_update_cmd(img: &Path, grub_cfg: &Path, sde: i64) -> Cmd {
    Cmd::new([
        OsString::from("faketime"),
        "-f".into(),
        utc_string(sde).into(),
        "mcopy".into(),
        "-o".into(),
        "-i".into(),
        img.into(),
        grub_cfg.into(),
        "::/EFI/BOOT/grub.cfg".into(),
    ])
    .env("TZ", "UTC")
    .env("MTOOLS_SKIP_CHECK", "1")
    .deadline(Duration::from_secs(60))
}

/// The new ISO: the base replayed (boot records, volume id, every other file kept), edited
/// files `-update`d, new ones `-map`ped; SOURCE_DATE_EPOCH pins the volume's dates.
pub(crate) fn remaster_cmd(
    base: &Path,
    out: &Path,
    updates: &[(PathBuf, String)],
    maps: &[(PathBuf, String)],
    sde: i64,
) -> Cmd {
    let mut argv: Vec<OsString> = vec![
        "xorriso".into(),
        "-indev".into(),
        base.into(),
        "-outdev".into(),
        out.into(),
        "-boot_image".into(),
        "any".into(),
        "replay".into(),
    ];
    for (local, on_medium) in updates {
        argv.extend([
            "-update".into(),
            local.into(),
            format!("/{on_medium}").into(),
        ]);
    }
    for (local, on_medium) in maps {
        argv.extend(["-map".into(), local.into(), format!("/{on_medium}").into()]);
    }
    Cmd::new(argv)
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .deadline(Duration::from_secs(900))
}

/// `implantisomd5 --force` (the installer's media check reads it).
pub(crate) fn implantisomd5_cmd(iso: &Path) -> Cmd {
    Cmd::new([
        OsString::from("implantisomd5"),
        "--force".into(),
        iso.into(),
    ])
    .deadline(Duration::from_secs(600))
}

/// One remaster: the base ISO, what to inject, where the result goes.
#[derive(Clone, Debug)]
pub(crate) struct Remaster<'a> {
    /// The distribution's ISO.
    pub base: &'a Path,
    /// The kickstart, injected as `/<ks_name>`.
    pub ks: &'a Path,
    /// Its name on the medium.
    pub ks_name: &'a str,
    /// The RPM repository, injected as `/xsc/`.
    pub repo: &'a Path,
    /// The new ISO.
    pub out: &'a Path,
    /// SOURCE_DATE_EPOCH.
    pub sde: i64,
}

/// Remasters `r.base` into `r.out` (`work` is scratch). Returns the volume id (kept).
pub(crate) async fn remaster(
    r: &Remaster<'_>,
    work: &Path,
    log: &Path,
) -> Result<String, BuildError> {
    let Remaster {
        base,
        ks,
        ks_name,
        repo,
        out,
        sde,
    } = *r;
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).map_err(BuildError::io("failed to create", work))?;
    let pvd = captured(&pvd_cmd(base), "xorriso -pvd_info").await?;
    let volid = parse_volid(&pvd).ok_or_else(|| BuildError::BadSource {
        source_arg: base.display().to_string(),
        reason: "no volume id in the ISO's primary volume descriptor".into(),
    })?;
    let files = parse_list(&captured(&list_cmd(base), "xorriso -find").await?);
    let mut wanted: Vec<String> = BOOT_CONFIGS
        .iter()
        .chain(&[EFI_IMAGE])
        .filter(|f| files.iter().any(|x| x == *f))
        .map(|f| (*f).to_string())
        .collect();
    wanted.sort();
    let ex = work.join("extracted");
    run(&extract_cmd(base, &wanted, &ex), "osirrox -extract", log).await?;
    let add = vec![ks_arg(&volid, ks_name), CONSOLE_ARG.to_string()];
    let mut updates = Vec::new();
    for f in wanted.iter().filter(|f| *f != EFI_IMAGE) {
        let p = ex.join(f);
        let text = std::fs::read_to_string(&p).map_err(BuildError::io("cannot read", &p))?;
        write_clamped(&p, edit_config(&text, &add).as_bytes(), sde)?;
        updates.push((p, f.clone()));
    }
    let efi_cfg = ex.join("EFI/BOOT/grub.cfg");
    if wanted.iter().any(|f| f == EFI_IMAGE) && efi_cfg.is_file() {
        let img = ex.join(EFI_IMAGE);
        use std::os::unix::fs::PermissionsExt;
        // osirrox extracts read-only (the medium's mode); mcopy writes into it.
        std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o644))
            .map_err(BuildError::io("failed to chmod", &img))?;
        run(
            &efi_update_cmd(&img, &efi_cfg, sde),
            "mcopy grub.cfg into the EFI image",
            log,
        )
        .await?;
        set_time(&img, sde)?;
        updates.push((img, EFI_IMAGE.to_string()));
    }
    let ks_copy = work.join(ks_name);
    let text = std::fs::read(ks).map_err(BuildError::io("cannot read", ks))?;
    write_clamped(&ks_copy, &text, sde)?;
    let repo_copy = work.join(REPO_DIR);
    copy_clamped(repo, &repo_copy, sde)?;
    let maps = vec![
        (ks_copy, ks_name.to_string()),
        (repo_copy, REPO_DIR.to_string()),
    ];
    let _ = std::fs::remove_file(out);
    run(
        &remaster_cmd(base, out, &updates, &maps, sde),
        "xorriso (remaster)",
        log,
    )
    .await?;
    run(&implantisomd5_cmd(out), "implantisomd5", log).await?;
    Ok(volid)
}

fn write_clamped(path: &Path, data: &[u8], sde: i64) -> Result<(), BuildError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(BuildError::io("failed to create", p))?;
    }
    std::fs::write(path, data).map_err(BuildError::io("failed to write", path))?;
    set_time(path, sde)
}

fn set_time(path: &Path, sde: i64) -> Result<(), BuildError> {
    let when = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(sde).unwrap_or(0));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .map_err(BuildError::io("cannot open", path))?;
    f.set_times(
        std::fs::FileTimes::new()
            .set_modified(when)
            .set_accessed(when),
    )
    .map_err(BuildError::io("failed to set times on", path))
}

/// Copies the repository (files only; the entry's bookkeeping left out), every time SDE.
fn copy_clamped(from: &Path, to: &Path, sde: i64) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(BuildError::io("failed to create", to))?;
    let rd = std::fs::read_dir(from).map_err(BuildError::io("cannot read", from))?;
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        if name == "entry.json" || name == "build.log" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if src.is_dir() {
            copy_clamped(&src, &dst, sde)?;
        } else {
            let data = std::fs::read(&src).map_err(BuildError::io("cannot read", &src))?;
            write_clamped(&dst, &data, sde)?;
        }
    }
    set_time(to, sde)
}

async fn run(cmd: &Cmd, what: &str, log: &Path) -> Result<(), BuildError> {
    process::run(cmd, Some(log))
        .await
        .map(|_| ())
        .map_err(BuildError::step(what.to_string()))
}

async fn captured(cmd: &Cmd, what: &str) -> Result<String, BuildError> {
    process::run(cmd, None)
        .await
        .map(|c| format!("{}\n{}", c.stdout, c.tail))
        .map_err(BuildError::step(what.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EL9's isolinux.cfg, abridged (AlmaLinux 9.4 DVD).
    const ISOLINUX: &str = "\
default vesamenu.c32
timeout 600
label linux
  menu label ^Install AlmaLinux 9.4
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd quiet

label check
  menu label Test this ^media & install AlmaLinux 9.4
  menu default
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd rd.live.check quiet
";

    /// EL9's EFI/BOOT/grub.cfg, abridged.
    const GRUB: &str = "\
set default=\"1\"
search --no-floppy --set=root -l 'AlmaLinux-9-4-x86_64-dvd'
menuentry 'Install AlmaLinux 9.4' --class fedora --class gnu-linux --class gnu --class os {
\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd inst.ks=hd:LABEL=old:/old.ks quiet
\tinitrdefi /images/pxeboot/initrd.img
}
menuentry 'Test this media & install AlmaLinux 9.4' --class fedora --class gnu-linux --class gnu --class os {
\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd rd.live.check quiet
\tinitrdefi /images/pxeboot/initrd.img
}
submenu 'Troubleshooting -->' {
\tmenuentry 'Rescue' {
\t\tlinuxefi /images/pxeboot/vmlinuz inst.rescue quiet
\t}
}
";

    fn add() -> Vec<String> {
        vec![ks_arg("XSC EL9 test", "alma9-xsc.ks"), CONSOLE_ARG.into()]
    }

    #[test]
    fn labels_are_udev_escaped() {
        assert_eq!(
            udev_escape("AlmaLinux-9-4-x86_64-dvd"),
            "AlmaLinux-9-4-x86_64-dvd"
        );
        assert_eq!(udev_escape("XSC EL9/x"), "XSC\\x20EL9\\x2fx");
        assert_eq!(
            ks_arg("XSC EL9 test", "alma9-xsc.ks"),
            "inst.ks=hd:LABEL=XSC\\x20EL9\\x20test:/alma9-xsc.ks"
        );
    }

    #[test]
    fn isolinux_entries_get_the_arguments_and_the_install_entry_is_the_default() {
        let got = edit_config(ISOLINUX, &add());
        assert_eq!(
            got,
            "default vesamenu.c32\ntimeout 600\nlabel linux\n  menu default\n  menu label ^Install AlmaLinux 9.4\n  \
             kernel vmlinuz\n  append initrd=initrd.img inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd quiet \
             inst.ks=hd:LABEL=XSC\\x20EL9\\x20test:/alma9-xsc.ks console=ttyS0,115200n8\n\nlabel check\n  \
             menu label Test this ^media & install AlmaLinux 9.4\n  kernel vmlinuz\n  append initrd=initrd.img \
             inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd rd.live.check quiet \
             inst.ks=hd:LABEL=XSC\\x20EL9\\x20test:/alma9-xsc.ks console=ttyS0,115200n8\n"
        );
        // Editing twice changes nothing more.
        assert_eq!(edit_config(&got, &add()), got);
    }

    #[test]
    fn grub_entries_get_the_arguments_an_old_ks_goes_and_default_is_install() {
        let got = edit_config(GRUB, &add());
        assert!(got.starts_with("set default=\"0\"\n"), "{got}");
        assert!(got.contains(
            "\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd quiet \
             inst.ks=hd:LABEL=XSC\\x20EL9\\x20test:/alma9-xsc.ks console=ttyS0,115200n8\n"
        ));
        assert!(!got.contains("old.ks"));
        assert!(
            got.contains("inst.rescue quiet inst.ks="),
            "nested entries too"
        );
        assert_eq!(got.matches("console=ttyS0,115200n8").count(), 3);
        assert!(got.contains("\tinitrdefi /images/pxeboot/initrd.img\n"));
        assert_eq!(edit_config(&got, &add()), got);
    }

    #[test]
    fn listings_and_the_volume_id_are_parsed() {
        let pvd = "xorriso 1.5.4 : RockRidge filesystem manipulator\nVolume Id    : XSC EL9 test\nVolume Set Id: \n";
        assert_eq!(parse_volid(pvd).as_deref(), Some("XSC EL9 test"));
        assert_eq!(parse_volid("Volume Id    : \n"), None);
        let list = "'/isolinux/isolinux.cfg'\n'/images/efiboot.img'\nxorriso : NOTE\n";
        assert_eq!(
            parse_list(list),
            ["isolinux/isolinux.cfg", "images/efiboot.img"]
        );
    }

    #[test]
    fn command_lines_are_data() {
        let c = remaster_cmd(
            Path::new("/b.iso"),
            Path::new("/o.iso"),
            &[(
                PathBuf::from("/w/isolinux.cfg"),
                "isolinux/isolinux.cfg".into(),
            )],
            &[(PathBuf::from("/w/xsc"), "xsc".into())],
            5,
        );
        assert_eq!(
            c.to_string(),
            "SOURCE_DATE_EPOCH=5 LC_ALL=C TZ=UTC xorriso -indev /b.iso -outdev /o.iso -boot_image any replay \
             -update /w/isolinux.cfg /isolinux/isolinux.cfg -map /w/xsc /xsc"
        );
        assert_eq!(
            extract_cmd(
                Path::new("/b.iso"),
                &["EFI/BOOT/grub.cfg".into()],
                Path::new("/x")
            )
            .to_string(),
            "osirrox -indev /b.iso -extract /EFI/BOOT/grub.cfg /x/EFI/BOOT/grub.cfg"
        );
        assert_eq!(
            efi_update_cmd(Path::new("/e.img"), Path::new("/g.cfg"), 0).to_string(),
            "TZ=UTC MTOOLS_SKIP_CHECK=1 faketime -f '1970-01-01 00:00:00' mcopy -o -i /e.img /g.cfg ::/EFI/BOOT/grub.cfg"
        );
        assert_eq!(
            implantisomd5_cmd(Path::new("/o.iso")).to_string(),
            "implantisomd5 --force /o.iso"
        );
    }
}
