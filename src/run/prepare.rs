//! Where the test runner asks the build stages for images: the XSC kernel, the XSC glibc
//! (for guest programs linked against it) and the Debian ISO. A cache hit costs a key
//! computation; a miss builds (and says so) unless `--no-build`, which makes it exit 3.

use std::path::PathBuf;

use crate::error::Error;
use crate::input::config::Config;
use crate::stages::{
    self, DebianBuildOptions, GlibcArtifacts, GlibcBuildOptions, GlibcVariant, KernelBuildOptions,
};

/// The XSC kernel of `profile`: its bzImage and the facts the report records.
pub(crate) async fn xsc_kernel(
    cfg: &Config,
    profile: &str,
    no_build: bool,
) -> Result<(PathBuf, Vec<(String, String)>), Error> {
    let artifacts = match stages::cached_kernel(cfg, Some(profile)).await? {
        Some(a) => a,
        None if no_build => {
            return Err(Error::NotBuilt {
                what: format!("the XSC kernel (profile {profile})"),
                hint: format!("xsc-release build kernel --profile {profile}"),
            });
        }
        None => {
            eprintln!(
                "building the XSC kernel (profile {profile}): not in the cache for the current patches and configs"
            );
            let opts = KernelBuildOptions {
                profile: Some(profile.to_string()),
                ..KernelBuildOptions::default()
            };
            let mut progress = stages::stderr_progress("kernel");
            stages::build_kernel(cfg, &opts, &mut progress).await?
        }
    };
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
    Ok((artifacts.bzimage, facts))
}

/// One glibc build at a time in this process: parallel scenarios share one build.
static GLIBC_BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The XSC glibc of `variant` for the current inputs (built through the stage cache unless
/// `--no-build`).
pub(crate) async fn xsc_glibc(
    cfg: &Config,
    variant: GlibcVariant,
    no_build: bool,
) -> Result<GlibcArtifacts, Error> {
    let _one = GLIBC_BUILD.lock().await;
    match stages::cached_glibc(cfg, variant).await? {
        Some(a) => Ok(a),
        None if no_build => Err(Error::NotBuilt {
            what: format!("the XSC glibc (variant {})", variant.name()),
            hint: format!("xsc-release build glibc --variant {}", variant.name()),
        }),
        None => {
            eprintln!(
                "building the XSC glibc (variant {}): not in the cache for the current patches",
                variant.name()
            );
            let opts = GlibcBuildOptions {
                variant,
                ..GlibcBuildOptions::default()
            };
            let mut progress = stages::stderr_progress("glibc");
            Ok(stages::build_glibc(cfg, &opts, &mut progress).await?)
        }
    }
}

/// One Debian ISO build at a time in this process: scenarios run in parallel, and the
/// three ISO scenarios must share one build (the later ones find it in the cache).
static DEBIAN_BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Debian live ISO for the current inputs (built through the stage cache unless
/// `--no-build`) and the facts the report records.
pub(crate) async fn debian_iso(
    cfg: &Config,
    no_build: bool,
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<(PathBuf, Vec<(String, String)>), Error> {
    let _one = DEBIAN_BUILD.lock().await;
    let artifacts = match stages::cached_debian(cfg).await? {
        Some(a) => a,
        None if no_build => {
            return Err(Error::NotBuilt {
                what: "the Debian ISO".into(),
                hint: "xsc-release build debian".into(),
            });
        }
        None => {
            eprintln!("building the Debian ISO: not in the cache for the current inputs");
            let cancel = cancel.unwrap_or_else(|| tokio::sync::watch::channel(false).1);
            stages::build_debian(cfg, &DebianBuildOptions::default(), cancel).await?
        }
    };
    let mut facts = vec![
        ("iso.sha256".to_string(), artifacts.sha256.clone()),
        ("iso.key".to_string(), artifacts.key.clone()),
    ];
    for k in ["kernel.release", "kernel.key", "suite", "sde"] {
        if let Some(v) = artifacts.facts.get(k) {
            facts.push((format!("debian.{k}"), v.clone()));
        }
    }
    Ok((artifacts.iso, facts))
}
