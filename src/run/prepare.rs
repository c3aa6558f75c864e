//! Where the test runner asks the build stages for images: the XSC kernel, the XSC glibc
//! (for guest programs linked against it), the Debian ISO and the EL install ISOs, each
//! through the one stage framework (`stages::stage::ensure`). A cache hit costs a key computation and prints
//! nothing; a miss builds (and says so) unless `--no-build`, which makes it exit 3. A
//! build started here stops on the runner's Ctrl-C like `build kernel|glibc` do (make gets
//! SIGTERM, nothing is stored, the stage lock is released).

use std::path::PathBuf;

use tokio::sync::watch;

use crate::error::Error;
use crate::input::config::Config;
use crate::stages::el_install_iso::Distro;
use crate::stages::progress::announced_progress;
use crate::stages::stage::{Cancel, Policy};
use crate::stages::{
    self, BuildError, GlibcArtifacts, GlibcBuildOptions, GlibcVariant, KernelBuildOptions,
};

/// An image this project built that a scenario boots: what a release ships, named by
/// kind so no caller has to guess it from a path or know a stage's cache-entry layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BuiltImage {
    /// The XSC kernel of the kernel stage.
    XscKernel {
        /// Its bzImage.
        bzimage: PathBuf,
        /// `make kernelrelease`.
        release: String,
        /// The build profile.
        profile: String,
    },
    /// The Debian live ISO of the debian-iso stage.
    DebianIso {
        /// The ISO.
        iso: PathBuf,
        /// `dpkg -l` of its root filesystem.
        packages: PathBuf,
    },
    /// The guest-tests initramfs assembled for a scenario.
    TestInitramfs {
        /// The cpio archive.
        path: PathBuf,
    },
    /// The remastered EL9 install ISO of `build alma|rocky`.
    ElIso {
        /// `alma` or `rocky`.
        distro: &'static str,
        /// The ISO.
        iso: PathBuf,
    },
}

/// One image a scenario needs (from a stage or a file): where it is, the facts the report
/// records, and what of it this project built (`None`: a file the user named, Debian's
/// stock kernel).
#[derive(Clone, Debug)]
pub(crate) struct Image {
    /// The file.
    pub path: PathBuf,
    /// Report properties.
    pub properties: Vec<(String, String)>,
    /// What a release would ship of it.
    pub built: Option<BuiltImage>,
}

/// The policy of a runner request: never `--force`; `--no-build` refuses to build.
fn policy(no_build: bool) -> Policy {
    Policy {
        force: false,
        no_build,
    }
}

/// A stage's `--no-build` miss as the runner reports it: what is missing and the command
/// that builds it.
fn not_built(what: String, hint: String) -> impl FnOnce(BuildError) -> Error {
    move |e| match e {
        BuildError::NotCached { .. } => Error::NotBuilt { what, hint },
        other => other.into(),
    }
}

/// The XSC kernel of `profile`: its bzImage and the facts the report records.
pub(crate) async fn xsc_kernel(
    cfg: &Config,
    profile: &str,
    no_build: bool,
    cancel: Option<watch::Receiver<bool>>,
) -> Result<Image, Error> {
    let opts = KernelBuildOptions {
        profile: Some(profile.to_string()),
        ..KernelBuildOptions::default()
    };
    let mut progress = announced_progress(
        "kernel",
        format!(
            "building the XSC kernel (profile {profile}): not in the cache for the current patches and configs"
        ),
    );
    let cancel = Cancel::from_option(cancel);
    let artifacts =
        stages::kernel::ensure_kernel(cfg, &opts, policy(no_build), &cancel, &mut progress)
            .await
            .map_err(not_built(
                format!("the XSC kernel (profile {profile})"),
                format!("xsc-release build kernel --profile {profile}"),
            ))?;
    let mut facts = vec![
        (
            "kernel.release".to_string(),
            artifacts.kernelrelease.clone(),
        ),
        ("kernel.profile".to_string(), profile.to_string()),
        ("kernel.key".to_string(), artifacts.key.clone()),
    ];
    facts.extend(
        artifacts
            .facts
            .iter()
            .filter(|(k, _)| k.starts_with("toolchain"))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok(Image {
        path: artifacts.bzimage.clone(),
        properties: facts,
        built: Some(BuiltImage::XscKernel {
            bzimage: artifacts.bzimage,
            release: artifacts.kernelrelease,
            profile: profile.to_string(),
        }),
    })
}

/// One glibc request at a time in this process: parallel scenarios share one build (the
/// stage lock would serialise them too, but each would announce it).
static GLIBC_BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The XSC glibc of `variant` for the current inputs (built through the stage cache unless
/// `--no-build`).
pub(crate) async fn xsc_glibc(
    cfg: &Config,
    variant: GlibcVariant,
    no_build: bool,
    cancel: Option<watch::Receiver<bool>>,
) -> Result<GlibcArtifacts, Error> {
    let _one = GLIBC_BUILD.lock().await;
    let opts = GlibcBuildOptions {
        variant,
        ..GlibcBuildOptions::default()
    };
    let mut progress = announced_progress(
        "glibc",
        format!(
            "building the XSC glibc (variant {}): not in the cache for the current patches",
            variant.name()
        ),
    );
    let cancel = Cancel::from_option(cancel);
    stages::glibc::ensure_glibc(cfg, &opts, policy(no_build), &cancel, &mut progress)
        .await
        .map_err(not_built(
            format!("the XSC glibc (variant {})", variant.name()),
            format!("xsc-release build glibc --variant {}", variant.name()),
        ))
}

/// One Debian ISO request at a time in this process: scenarios run in parallel, and the
/// three ISO scenarios must share one build (the later ones find it in the cache).
static DEBIAN_BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Debian live ISO for the current inputs (built through the stage cache unless
/// `--no-build`, and then published to `iso/debian/`) and the facts the report records.
pub(crate) async fn debian_iso(
    cfg: &Config,
    no_build: bool,
    cancel: Option<watch::Receiver<bool>>,
) -> Result<Image, Error> {
    let _one = DEBIAN_BUILD.lock().await;
    let mut progress = announced_progress(
        "debian",
        "building the Debian ISO: not in the cache for the current inputs".into(),
    );
    let cancel = Cancel::from_option(cancel);
    let artifacts = stages::debian::ensure_debian(cfg, policy(no_build), &cancel, &mut progress)
        .await
        .map_err(not_built(
            "the Debian ISO".into(),
            "xsc-release build debian".into(),
        ))?;
    if artifacts.built_now {
        stages::debian::publish(cfg, &artifacts)?;
    }
    let mut facts = vec![
        ("iso.sha256".to_string(), artifacts.sha256.clone()),
        ("iso.key".to_string(), artifacts.key.clone()),
    ];
    for k in ["kernel.release", "kernel.key", "suite", "sde"] {
        if let Some(v) = artifacts.facts.get(k) {
            facts.push((format!("debian.{k}"), v.clone()));
        }
    }
    Ok(Image {
        path: artifacts.iso.clone(),
        properties: facts,
        built: Some(BuiltImage::DebianIso {
            iso: artifacts.iso,
            packages: artifacts.packages,
        }),
    })
}

/// One EL install ISO request at a time in this process (the two gates share the packages).
static EL_BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Why the install ISO of `d` cannot be had here, if so: its base ISO is not configured.
/// Such a scenario is *not applicable* (reported as not run), not an error.
pub(crate) fn el_not_applicable(cfg: &Config, d: Distro) -> Option<String> {
    d.base(cfg).is_none().then(|| {
        format!(
            "the {} base ISO is not configured (add [sources.{}] iso = \"<path or URL>\" and sha256 = \"<its sha256>\" to xsc.toml; docs/el-iso.md)",
            d.title(),
            d.name()
        )
    })
}

/// The remastered install ISO of `d` (packages and ISO through the stage cache unless
/// `--no-build`; the base ISO must be configured: see [`el_not_applicable`]).
pub(crate) async fn el_iso(
    cfg: &Config,
    d: Distro,
    no_build: bool,
    cancel: Option<watch::Receiver<bool>>,
) -> Result<Image, Error> {
    let _one = EL_BUILD.lock().await;
    let base = d
        .base(cfg)
        .ok_or_else(|| Error::from(stages::el_install_iso::not_configured(d)))?;
    let cancel = Cancel::from_option(cancel);
    let hint = format!("xsc-release build {}", d.name());
    let what = format!("the {} install ISO", d.title());
    let inputs =
        stages::package_set::gather_profile(cfg, &base.kernel_profile, policy(no_build), &cancel)
            .await
            .map_err(not_built(what.clone(), hint.clone()))?;
    let mut progress = announced_progress(
        "packages",
        "building the RPM packages: not in the cache for the current inputs".into(),
    );
    let rpms =
        stages::rpm_package::ensure_rpms(cfg, &inputs, policy(no_build), &cancel, &mut progress)
            .await
            .map_err(not_built(what.clone(), hint.clone()))?;
    let file = stages::el_install_iso::base_file(cfg, base).await?;
    let mut progress = announced_progress(
        d.name(),
        format!(
            "remastering the {} ISO: not in the cache for the current inputs",
            d.title()
        ),
    );
    // Signed when `[packages]` names a key, as `build alma|rocky` makes it.
    let medium = stages::el_install_iso::SignedMedium::make(cfg, d, &rpms, inputs.epoch.secs)
        .await
        .map_err(not_built(what.clone(), hint.clone()))?;
    let iso = stages::el_install_iso::ensure_el_iso(
        cfg,
        d,
        stages::el_install_iso::ElInputs {
            base: &file,
            base_sha: &base.sha256,
            rpms: &rpms,
            sde: inputs.epoch.secs,
            signed: medium.signed(),
        },
        policy(no_build),
        &cancel,
        &mut progress,
    )
    .await
    .map_err(not_built(what, hint))?;
    Ok(Image {
        path: iso.iso.clone(),
        properties: vec![
            ("iso.sha256".to_string(), iso.sha256),
            ("iso.key".to_string(), iso.key),
            ("iso.volid".to_string(), iso.volid),
            ("el.base.sha256".to_string(), base.sha256.clone()),
            ("el.rpms.key".to_string(), rpms.key.clone()),
            ("el.kernel.profile".to_string(), base.kernel_profile.clone()),
        ],
        built: Some(BuiltImage::ElIso {
            distro: d.name(),
            iso: iso.iso,
        }),
    })
}
