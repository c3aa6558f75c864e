//! `candidate`: the whole pipeline on the repository's config. Build the stages that exist,
//! run the release-gate scenarios, and only if every one is green publish a signed candidate
//! to `<publish root>/candidates/<id>/`. Any red result publishes nothing (exit 1); the JUnit
//! and logs are written either way.

use std::path::{Path, PathBuf};

use clap::Args;
use tokio::sync::watch;

use crate::app as dispatch;
use crate::app::cli::AccelArg;
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::input::scenario;
use crate::observe::verdict::CaseStatus;
use crate::release::{
    self, InputDigest, InputKind, PasswordSource, PublishLock, ReleaseInputs, SourceVersions,
    TestSummary,
};
use crate::report::junit;
use crate::run::RunOptions;
use crate::run::gate;
use crate::run::prepare::BuiltImage;

/// `xsc-release candidate`.
#[derive(Debug, Args)]
pub struct CandidateArgs {
    /// Sign with this minisign secret key instead of the machine's development key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Run every gate even when a green verdict for the same image, scenario and harness exists.
    #[arg(long)]
    pub retest: bool,
    /// Accelerator for the gates.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
    /// Parallel gates.
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Never build a missing stage: exit 3 instead.
    #[arg(long)]
    pub no_build: bool,
    /// Boot nothing: accept the gates' verdict records that CI shards wrote here (`test
    /// --verdicts`); a missing or mismatched record refuses the candidate (docs/ci.md).
    #[arg(long, value_name = "DIR", requires = "run_id")]
    pub verdicts: Option<PathBuf>,
    /// The pipeline run whose records `--verdicts` accepts.
    #[arg(long, value_name = "ID", requires = "verdicts")]
    pub run_id: Option<String>,
    /// Publish even when a bench figure regressed past its threshold; the figures are
    /// named in the manifest (`allowed-regressions`).
    #[arg(long)]
    pub allow_regression: bool,
    /// Then upload the candidate to this `[publish.<name>]` target of xsc.toml.
    #[arg(long, value_name = "NAME")]
    pub publish: Option<String>,
}

/// Runs the pipeline.
pub(crate) async fn run(
    cfg: &Config,
    args: CandidateArgs,
    cancel: watch::Receiver<bool>,
) -> Result<ExitCode, Error> {
    // One candidate run per output tree: a second one would race for the same stages.
    let lock_root = cfg.publish_dir.clone();
    let _lock = tokio::task::spawn_blocking(move || PublishLock::acquire(&lock_root))
        .await
        .map_err(Error::task("publish lock"))??;

    if let Some(to) = &args.publish {
        crate::app::release::find_target(&cfg.publish, to)?;
    }
    let gt = crate::run::guest_tests_dir(cfg);
    let all = scenario::load_all(&dispatch::scenario_files(cfg, &[])?, &gt)?;
    let gates: Vec<_> = all
        .into_iter()
        .filter(scenario::Scenario::is_gate)
        .collect();
    if gates.is_empty() {
        return Err(Error::Refused("no scenario in scenarios/ is tagged release-gate: nothing could make a candidate green".into()));
    }
    println!(
        "candidate: {} release gate(s): {}",
        gates.len(),
        gates
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The bench is a gate of its own kind (docs/bench.md): run (or proven) like the others,
    // then its figures held against benches/baseline.json.
    let benches = crate::app::bench::gates(cfg)?;
    if !benches.is_empty() {
        println!(
            "candidate: {} bench gate(s) against benches/baseline.json: {}",
            benches.len(),
            benches
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let gates: Vec<_> = gates.into_iter().chain(benches.iter().cloned()).collect();

    let opts = RunOptions {
        run_id: dispatch::run_id(),
        accel: args.accel.map(dispatch::accel_request),
        boot_timeout: None,
        test_timeout: None,
        silence_timeout: None,
        jobs: args
            .jobs
            .or(cfg.test.jobs)
            .unwrap_or_else(dispatch::default_jobs),
        no_build: args.no_build,
        cancel: Some(cancel.clone()),
    };
    let started = std::time::SystemTime::now();
    let say: gate::Say = std::sync::Arc::new(|line| println!("{line}"));
    let run = match (&args.verdicts, &args.run_id) {
        (Some(dir), Some(id)) => gate::from_records(cfg, &gates, &opts, dir, id, say).await?,
        _ => gate::run(cfg, &gates, &opts, cancel.clone(), args.retest, say).await?,
    };
    let run_dir = cfg.run_dir(&opts.run_id);
    std::fs::create_dir_all(&run_dir).map_err(Error::io(&run_dir))?;
    let junit_path = run_dir.join("junit.xml");
    let info = junit::RunInfo {
        name: "xsc-release candidate".into(),
        started,
        duration: started.elapsed().unwrap_or_default(),
        interrupted: *cancel.borrow(),
        properties: crate::app::run_properties(None),
    };
    junit::write(&junit_path, &run.results, &info).map_err(|e| Error::Io {
        path: junit_path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    println!("{}", crate::report::summary::totals(&run.results));
    println!("junit: {}", junit_path.display());
    if *cancel.borrow() {
        return Ok(ExitCode::Interrupted);
    }
    if run.code != ExitCode::Success {
        println!("candidate: a release gate is red; nothing was published");
        return Ok(run.code);
    }
    let regressions = crate::app::bench::gate_regressions(cfg, &benches, &run.results)?;
    if !regressions.is_empty() {
        if !args.allow_regression {
            println!(
                "candidate: bench figure(s) regressed past their threshold: {}; nothing was \
                 published (--allow-regression publishes and records them in the manifest)",
                regressions.join(", ")
            );
            return Ok(ExitCode::ProductFailed);
        }
        println!(
            "candidate: regressed bench figure(s) allowed (recorded in the manifest): {}",
            regressions.join(", ")
        );
    }

    // The artifacts are what the gates booted that this project built: the XSC kernel
    // (never Debian's stock one), the test initramfs, and the Debian ISO.
    let stage_dir = run_dir.join("artifacts");
    std::fs::create_dir_all(&stage_dir).map_err(Error::io(&stage_dir))?;
    let mut artifacts: Vec<PathBuf> = vec![];
    for (from, name) in release_files(gates.iter().map(|g| g.name.as_str()).zip(&run.built))? {
        let to = stage_dir.join(name);
        link_or_copy(&from, &to)?;
        artifacts.push(to);
    }

    // The packages of the same kernel, glibc and tests, as the apt and createrepo_c
    // repositories users install from (`apt/`, `rpm/`), GPG-signed when `[packages]` says so.
    let mut not_built = not_built(&gates, &run.results);
    let (artifact_paths, repository_signing) =
        match repositories(cfg, &stage_dir, args.no_build, &cancel).await {
            Ok((paths, signing)) => (paths, Some(signing)),
            // `--no-build` and a package input not in the cache (e.g. CI shards that never
            // built glibc): published without the packages, and said so, never built here.
            Err(e @ crate::stages::error::BuildError::NotCached { .. }) if args.no_build => {
                println!("candidate: no package repositories: {e}");
                not_built.insert(
                    "packages".to_string(),
                    format!("not in the cache and --no-build was given: {e}"),
                );
                (vec![], None)
            }
            Err(e) => return Err(e.into()),
        };
    let mut summary = TestSummary::default();
    // A not-applicable gate ran no case: its placeholder is no skip of the product's.
    let ran = run.results.iter().filter(|r| !r.is_not_applicable());
    for c in ran.flat_map(|r| r.all_cases()) {
        match c.status {
            CaseStatus::Passed => summary.passed += 1,
            CaseStatus::Skipped { .. } => summary.skipped += 1,
            CaseStatus::Failed { .. } | CaseStatus::Errored { .. } => summary.failed += 1,
        }
    }
    let inputs = ReleaseInputs {
        version: env!("CARGO_PKG_VERSION").into(),
        commit: source_commit(cfg).await?,
        artifacts,
        junit: Some(junit_path),
        sources: SourceVersions {
            kernel: cfg.linux.version.clone(),
            glibc: cfg.glibc.version.clone(),
            debian_suite: cfg.debian_suite.clone(),
        },
        artifact_paths,
        inputs: input_digests(cfg)?,
        toolchain: toolchain(&run.results),
        tests: summary,
        flaky: run.flaky.clone(),
        allowed_regressions: regressions,
        profile: cfg.kernel_profile.clone(),
        source_date_epoch: u64::try_from(release_epoch(cfg).await.secs).ok(),
        builder_id: None,
        not_built: not_built.clone(),
        repository_signing,
    };
    let candidates = cfg.publish_dir.join("candidates");
    let (cache_dir, key_path) = (cfg.cache_dir.clone(), args.key.clone());
    let published = tokio::task::spawn_blocking(move || match key_path {
        Some(path) => {
            let key = release::load_secret_key(&path, &PasswordSource::from_env())?;
            release::create_candidate(&inputs, &key, &candidates)
        }
        None => release::create_dev_candidate(&inputs, &cache_dir, &candidates),
    })
    .await
    .map_err(Error::task("signing"))??;
    let dev = if args.key.is_none() {
        " (dev-signed: the machine's development key)"
    } else {
        ""
    };
    println!(
        "candidate {} published{dev}: {}",
        published.name,
        published.dir.display()
    );
    if !run.flaky.is_empty() {
        println!(
            "flaky gates (promote refuses them unless --allow-flaky): {}",
            run.flaky.join(", ")
        );
    }
    println!(
        "verify: xsc-release verify {} --pubkey {}",
        published.dir.display(),
        pubkey_hint(cfg, args.key.as_deref()).display()
    );
    if !not_built.is_empty() {
        println!(
            "candidate: published without {} (not built: {})",
            not_built.keys().cloned().collect::<Vec<_>>().join(", "),
            not_built
                .iter()
                .map(|(d, why)| format!("{d}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    match &args.publish {
        Some(to) => Ok(crate::app::release::publish_to(
            &cfg.publish,
            to,
            &published.dir,
            &run_dir.join("publish"),
        )
        .await?),
        None => Ok(ExitCode::Success),
    }
}

/// The two package repositories below `stage_dir` (`apt/`, `rpm/`), signed when
/// configured, as `(name in the release, path)`, and how they are signed (said on one
/// line, recorded in the manifest).
async fn repositories(
    cfg: &Config,
    stage_dir: &Path,
    no_build: bool,
    cancel: &watch::Receiver<bool>,
) -> Result<(Vec<(String, PathBuf)>, String), crate::stages::error::BuildError> {
    use crate::stages::repo_signing::{self, APT_DIR, RPM_DIR};
    use crate::stages::{deb_package, package_set, rpm_package};
    let cancel = crate::stages::stage::Cancel::new(cancel.clone());
    let policy = crate::stages::stage::Policy {
        force: false,
        no_build,
    };
    let inputs = package_set::gather(cfg, policy, &cancel).await?;
    let mut quiet = |_: &crate::stages::progress::BuildEvent| {};
    let debs = deb_package::ensure_debs(cfg, &inputs, policy, &cancel, &mut quiet).await?;
    let rpms = rpm_package::ensure_rpms(cfg, &inputs, policy, &cancel, &mut quiet).await?;
    let (apt, rpm) = (stage_dir.join(APT_DIR), stage_dir.join(RPM_DIR));
    let log = stage_dir.join("signing.log");
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
    println!(
        "candidate: apt/ and rpm/ repositories, {}",
        signing.describe()
    );
    let mut out = repo_signing::release_paths(APT_DIR, &apt)?;
    out.extend(repo_signing::release_paths(RPM_DIR, &rpm)?);
    Ok((out, signing.describe()))
}

/// The deliverables a candidate leaves out, by distribution, with why: the EL install
/// ISOs whose gates were not applicable (base ISO not configured). The others publish.
fn not_built(
    gates: &[scenario::Scenario],
    results: &[crate::observe::verdict::ScenarioResult],
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for r in results {
        let crate::observe::verdict::RunEnd::NotApplicable(why) = &r.end else {
            continue;
        };
        let what = match gates.iter().find(|g| g.name == r.name).map(|g| &g.image) {
            Some(scenario::ImageSource::ElIso(d)) => d.name().to_string(),
            _ => r.name.clone(),
        };
        out.insert(what, why.clone());
    }
    out
}

/// The release's SOURCE_DATE_EPOCH: the one rule (`stage::epoch_of`) over the inputs of
/// everything it ships (kernel, test initramfs, Debian ISO), i.e. the newest of their
/// epochs, so the manifest states the time the artifacts were stamped with.
async fn release_epoch(cfg: &Config) -> crate::sys::epoch::Epoch {
    let mut inputs = crate::stages::debian::epoch_inputs(cfg);
    inputs.extend(crate::stages::kernel::epoch_inputs(cfg));
    inputs.extend(crate::run::initramfs_epoch_inputs(cfg, true));
    inputs.sort();
    inputs.dedup();
    crate::stages::stage::epoch_of(cfg, &inputs).await
}

/// Toolchain facts the runs recorded (`toolchain.*` properties), plus QEMU's version.
fn toolchain(
    results: &[crate::observe::verdict::ScenarioResult],
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in results.iter().flat_map(|r| r.properties.iter()) {
        if let Some(tool) = k.strip_prefix("toolchain.") {
            out.insert(tool.to_string(), v.clone());
        } else if k == "qemu.version" {
            out.insert("qemu".to_string(), v.clone());
        }
    }
    out.insert(
        "xsc-release".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    out
}

/// The git commit the release is built from: the config's tree, else the tree the
/// scenarios come from (a config kept outside the clone). No commit, no release.
async fn source_commit(cfg: &Config) -> Result<String, Error> {
    let mut last = None;
    for dir in [&cfg.root, &cfg.scenarios_dir] {
        match release::git_commit(dir).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("two directories were tried").into())
}

fn pubkey_hint(cfg: &Config, key: Option<&Path>) -> PathBuf {
    match key {
        Some(k) => k.with_extension("pub"),
        None => release::dev_key_paths(&cfg.cache_dir).1,
    }
}

/// Every input the release was built from: the pinned source, the series and its patches,
/// the config fragments, the guest-test sources.
fn input_digests(cfg: &Config) -> Result<Vec<InputDigest>, Error> {
    let mut out = vec![InputDigest {
        kind: InputKind::Source,
        name: cfg
            .linux
            .tarball
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        uri: Some(format!(
            "pkg:deb/debian/{}@{}",
            cfg.linux.package, cfg.linux.version
        )),
        sha256: cfg.linux.sha256.clone(),
    }];
    let patches = crate::stages::patches_dir(cfg);
    for rel in crate::sys::cache::walk_sorted(&patches).map_err(Error::io(&patches))? {
        let path = patches.join(&rel);
        let kind = match rel.to_string_lossy() {
            s if s == "series" => InputKind::PatchSeries,
            s if s.ends_with(".patch") => InputKind::Patch,
            s if s.starts_with("configs/") => InputKind::Config,
            _ => continue,
        };
        let mut d = InputDigest::from_file(kind, &path, None)?;
        d.name = format!("patches/kernel/{}", rel.display());
        out.push(d);
    }
    let gt = cfg.guest_tests_dir.clone();
    for rel in crate::sys::cache::walk_sorted(&gt).map_err(Error::io(&gt))? {
        if rel.extension().is_some_and(|e| e == "c" || e == "h") {
            let mut d = InputDigest::from_file(InputKind::Other, &gt.join(&rel), None)?;
            d.name = format!("guest-tests/{}", rel.display());
            out.push(d);
        }
    }
    Ok(out)
}

/// The files a release ships, `(from, name in the release)`, from what each gate booted
/// that this project built: the XSC kernel as `xsc-kernel-<release>-<profile>.bzImage`,
/// each gate's test initramfs as `xsc-tests-<gate>.initramfs.cpio`, the Debian ISO with
/// its package list. An image several gates booted ships once. Refused without an XSC
/// kernel: then nothing of the product was tested.
pub(crate) fn release_files<'a>(
    gates: impl IntoIterator<Item = (&'a str, &'a Vec<BuiltImage>)>,
) -> Result<Vec<(PathBuf, String)>, Error> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    let mut kernel = false;
    for (gate, built) in gates {
        for b in built {
            let files = match b {
                BuiltImage::XscKernel {
                    bzimage,
                    release,
                    profile,
                } => {
                    kernel = true;
                    vec![(
                        bzimage.clone(),
                        format!("xsc-kernel-{release}-{profile}.bzImage"),
                    )]
                }
                BuiltImage::TestInitramfs { path } => {
                    vec![(path.clone(), format!("xsc-tests-{gate}.initramfs.cpio"))]
                }
                BuiltImage::DebianIso { iso, packages } => vec![
                    (iso.clone(), crate::stages::ISO_NAME.to_string()),
                    (
                        packages.clone(),
                        "xsc-debian-amd64.packages.txt".to_string(),
                    ),
                ],
                BuiltImage::ElIso { distro, iso } => {
                    vec![(iso.clone(), format!("xsc-{distro}9-x86_64.iso"))]
                }
            };
            for f in files {
                if !out.iter().any(|(_, name)| *name == f.1) {
                    out.push(f);
                }
            }
        }
    }
    if !kernel {
        return Err(Error::Refused(
            "no release gate boots the XSC kernel: there is no product to publish".into(),
        ));
    }
    Ok(out)
}

fn link_or_copy(from: &Path, to: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_file(to);
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(|_| ()))
        .map_err(Error::io(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_ships_what_the_gates_built_once_each_and_needs_the_xsc_kernel() {
        let kernel = BuiltImage::XscKernel {
            bzimage: "/c/stages/kernel/k/bzImage".into(),
            release: "6.1.192-xsc".into(),
            profile: "qemu".into(),
        };
        let iso = BuiltImage::DebianIso {
            iso: "/c/stages/debian-iso/i/xsc-debian-amd64.iso".into(),
            packages: "/c/stages/debian-iso/i/packages.txt".into(),
        };
        let ring = vec![
            kernel.clone(),
            BuiltImage::TestInitramfs {
                path: "/c/initramfs/a.cpio".into(),
            },
        ];
        let glibc = vec![
            kernel,
            BuiltImage::TestInitramfs {
                path: "/c/initramfs/b.cpio".into(),
            },
        ];
        let (bios, uefi) = (vec![iso.clone()], vec![iso]);
        let files = release_files([
            ("xsc-ring", &ring),
            ("xsc-glibc", &glibc),
            ("debian-bios", &bios),
            ("debian-uefi", &uefi),
        ])
        .unwrap();
        let names: Vec<&str> = files.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "xsc-kernel-6.1.192-xsc-qemu.bzImage",
                "xsc-tests-xsc-ring.initramfs.cpio",
                "xsc-tests-xsc-glibc.initramfs.cpio",
                "xsc-debian-amd64.iso",
                "xsc-debian-amd64.packages.txt",
            ]
        );
        assert_eq!(
            files[4].0,
            PathBuf::from("/c/stages/debian-iso/i/packages.txt")
        );
        // Only the ISO (or the stock kernel, which is no built image): nothing to publish.
        let only_iso = vec![BuiltImage::DebianIso {
            iso: "/i.iso".into(),
            packages: "/p.txt".into(),
        }];
        let err = release_files([("debian-bios", &only_iso), ("stock", &vec![])]).unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{err}");
    }
}
