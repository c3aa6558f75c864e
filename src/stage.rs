//! Where the test runner asks the build stages for images: the XSC kernel now; the Debian
//! ISO and glibc as they land. A cache hit costs a key computation; a miss builds (and says
//! so) unless `--no-build`, which makes it exit 3.

use std::path::PathBuf;

use crate::build::{self, KernelBuildOptions};
use crate::config::Config;
use crate::error::Error;

/// The XSC kernel of `profile`: its bzImage and the facts the report records.
pub async fn xsc_kernel(
    cfg: &Config,
    profile: &str,
    no_build: bool,
) -> Result<(PathBuf, Vec<(String, String)>), Error> {
    let artifacts = match build::cached_kernel(cfg, Some(profile)).await? {
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
            let mut progress = build::stderr_progress();
            build::build_kernel(cfg, &opts, &mut progress).await?
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
