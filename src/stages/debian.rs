//! The Debian ISO stage: a live Debian system (debootstrap minbase + updates + security)
//! running the XSC kernel, with the guest ring tests and a self-test, as one hybrid
//! BIOS/UEFI ISO, cached by content and reproducible under SOURCE_DATE_EPOCH.
//!
//! ```text
//! mirrors (xsc.toml / host apt) ─► InRelease digests ─┐
//! kernel stage (qemu profile) ──────────────────────── ├─► key ─► cache hit? ─► done
//! guest programs, recipes/debian/*, SDE ──────────────┘
//!   miss: deb-packages stage ─► debootstrap ─► chroot apt upgrade ─► dpkg -i the XSC .debs
//!         ─► scrub dates/logs
//!         ─► mksquashfs ─► initramfs (busybox live-init) ─► isolinux + GRUB EFI + ESP
//!         ─► xorriso ─► cache entry ─► iso/debian/xsc-debian-amd64.iso (+ .sha256, .packages)
//! ```
//! Command lines come from `iso.rs` (pure); the chroot mounts from `chroot.rs` (guarded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::chroot::{self, ChrootMounts};
use super::deb_package;
use super::error::{BuildError, IsoMismatch};
use super::glibc::{self, GlibcVariant};
use super::iso;
use super::kernel;
use super::package_set;
use super::progress::{BuildEvent, stderr_progress};
use super::stage::{
    self, Cancel, Job, Policy, Product, Progress, Stage, StageKey, cancelled, repo_root,
};
use super::tools::check_tools;
use crate::guest::initramfs::{Archive, Member};
use crate::guest::programs;
use crate::input::config::Config;
use crate::sys::atomic_file;
use crate::sys::cache::{Cache, KeyBuilder};
use crate::sys::epoch::Epoch;
use crate::sys::process::{self, Cmd, ProcessError};

/// Stage name in the cache.
pub(crate) const STAGE: &str = "debian-iso";
/// Version of this recipe (the code here and in iso.rs); bump on any change of output.
pub(crate) const DEBIAN_RECIPE: &str = "debian-iso-recipe-7";
/// The ISO's file name in `iso/debian/`.
pub(crate) const ISO_NAME: &str = "xsc-debian-amd64.iso";
/// The kernel profile the ISO boots: lean, every driver built in, no modules to install.
pub(crate) const KERNEL_PROFILE: &str = "qemu";
/// Host tools the stage runs, with the Debian package of each (checked up front: exit 4
/// with the apt-get line). `doctor` lists them too.
pub(crate) const DEBIAN_TOOLS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("xorriso", "xorriso"),
    (iso::ISOLINUX_BIN, "isolinux"),
    (iso::LDLINUX_C32, "syslinux-common"),
    ("/usr/lib/grub/x86_64-efi/linux.mod", "grub-efi-amd64-bin"),
    ("grub-mkimage", "grub-common"),
    ("mformat", "mtools"),
    ("faketime", "faketime"),
    ("mksquashfs", "squashfs-tools"),
    ("/bin/busybox", "busybox-static"),
    ("wget", "wget"),
    ("dpkg-query", "dpkg"),
    ("chroot", "coreutils"),
    ("gcc", "gcc"),
];

/// Options of `build debian`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DebianBuildOptions {
    /// Rebuild even when the cache has an ISO for these inputs.
    pub force: bool,
}

/// What the stage produced.
#[derive(Clone, Debug)]
pub(crate) struct DebianArtifacts {
    /// The ISO in the cache entry.
    pub iso: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// `dpkg -l` of the root filesystem.
    pub packages: PathBuf,
    /// The cache key.
    pub key: String,
    /// True when built by this call.
    pub built_now: bool,
    /// Facts: suite, mirror, kernel key, SDE, timings.
    pub facts: BTreeMap<String, String>,
    /// The build log (in the entry).
    pub log: Option<PathBuf>,
}

/// The key and what went into it.
#[derive(Clone, Debug)]
pub(crate) struct DebianKey {
    /// The key and its labelled inputs.
    pub stage: StageKey,
    /// Hex key (= `stage.key`).
    pub key: String,
    /// Main mirror.
    pub mirror: String,
    /// Security mirror.
    pub security: String,
    /// SOURCE_DATE_EPOCH: the epoch of the ISO's inputs ([`epoch_inputs`]).
    pub sde: i64,
    /// Where `sde` came from.
    pub epoch: Epoch,
}

/// The mirrors: `[debian] mirror` from xsc.toml, else the host's apt sources.
pub(crate) fn mirrors(cfg: &Config) -> Result<(String, String), BuildError> {
    let mut sources = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sources" || e == "list"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            sources.extend(iso::parse_apt_sources(&text));
        }
    }
    let host = iso::pick_mirrors(&sources, &cfg.debian_suite);
    match (&cfg.debian_mirror, host) {
        (Some(m), _) => {
            let m = m.trim_end_matches('/').to_string();
            Ok((m.clone(), format!("{m}-security")))
        }
        (None, Some(h)) => Ok(h),
        (None, None) => Err(BuildError::BadSource {
            source_arg: "apt sources".into(),
            reason: "no deb line in /etc/apt/sources.list{,.d/*}; set [debian] mirror in xsc.toml"
                .into(),
        }),
    }
}

/// The recipe files of the stage (`recipes/debian/` of the repository).
pub(crate) fn recipe_dir(cfg: &Config) -> PathBuf {
    repo_root(cfg).join("recipes/debian")
}

/// What the ISO's SOURCE_DATE_EPOCH is derived from ([`stage::epoch_of`]): its recipe, the
/// guest programs, and the kernel and glibc series it carries. A commit touching none of
/// them (docs, the harness) keeps the epoch, and so the key.
pub(crate) fn epoch_inputs(cfg: &Config) -> Vec<PathBuf> {
    let root = repo_root(cfg);
    vec![
        recipe_dir(cfg),
        std::path::absolute(&cfg.guest_tests_dir).unwrap_or_else(|_| cfg.guest_tests_dir.clone()),
        kernel::patches_dir(cfg),
        root.join("patches/glibc"),
    ]
}

fn cache_of(cfg: &Config) -> Cache {
    Cache::new(&cfg.cache_dir)
}

/// Fetches the InRelease of each suite (a few kB) to key the archive's state: a new point
/// release or security update changes the key, an unchanged archive keeps it.
async fn archive_identity(
    mirror: &str,
    security: &str,
    suite: &str,
) -> Result<Vec<(String, String)>, BuildError> {
    let mut out = Vec::new();
    for (base, s) in [
        (mirror, suite.to_string()),
        (mirror, format!("{suite}-updates")),
        (security, format!("{suite}-security")),
    ] {
        let url = format!("{base}/dists/{s}/InRelease");
        let cmd = Cmd::new(["wget", "-q", "-O", "-", &url]).deadline(Duration::from_secs(120));
        let got = process::run(&cmd, None)
            .await
            .map_err(BuildError::step(format!("fetching {url}")))?;
        out.push((
            format!("archive/{s}/InRelease"),
            crate::sys::cache::sha256_bytes(got.stdout.as_bytes()),
        ));
    }
    Ok(out)
}

/// Computes the key of the current inputs (fetches the three InRelease files; builds the
/// kernel key, not the kernel).
pub(crate) async fn debian_key(cfg: &Config) -> Result<DebianKey, BuildError> {
    let (mirror, security) = mirrors(cfg)?;
    let epoch = stage::epoch_of(cfg, &epoch_inputs(cfg)).await;
    let sde = epoch.secs;
    let profile = super::kconfig::KernelProfile::named(KERNEL_PROFILE)?;
    let kkey = kernel::kernel_key(cfg, &profile, &super::source::SourceSpec::Pinned).await?;
    let mut k = KeyBuilder::new();
    k.str("recipe", DEBIAN_RECIPE)
        .str("suite", &cfg.debian_suite)
        .str("mirror", &mirror)
        .str("security", &security)
        .str("packages", &iso::EXTRA_PACKAGES.join(","))
        .str("variant", "minbase")
        // The .debs installed are built from what the key already has (kernel, glibc,
        // guest programs, recipes/debian, SDE) by this recipe.
        .str("deb-recipe", deb_package::RECIPE)
        .str("kernel", &kkey.key)
        .str(
            "glibc",
            &glibc::glibc_key(cfg, GlibcVariant::Xsc).await?.key,
        )
        .str("sde", &sde.to_string());
    for (label, digest) in archive_identity(&mirror, &security, &cfg.debian_suite).await? {
        k.str(&label, &digest);
    }
    let rdir = recipe_dir(cfg);
    k.dir("recipes/debian", &rdir)
        .map_err(|e| BuildError::Input {
            what: "recipe directory",
            path: rdir.clone(),
            source: e,
        })?;
    let gt = &cfg.guest_tests_dir;
    let mut guest: Vec<&str> = vec![programs::INIT_SOURCE];
    guest.extend(package_set::PROGRAMS.iter().map(|(_, s, _, _)| *s));
    for rel in guest.iter().copied().chain(["xsc_uapi.h"]) {
        let p = gt.join(rel);
        k.file(&format!("guest/{rel}"), &p)
            .map_err(|e| BuildError::Input {
                what: "guest program",
                path: p.clone(),
                source: e,
            })?;
    }
    k.file("busybox", Path::new("/bin/busybox"))
        .map_err(BuildError::io("cannot read", "/bin/busybox"))?;
    let stage = StageKey::from(&k);
    Ok(DebianKey {
        key: stage.key.clone(),
        stage,
        mirror,
        security,
        sde,
        epoch,
    })
}

fn artifacts_from_entry(e: &crate::sys::cache::Entry, built_now: bool) -> Option<DebianArtifacts> {
    Some(DebianArtifacts {
        iso: e.artifact("iso")?,
        sha256: e.info.facts.get("iso.sha256")?.clone(),
        packages: e.artifact("packages")?,
        key: e.info.key.clone(),
        built_now,
        facts: e.info.facts.clone().into_iter().collect(),
        log: e.artifact("build.log"),
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[expect(unsafe_code, reason = "geteuid")]
    let uid = unsafe { libc::geteuid() };
    uid == 0
}

/// Runs a step with a log, giving up (and killing the step's group) on Ctrl-C.
async fn step(
    what: &str,
    cmd: &Cmd,
    log: &Path,
    cancel: &mut watch::Receiver<bool>,
) -> Result<process::Captured, BuildError> {
    run_step(what, cmd, log, cancel, false).await
}

/// [`step`] with stdout captured (not logged): for commands whose output is a result.
async fn step_captured(
    what: &str,
    cmd: &Cmd,
    log: &Path,
    cancel: &mut watch::Receiver<bool>,
) -> Result<process::Captured, BuildError> {
    run_step(what, cmd, log, cancel, true).await
}

async fn run_step(
    what: &str,
    cmd: &Cmd,
    log: &Path,
    cancel: &mut watch::Receiver<bool>,
    capture: bool,
) -> Result<process::Captured, BuildError> {
    let note = if capture { " (output captured)" } else { "" };
    append_log(log, &format!("\n### {what}{note}\n$ {cmd}\n"));
    if *cancel.borrow() {
        return Err(BuildError::Interrupted);
    }
    tokio::select! {
        r = process::run(cmd, (!capture).then_some(log)) => r.map_err(BuildError::step(what.to_string())),
        () = cancelled(cancel) => Err(BuildError::Interrupted),
    }
}

fn append_log(log: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Builds (or finds in the cache) the ISO and publishes it to `iso/debian/`.
pub(crate) async fn build_debian(
    cfg: &Config,
    opts: &DebianBuildOptions,
    cancel: watch::Receiver<bool>,
) -> Result<DebianArtifacts, BuildError> {
    // Checked before the key (which fetches from the mirrors): `build debian` always needs
    // root, even for a cache hit.
    if !is_root() {
        return Err(not_root());
    }
    check_tools(DEBIAN_TOOLS)?;
    let policy = Policy {
        force: opts.force,
        no_build: false,
    };
    let mut progress = stderr_progress("debian");
    let a = ensure_debian(cfg, policy, &Cancel::new(cancel), &mut progress).await?;
    publish(cfg, &a)?;
    Ok(a)
}

fn not_root() -> BuildError {
    BuildError::NotRoot {
        what: "build debian (debootstrap, chroot and mounts need root)".into(),
    }
}

/// The ISO for the current inputs through the stage framework: cached, built (as root), or
/// (`--no-build`) [`BuildError::NotCached`]. Not published to `iso/debian/`
/// ([`publish`] does that). `--force` over a valid entry must give the same ISO bit for bit.
pub(crate) async fn ensure_debian(
    cfg: &Config,
    policy: Policy,
    cancel: &Cancel,
    progress: Progress<'_>,
) -> Result<DebianArtifacts, BuildError> {
    let key = debian_key(cfg).await?;
    let cache = cache_of(cfg);
    // One build per machine: the work tree, its chroot mounts and the .deb cache are shared
    // by every process (a CI run's tests build the same ISO side by side).
    let stage = Stage {
        name: STAGE,
        key: &key.stage,
        lock: "debian-iso.lock",
        log_dir: None,
    };
    let got = stage::ensure(&cache, stage, policy, cancel, progress, |job: Job<'_>| {
        build_entry(cfg, &cache, &key, policy, job)
    })
    .await?;
    artifacts_from_entry(&got.entry, got.built_now).ok_or_else(|| BuildError::MissingArtifact {
        path: got.entry.dir.join(ISO_NAME),
        log: None,
    })
}

/// One build of the ISO into the staging entry: the log lives in it (`build.log`), a
/// failed build's log is kept in `<cache>/logs/`, and a `--force` rebuild is compared with
/// the entry it would replace.
async fn build_entry(
    cfg: &Config,
    cache: &Cache,
    key: &DebianKey,
    policy: Policy,
    job: Job<'_>,
) -> Result<Product, BuildError> {
    if !is_root() {
        return Err(not_root());
    }
    check_tools(DEBIAN_TOOLS)?;
    let Job {
        staged,
        progress,
        mut cancel,
        ..
    } = job;
    let previous = if policy.force {
        cache.lookup(STAGE, &key.key)
    } else {
        None
    };
    let log = staged.join("build.log");
    std::fs::write(&log, format!("key {}\n", key.key))
        .map_err(BuildError::io("failed to create", &log))?;
    progress(&BuildEvent::Log { path: log.clone() });
    let work = cache.work_dir(STAGE, "build");
    let result = build_in(cfg, key, &work, &staged, &log, &mut cancel, progress).await;
    // The work tree (a whole root filesystem) is not kept: the .debs are cached instead.
    let leftover = chroot::mounts_below(&work);
    if leftover.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
    }
    let facts = match result {
        Ok(f) => f,
        Err(e) => {
            let keep = cache.root().join("logs");
            let _ = std::fs::create_dir_all(&keep);
            let kept = keep.join(format!("debian-failed-{}.log", &key.key[..12]));
            let _ = std::fs::copy(&log, &kept);
            progress(&BuildEvent::Step {
                name: "build log kept".into(),
                detail: kept.display().to_string(),
            });
            return Err(e);
        }
    };
    // `--force` over a valid entry: the new ISO must equal the old one bit for bit. When it
    // does, the commit keeps the old entry (same key).
    if let Some(prev) = previous {
        let old = prev
            .info
            .facts
            .get("iso.sha256")
            .cloned()
            .unwrap_or_default();
        let new = facts.get("iso.sha256").cloned().unwrap_or_default();
        if old != new {
            let report = compare(&prev.dir.join(ISO_NAME), &staged.join(ISO_NAME), &log).await;
            // Kept outside stages/ (never a cache entry), beside the work tree, for diffing.
            let kept = cache.work_dir(STAGE, &format!("mismatch-{}", &key.key[..12]));
            let _ = std::fs::remove_dir_all(&kept);
            let _ = std::fs::rename(&staged, &kept);
            let log = kept.join("build.log");
            return Err(BuildError::IsoNotReproducible(Box::new(IsoMismatch {
                first: old,
                second: new,
                first_tree: prev.dir.clone(),
                second_tree: kept,
                log: Some(log),
                differences: report,
            })));
        }
        progress(&BuildEvent::Step {
            name: "--force rebuild is bit-identical to the cached ISO".into(),
            detail: new,
        });
    }
    let mut product = Product::new(["build.log"], []);
    product.artifacts.insert("iso".into(), ISO_NAME.into());
    product
        .artifacts
        .insert("packages".into(), "packages.txt".into());
    product.facts = facts;
    Ok(product)
}

/// Which files differ between two ISOs: diffoscope when installed, else the first
/// differing byte offsets.
async fn compare(a: &Path, b: &Path, log: &Path) -> String {
    if process::which("diffoscope").is_some() {
        let cmd = iso::diffoscope_cmd(a, b);
        return match process::run(&cmd, Some(log)).await {
            Ok(out) => out.stdout,
            Err(ProcessError::Failed { tail, .. }) => tail,
            Err(e) => format!("diffoscope failed: {e}"),
        };
    }
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => {
            let diffs: Vec<usize> = x
                .iter()
                .zip(&y)
                .enumerate()
                .filter(|(_, (p, q))| p != q)
                .map(|(i, _)| i)
                .take(20)
                .collect();
            format!(
                "sizes {} and {}; first differing offsets {:?} (install diffoscope for file names)",
                x.len(),
                y.len(),
                diffs
            )
        }
        _ => "cannot read both ISOs".into(),
    }
}

/// Copies the ISO, its `.sha256` and the package list to `iso/debian/`.
pub(crate) fn publish(cfg: &Config, a: &DebianArtifacts) -> Result<PathBuf, BuildError> {
    let dir = repo_root(cfg).join("iso/debian");
    std::fs::create_dir_all(&dir).map_err(BuildError::io("failed to create", &dir))?;
    let dest = dir.join(ISO_NAME);
    // A hard link when the cache is on the same filesystem (no 200 MB copy), else a copy.
    atomic_file::place(&dest, |tmp| {
        std::fs::hard_link(&a.iso, tmp).or_else(|_| std::fs::copy(&a.iso, tmp).map(drop))
    })
    .map_err(BuildError::io("failed to write", &dest))?;
    let sum = dir.join(format!("{ISO_NAME}.sha256"));
    atomic_file::write(&sum, format!("{}  {ISO_NAME}\n", a.sha256).as_bytes())
        .map_err(BuildError::io("failed to write", &sum))?;
    let pk = dir.join("xsc-debian-amd64.packages.txt");
    atomic_file::place(&pk, |tmp| std::fs::copy(&a.packages, tmp).map(drop))
        .map_err(BuildError::io("failed to write", &pk))?;
    Ok(dest)
}

async fn build_in(
    cfg: &Config,
    key: &DebianKey,
    work: &Path,
    staged: &Path,
    log: &Path,
    cancel: &mut watch::Receiver<bool>,
    progress: Progress<'_>,
) -> Result<BTreeMap<String, String>, BuildError> {
    let sde = key.sde;
    let suite = &cfg.debian_suite;
    let mut facts = BTreeMap::new();
    let t0 = Instant::now();
    if !chroot::mounts_below(work).is_empty() {
        return Err(BuildError::Io {
            what: "mounts left below the work tree (unmount them first):".into(),
            path: work.to_path_buf(),
            source: std::io::Error::other("busy"),
        });
    }
    let _ = std::fs::remove_dir_all(work);
    let root = work.join("rootfs");
    let tree = work.join("iso");
    for d in [&root, &tree] {
        std::fs::create_dir_all(d).map_err(BuildError::io("failed to create", d))?;
    }

    // The XSC packages first (kernel, glibc, guest programs, the .debs): cheap when
    // cached, and a failure there should not cost a debootstrap. Through their own stages
    // (cached, or built now under their lock), stopped by the same Ctrl-C as this one.
    let nested = Cancel::new(cancel.clone());
    let inputs = package_set::gather(cfg, Policy::default(), &nested).await?;
    let debs_art = deb_package::ensure_debs(
        cfg,
        &inputs,
        Policy::default(),
        &nested,
        &mut stderr_progress("packages"),
    )
    .await?;

    // Root filesystem.
    let debs = cache_of(cfg).downloads().join("debian-debs");
    std::fs::create_dir_all(&debs).map_err(BuildError::io("failed to create", &debs))?;
    let t = Instant::now();
    progress(&BuildEvent::Step {
        name: format!("debootstrap {suite}"),
        detail: key.mirror.clone(),
    });
    step(
        "debootstrap",
        &iso::debootstrap_cmd(suite, &root, &key.mirror, &debs, iso::EXTRA_PACKAGES, sde),
        log,
        cancel,
    )
    .await?;
    facts.insert("time.debootstrap".into(), secs(t.elapsed()));
    let t = Instant::now();
    write(
        &root.join("etc/apt/sources.list"),
        iso::sources_list(&key.mirror, &key.security, suite).as_bytes(),
    )?;
    // No daemons start inside the chroot during upgrades.
    write_mode(
        &root.join("usr/sbin/policy-rc.d"),
        b"#!/bin/sh\nexit 101\n",
        0o755,
    )?;
    let archives = root.join("var/cache/apt/archives");
    link_debs(&debs, &archives)?;
    {
        let mut mounts = ChrootMounts::mount(&root).map_err(BuildError::io(
            "failed to mount pseudo filesystems in",
            &root,
        ))?;
        step(
            "apt-get update",
            &iso::chroot_cmd(&root, &["apt-get", "update"], sde),
            log,
            cancel,
        )
        .await?;
        step(
            "apt-get upgrade (updates + security)",
            &iso::chroot_cmd(&root, &iso::apt_upgrade_args(), sde),
            log,
            cancel,
        )
        .await?;
        // The live user: no password is set anywhere (root stays locked); see README.
        step(
            "useradd live",
            &iso::chroot_cmd(&root, &["useradd", "-m", "-s", "/bin/bash", "live"], sde),
            log,
            cancel,
        )
        .await?;
        step(
            "passwd -d live",
            &iso::chroot_cmd(&root, &["passwd", "-d", "live"], sde),
            log,
            cancel,
        )
        .await?;
        mounts.release();
    }
    link_debs(&archives, &debs)?;
    facts.insert("time.upgrade".into(), secs(t.elapsed()));

    // XSC: the same .debs users install (kernel, glibc side by side, tests), by dpkg in
    // the chroot; the boot loader's kernel below is the one dpkg put in /boot.
    let in_root = root.join(iso::DEBS_IN_ROOT);
    std::fs::create_dir_all(&in_root).map_err(BuildError::io("failed to create", &in_root))?;
    let mut names = Vec::new();
    for deb in &debs_art.debs {
        let name = deb
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        copy_mode(deb, &in_root.join(&name), 0o644)?;
        names.push(name);
    }
    names.sort();
    {
        let mut mounts = ChrootMounts::mount(&root).map_err(BuildError::io(
            "failed to mount pseudo filesystems in",
            &root,
        ))?;
        step(
            "dpkg -i the XSC packages",
            &iso::dpkg_install_cmd(&root, &names, sde),
            log,
            cancel,
        )
        .await?;
        mounts.release();
    }
    std::fs::remove_dir_all(&in_root).map_err(BuildError::io("failed to remove", &in_root))?;
    copy_mode(
        &recipe_dir(cfg).join("inittab"),
        &root.join("etc/inittab"),
        0o644,
    )?;
    write(&root.join("etc/hostname"), b"xsc-debian\n")?;
    write(
        &root.join("etc/hosts"),
        b"127.0.0.1\tlocalhost\n127.0.1.1\txsc-debian\n",
    )?;

    // Package list (before the dpkg files are scrubbed of nothing: dpkg's status is kept).
    // Captured, not logged: with a log, process::run sends stdout there.
    let pk = step_captured("dpkg -l", &iso::dpkg_list_cmd(&root), log, cancel).await?;
    if !pk.stdout.lines().any(|l| l.starts_with("ii ")) {
        return Err(BuildError::MissingArtifact {
            path: root.join("var/lib/dpkg/status"),
            log: Some(log.to_path_buf()),
        });
    }
    write(&staged.join("packages.txt"), pk.stdout.as_bytes())?;
    facts.insert(
        "packages".into(),
        pk.stdout
            .lines()
            .filter(|l| l.starts_with("ii "))
            .count()
            .to_string(),
    );
    scrub(&root, sde)?;

    // squashfs.
    let t = Instant::now();
    let live = tree.join("live");
    std::fs::create_dir_all(&live).map_err(BuildError::io("failed to create", &live))?;
    step(
        "mksquashfs",
        &iso::mksquashfs_cmd(&root, &tree.join(iso::SQUASHFS_PATH), sde),
        log,
        cancel,
    )
    .await?;
    facts.insert("time.mksquashfs".into(), secs(t.elapsed()));

    // Kernel (linux-image-xsc's, as installed), initramfs, boot loaders.
    let boot = tree.join("boot");
    std::fs::create_dir_all(&boot).map_err(BuildError::io("failed to create", &boot))?;
    let installed = root.join(format!("boot/vmlinuz-{}", inputs.release));
    copy_mode(&installed, &tree.join(iso::KERNEL_PATH), 0o644)?;
    let rdir = recipe_dir(cfg);
    let init_script = std::fs::read_to_string(rdir.join("live-init.sh"))
        .map_err(BuildError::io("cannot read", rdir.join("live-init.sh")))?
        .replace("@LABEL@", iso::VOLUME_LABEL);
    let cpio = live_initramfs(&init_script, Path::new("/bin/busybox"), sde)?;
    write(&tree.join(iso::INITRD_PATH), &cpio)?;
    let isodir = tree.join(iso::ISOLINUX_DIR);
    std::fs::create_dir_all(&isodir).map_err(BuildError::io("failed to create", &isodir))?;
    copy_mode(
        Path::new(iso::ISOLINUX_BIN),
        &isodir.join("isolinux.bin"),
        0o644,
    )?;
    copy_mode(
        Path::new(iso::LDLINUX_C32),
        &isodir.join("ldlinux.c32"),
        0o644,
    )?;
    write(&isodir.join("isolinux.cfg"), iso::isolinux_cfg().as_bytes())?;
    let efi_work = work.join("efi");
    std::fs::create_dir_all(&efi_work).map_err(BuildError::io("failed to create", &efi_work))?;
    let embedded = efi_work.join("embedded.cfg");
    write(&embedded, iso::grub_embedded_cfg().as_bytes())?;
    let bootx64 = efi_work.join("BOOTX64.EFI");
    step(
        "grub-mkimage",
        &iso::grub_mkimage_cmd(&bootx64, &embedded),
        log,
        cancel,
    )
    .await?;
    let esp = tree.join(iso::EFI_IMAGE_PATH);
    let f = std::fs::File::create(&esp).map_err(BuildError::io("failed to create", &esp))?;
    f.set_len(iso::EFI_IMAGE_BYTES)
        .map_err(BuildError::io("failed to size", &esp))?;
    drop(f);
    // mcopy -m stores the file's mtime in the FAT entry: pin it, or the build time leaks.
    clamp_mtimes(&efi_work, sde)?;
    for c in iso::efi_image_cmds(&esp, &bootx64, sde) {
        step("ESP image (mtools)", &c, log, cancel).await?;
    }
    write(
        &tree.join(".disk/info"),
        format!("XSC Debian {suite} live amd64\n").as_bytes(),
    )?;

    // Every mtime of the ISO tree = SDE: xorriso records them and does not clamp itself.
    clamp_mtimes(&tree, sde)?;
    let t = Instant::now();
    let out = staged.join(ISO_NAME);
    step("xorriso", &iso::xorriso_cmd(&tree, &out, sde), log, cancel).await?;
    facts.insert("time.xorriso".into(), secs(t.elapsed()));
    let sha = crate::sys::cache::sha256_file(&out).map_err(BuildError::io("cannot read", &out))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    facts.insert("iso.sha256".into(), sha);
    facts.insert("iso.bytes".into(), size.to_string());
    facts.insert("time.total".into(), secs(t0.elapsed()));
    facts.insert("suite".into(), suite.clone());
    facts.insert("mirror".into(), key.mirror.clone());
    facts.insert("kernel.key".into(), inputs.kernel_key.clone());
    facts.insert("kernel.release".into(), inputs.release.clone());
    facts.insert("deb-packages.key".into(), debs_art.key.clone());
    facts.insert("sde".into(), sde.to_string());
    facts.insert("sde.source".into(), key.epoch.source.describe().into());
    Ok(facts)
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn write(path: &Path, data: &[u8]) -> Result<(), BuildError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(BuildError::io("failed to create", p))?;
    }
    std::fs::write(path, data).map_err(BuildError::io("failed to write", path))
}

fn write_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    write(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(BuildError::io("failed to chmod", path))
}

fn copy_mode(from: &Path, to: &Path, mode: u32) -> Result<(), BuildError> {
    let data = std::fs::read(from).map_err(BuildError::io("cannot read", from))?;
    write_mode(to, &data, mode)
}

/// Hard-links (or copies) every `.deb` of `from` missing in `to`: the chroot's apt archive
/// is filled from the download cache before the upgrade and drained into it after.
fn link_debs(from: &Path, to: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(BuildError::io("failed to create", to))?;
    let rd = std::fs::read_dir(from).map_err(BuildError::io("cannot read", from))?;
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "deb") {
            continue;
        }
        let dest = to.join(e.file_name());
        if dest.exists() {
            continue;
        }
        if std::fs::hard_link(&p, &dest).is_err() {
            std::fs::copy(&p, &dest).map_err(BuildError::io("failed to copy", &p))?;
        }
    }
    Ok(())
}

/// Removes what differs between two builds of the same inputs (logs, caches, machine ids,
/// backup files) and pins the date fields of /etc/shadow to SOURCE_DATE_EPOCH.
pub(crate) fn scrub(root: &Path, sde: i64) -> Result<(), BuildError> {
    for rel in [
        "usr/sbin/policy-rc.d",
        "var/cache/ldconfig/aux-cache",
        "var/lib/dbus/machine-id",
        "var/lib/systemd/random-seed",
        "var/lib/urandom/random-seed",
        "etc/shadow-",
        "etc/gshadow-",
        "etc/passwd-",
        "etc/group-",
        "etc/subuid-",
        "etc/subgid-",
        "var/lib/dpkg/status-old",
        "var/lib/dpkg/diversions-old",
        "var/lib/dpkg/statoverride-old",
        "var/cache/debconf/config.dat-old",
        "var/cache/debconf/templates.dat-old",
        "var/cache/debconf/passwords.dat-old",
    ] {
        let _ = std::fs::remove_file(root.join(rel));
    }
    for dir in [
        "var/log",
        "var/cache/apt",
        "var/lib/apt/lists",
        "var/cache/man",
        "tmp",
        "var/tmp",
        "run",
    ] {
        empty_dir(&root.join(dir))?;
    }
    write(&root.join("etc/machine-id"), b"")?;
    let shadow = root.join("etc/shadow");
    if let Ok(text) = std::fs::read_to_string(&shadow) {
        write(&shadow, shadow_at(&text, sde).as_bytes())?;
    }
    Ok(())
}

/// /etc/shadow with every "last change" field (days since the epoch) set to SDE's day.
pub(crate) fn shadow_at(text: &str, sde: i64) -> String {
    let day = (sde / 86_400).to_string();
    text.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if f.len() > 2 && !f[2].is_empty() {
                f[2] = &day;
            }
            format!("{}\n", f.join(":"))
        })
        .collect()
}

/// Deletes the contents of a directory, keeping it (and its mode).
fn empty_dir(dir: &Path) -> Result<(), BuildError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(BuildError::io("failed to remove", &p))?;
    }
    Ok(())
}

/// Sets the mtime (and atime) of everything below `dir` to `sde`.
pub(crate) fn clamp_mtimes(dir: &Path, sde: i64) -> Result<(), BuildError> {
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(sde).unwrap_or(0));
    let times = std::fs::FileTimes::new()
        .set_modified(when)
        .set_accessed(when);
    let mut all = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        if all[i].is_dir() {
            let rd = std::fs::read_dir(&all[i]).map_err(BuildError::io("cannot read", &all[i]))?;
            let mut kids: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            kids.sort();
            all.extend(kids);
        }
        i += 1;
    }
    // Children first, so setting a directory's time is not undone by touching its files.
    for p in all.iter().rev() {
        let f = std::fs::File::open(p).map_err(BuildError::io("cannot open", p))?;
        f.set_times(times)
            .map_err(BuildError::io("failed to set times on", p))?;
    }
    Ok(())
}

/// The live initramfs: `/init` (the busybox script), busybox, and the mount points.
pub(crate) fn live_initramfs(init: &str, busybox: &Path, sde: i64) -> Result<Vec<u8>, BuildError> {
    let mut a = Archive::skeleton();
    for d in ["medium", "lower", "cow", "root"] {
        a.add(d, Member::Dir);
    }
    a.add(
        "init",
        Member::File {
            mode: 0o755,
            data: init.as_bytes().to_vec(),
        },
    );
    a.add(
        "bin/busybox",
        Member::File {
            mode: 0o755,
            data: std::fs::read(busybox).map_err(BuildError::io("cannot read", busybox))?,
        },
    );
    Ok(a.to_newc(u32::try_from(sde).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_stops_on_cancel_and_not_when_nobody_can_cancel() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        let (tx, mut rx) = watch::channel(false);
        let sleep = Cmd::new(["sleep", "30"]);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(true).unwrap();
        });
        let r = step("sleep", &sleep, &log, &mut rx).await;
        // Had the cancel not stopped it, `sleep 30` would have ended and the step succeeded.
        assert!(matches!(r, Err(BuildError::Interrupted)), "{r:?}");
        stopper.await.unwrap();
        // A receiver whose sender is gone never cancels: the step runs to its end.
        let mut orphan = watch::channel(false).1;
        let ok = step("true", &Cmd::new(["true"]), &log, &mut orphan).await;
        assert!(ok.is_ok(), "{ok:?}");
        assert!(std::fs::read_to_string(&log).unwrap().contains("### sleep"));
    }

    #[tokio::test]
    #[allow(clippy::disallowed_macros, reason = "a test's skip notice")]
    async fn refuses_without_root_before_touching_anything() {
        if is_root() {
            eprintln!("skipped: running as root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let cfg = super::super::source::tests::test_config(d.path());
        let r = build_debian(
            &cfg,
            &DebianBuildOptions::default(),
            watch::channel(false).1,
        )
        .await;
        assert!(matches!(r, Err(BuildError::NotRoot { .. })), "{r:?}");
    }

    #[test]
    fn shadow_dates_are_pinned_and_empty_fields_kept() {
        let text = "root:*:20000:0:99999:7:::\nlive::20423:0:99999:7:::\nx:!:::::::\n";
        assert_eq!(
            shadow_at(text, 1_700_000_000),
            "root:*:19675:0:99999:7:::\nlive::19675:0:99999:7:::\nx:!:::::::\n"
        );
    }

    #[test]
    fn scrub_removes_logs_caches_and_ids() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for f in [
            "var/log/dpkg.log",
            "var/cache/apt/pkgcache.bin",
            "var/lib/apt/lists/x_InRelease",
            "etc/machine-id",
            "var/cache/ldconfig/aux-cache",
            "etc/shadow-",
        ] {
            std::fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            std::fs::write(r.join(f), "x").unwrap();
        }
        std::fs::write(r.join("etc/shadow"), "root:*:20000:0:99999:7:::\n").unwrap();
        scrub(r, 86_400 * 10).unwrap();
        assert!(r.join("var/log").is_dir());
        assert_eq!(std::fs::read_dir(r.join("var/log")).unwrap().count(), 0);
        assert!(!r.join("var/cache/apt/pkgcache.bin").exists());
        assert!(!r.join("var/lib/apt/lists/x_InRelease").exists());
        assert!(!r.join("var/cache/ldconfig/aux-cache").exists());
        assert!(!r.join("etc/shadow-").exists());
        assert_eq!(std::fs::read(r.join("etc/machine-id")).unwrap(), b"");
        assert_eq!(
            std::fs::read_to_string(r.join("etc/shadow")).unwrap(),
            "root:*:10:0:99999:7:::\n"
        );
    }

    #[test]
    fn mtimes_are_clamped_and_the_initramfs_is_reproducible() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), "x").unwrap();
        clamp_mtimes(d.path(), 1_700_000_000).unwrap();
        for p in ["a", "a/b", "a/b/f"] {
            let m = std::fs::metadata(d.path().join(p))
                .unwrap()
                .modified()
                .unwrap();
            assert_eq!(
                m.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
                1_700_000_000,
                "{p}"
            );
        }
        let bb = d.path().join("a/b/f");
        let x = live_initramfs("#!/bin/busybox sh\n", &bb, 5).unwrap();
        assert_eq!(x, live_initramfs("#!/bin/busybox sh\n", &bb, 5).unwrap());
        assert!(
            live_initramfs("x", Path::new("/nonexistent/busybox"), 5)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/busybox")
        );
    }

    #[test]
    fn links_only_debs_and_keeps_existing() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("x_1_amd64.deb"), "deb").unwrap();
        std::fs::write(a.join("lock"), "").unwrap();
        link_debs(&a, &b).unwrap();
        assert!(b.join("x_1_amd64.deb").is_file());
        assert!(!b.join("lock").exists());
        link_debs(&a, &b).unwrap();
    }

    #[test]
    fn the_recipe_files_exist_and_say_what_the_code_expects() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/debian");
        let init = std::fs::read_to_string(dir.join("live-init.sh")).unwrap();
        assert!(init.contains("@LABEL@") && init.contains("switch_root /root /sbin/init"));
        assert!(init.contains(iso::SQUASHFS_PATH));
        let selftest = std::fs::read_to_string(dir.join("xsc-selftest.sh")).unwrap();
        assert!(selftest.contains("/sys/firmware/qemu_fw_cfg/by_name/opt/org.xsc/selftest/raw"));
        assert!(selftest.contains("/usr/lib/xsc/xsc-init /usr/lib/xsc/plan"));
        let inittab = std::fs::read_to_string(dir.join("inittab")).unwrap();
        assert!(inittab.contains("ttyS0") && inittab.contains("/usr/sbin/xsc-selftest"));
    }
}
