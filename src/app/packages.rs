//! `xsc-release build packages`: the `.deb`s with their apt repository and the RPMs with
//! their createrepo_c repository, from the kernel and glibc stages' cache entries, published
//! to `packages/apt/` and `packages/rpm/` of the clone (docs/packages.md).

use std::path::Path;

use crate::app::progress::stderr_progress;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::stages::error::BuildError;
use crate::stages::stage::{Cancel, Policy};
use crate::stages::{deb_package, package_set, rpm_package};

/// `xsc-release build packages`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct BuildPackagesArgs {
    /// Rebuild the packages even when the cache has them for these inputs.
    #[arg(long)]
    pub force: bool,
}

/// Builds (or finds) both package sets, publishes the repositories and prints where.
pub(crate) async fn run_build_packages(
    cfg: &Config,
    args: &BuildPackagesArgs,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<ExitCode, BuildError> {
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
    package_set::publish(&debs.repo, &apt)?;
    package_set::publish(&rpms.repo, &rpm)?;
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
    println!(
        "  {:<9} deb {} rpm {}",
        "keys:",
        &debs.key[..12],
        &rpms.key[..12]
    );
    Ok(ExitCode::Success)
}
