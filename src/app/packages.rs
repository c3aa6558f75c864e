//! `xsc-release build packages`: the `.deb`s with their apt repository and the RPMs with
//! their createrepo_c repository, from the kernel and glibc stages' cache entries, published
//! to `packages/apt/` and `packages/rpm/` of the clone (docs/packages.md); and
//! `build alma|rocky`, which builds those and remasters the configured base ISO with them
//! (docs/el-iso.md).

use std::path::Path;

use crate::app::progress::stderr_progress;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::stages::el_install_iso::{self, Distro};
use crate::stages::error::BuildError;
use crate::stages::stage::{Cancel, Policy};
use crate::stages::{deb_package, package_set, repo_signing, rpm_package};

/// `xsc-release build packages`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct BuildPackagesArgs {
    /// Rebuild the packages even when the cache has them for these inputs.
    #[arg(long)]
    pub force: bool,
}

/// `xsc-release build alma|rocky`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct BuildElArgs {
    /// Rebuild the packages and the ISO even when the cache has them.
    #[arg(long)]
    pub force: bool,
}

/// Builds the packages, then remasters `[sources.<distro>]`; without it, exits 3 with the
/// one line saying what to add (after the packages are built).
pub(crate) async fn run_build_el(
    cfg: &Config,
    d: Distro,
    args: &BuildElArgs,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<ExitCode, BuildError> {
    let pkg = BuildPackagesArgs { force: args.force };
    let (cancel, rpms, sde) = packages(cfg, &pkg, cancel).await?;
    let Some(base) = d.base(cfg) else {
        return Err(el_install_iso::not_configured(d));
    };
    let file = el_install_iso::base_file(cfg, base).await?;
    let policy = Policy {
        force: args.force,
        no_build: false,
    };
    // The medium carries the RPMs of the configured kernel profile (`el` by default: what
    // an EL9 install needs); the packages built above are the packaged `qemu` kernel's.
    let rpms = if base.kernel_profile == package_set::KERNEL_PROFILE {
        rpms
    } else {
        let inputs =
            package_set::gather_profile(cfg, &base.kernel_profile, Policy::default(), &cancel)
                .await?;
        rpm_package::ensure_rpms(
            cfg,
            &inputs,
            policy,
            &cancel,
            &mut stderr_progress("packages"),
        )
        .await?
    };
    let medium = el_install_iso::SignedMedium::make(cfg, d, &rpms, sde).await?;
    println!("{}: medium repository {}", d.name(), medium.describe());
    let iso = el_install_iso::ensure_el_iso(
        cfg,
        d,
        el_install_iso::ElInputs {
            base: &file,
            base_sha: &base.sha256,
            rpms: &rpms,
            sde,
            signed: medium.signed(),
        },
        policy,
        &cancel,
        &mut stderr_progress(d.name()),
    )
    .await?;
    let how = if iso.built_now { "built" } else { "cache hit" };
    println!("{}: {how}", d.name());
    println!("  {:<9} {}", "iso:", iso.iso.display());
    println!("  {:<9} {}", "sha256:", iso.sha256);
    println!("  {:<9} {}", "volume:", iso.volid);
    println!("  {:<9} {}", "key:", iso.key);
    Ok(ExitCode::Success)
}

/// Builds (or finds) both package sets, publishes the repositories and prints where.
pub(crate) async fn run_build_packages(
    cfg: &Config,
    args: &BuildPackagesArgs,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<ExitCode, BuildError> {
    packages(cfg, args, cancel).await?;
    Ok(ExitCode::Success)
}

async fn packages(
    cfg: &Config,
    args: &BuildPackagesArgs,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<(Cancel, rpm_package::RpmArtifacts, i64), BuildError> {
    let cancel = Cancel::new(cancel);
    let inputs = package_set::gather(cfg, Policy::default(), &cancel).await?;
    let policy = Policy {
        force: args.force,
        no_build: false,
    };
    let debs = deb_package::ensure_debs(
        cfg,
        &inputs,
        policy,
        &cancel,
        &mut stderr_progress("packages"),
    )
    .await?;
    let rpms = rpm_package::ensure_rpms(
        cfg,
        &inputs,
        policy,
        &cancel,
        &mut stderr_progress("packages"),
    )
    .await?;
    let apt = deb_package::publish_dir(cfg);
    let rpm = rpm_package::publish_dir(cfg);
    let log = apt.with_file_name("signing.log");
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(BuildError::io("failed to create", dir))?;
    }
    let _ = std::fs::remove_file(&log);
    let signing = repo_signing::publish_configured(
        cfg.repo_signing.as_ref(),
        &debs.repo,
        &rpms.repo,
        &apt,
        &rpm,
        inputs.epoch.secs,
        &log,
    )
    .await?;
    let how = |built: bool| if built { "built" } else { "cache hit" };
    println!(
        "packages: deb {}, rpm {}",
        how(debs.built_now),
        how(rpms.built_now)
    );
    let name = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string()
    };
    println!("  {:<9} {}", "apt:", apt.display());
    for d in &debs.debs {
        println!("  {:<9} {}", "", name(d));
    }
    println!("  {:<9} {}", "rpm:", rpm.display());
    for r in &rpms.rpms {
        println!("  {:<9} {}", "", name(r));
    }
    println!("  {:<9} {}", "signing:", signing.describe());
    println!(
        "  {:<9} deb {} rpm {}",
        "keys:",
        &debs.key[..12],
        &rpms.key[..12]
    );
    Ok((cancel, rpms, inputs.epoch.secs))
}
