//! The user-facing commands of the build stages: `build kernel|glibc|debian`, `patches edit` and
//! `status`, as clap argument structs plus `run_*` functions that print what a person
//! needs (where the artifacts and log are) and return the exit code.
//!
//! Errors are returned, not printed: `main` prints the chain once and exits with
//! [`BuildError::exit_code`]. The lead wires these into the CLI.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::app::progress::{record_duration, stderr_progress};
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::stages::error::BuildError;
use crate::stages::kconfig::{KernelProfile, PROFILES};
use crate::stages::kernel::{self, KernelArtifacts, KernelBuildOptions, STAGE};
use crate::stages::quilt;
use crate::stages::source::{self, SourceSpec};
use crate::stages::tools;
use crate::sys::epoch::Epoch;

/// `xsc-release build kernel`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct BuildKernelArgs {
    /// Kernel profile: `qemu` (tinyconfig + qemu.config + xsc.config; lean, VM-only),
    /// `debian` (Debian's config + xsc.config) or `el` (the lean base + el.config: EL9
    /// installs). Default: `[kernel] profile` in xsc.toml.
    #[arg(long)]
    pub profile: Option<String>,
    /// Kernel source instead of the pinned Debian package: a tarball path or URL (needs
    /// --sha256) or a pristine source directory.
    #[arg(long)]
    pub source: Option<String>,
    /// sha256 of the --source tarball.
    #[arg(long, requires = "source")]
    pub sha256: Option<String>,
    /// Rebuild even when the cache has a kernel for these inputs.
    #[arg(long)]
    pub force: bool,
    /// Build twice from scratch in separate trees and compare the bzImage sha256 (slow;
    /// `make repro-kernel`, not CI).
    #[arg(long)]
    pub check_repro: bool,
    /// Also package this kernel as an EL9 RPM (with `xsc-glibc` and `xsc-tests`, in a
    /// createrepo_c repository) through the RPM stage: `packages/rpm/` for the packaged
    /// `qemu` profile, `packages/rpm-<profile>/` for another (docs/el-iso.md).
    #[arg(long, conflicts_with_all = ["check_repro", "source"])]
    pub rpm: bool,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Also export the sealed cache entry into this new directory, for `cache import` in
    /// another CI job (docs/ci.md).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["check_repro", "source"])]
    pub stage_artifact: Option<PathBuf>,
}

impl BuildKernelArgs {
    /// The build options these arguments ask for.
    pub fn options(&self) -> Result<KernelBuildOptions, BuildError> {
        Ok(KernelBuildOptions {
            profile: self.profile.clone(),
            source: SourceSpec::from_args(self.source.as_deref(), self.sha256.as_deref())?,
            force: self.force,
            jobs: self.jobs,
        })
    }
}

/// `xsc-release build debian`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct BuildDebianArgs {
    /// Rebuild even when the cache has an ISO for these inputs; the result must be
    /// bit-identical to the cached one (else exit 3 with what differs).
    #[arg(long)]
    pub force: bool,
    /// Also export the sealed cache entry into this new directory, for `cache import` in
    /// another CI job (docs/ci.md).
    #[arg(long, value_name = "DIR")]
    pub stage_artifact: Option<PathBuf>,
}

/// Runs `build debian` and prints where the ISO and its files are.
pub(crate) async fn run_build_debian(
    cfg: &Config,
    args: &BuildDebianArgs,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<ExitCode, BuildError> {
    let started = std::time::Instant::now();
    let opts = crate::stages::debian::DebianBuildOptions { force: args.force };
    let a = crate::stages::debian::build_debian(cfg, &opts, cancel).await?;
    if a.built_now {
        record_duration(&cfg.cache_dir, "debian", started.elapsed());
    }
    let how = if a.built_now {
        format!("built in {:.1}s", started.elapsed().as_secs_f64())
    } else {
        format!(
            "cache hit, nothing built ({:.1}s)",
            started.elapsed().as_secs_f64()
        )
    };
    println!("debian: {how}");
    let iso = kernel::repo_root(cfg)
        .join("iso/debian")
        .join(crate::stages::debian::ISO_NAME);
    println!("  {:<10} {}", "iso:", iso.display());
    println!("  {:<10} {}", "sha256:", a.sha256);
    if let Some(b) = a.facts.get("iso.bytes") {
        println!("  {:<10} {b} bytes", "size:");
    }
    println!("  {:<10} {}", "key:", a.key);
    println!("  {:<10} {}", "packages:", a.packages.display());
    if let Some(l) = &a.log {
        println!("  {:<10} {}", "log:", l.display());
    }
    Ok(ExitCode::Success)
}

/// `xsc-release build glibc`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct BuildGlibcArgs {
    /// `xsc` (`--enable-xsc`, the default) or `disabled` (the same series without
    /// `--enable-xsc`, which must behave as stock glibc).
    #[arg(long, default_value = "xsc", value_parser = ["xsc", "disabled"])]
    pub variant: String,
    /// Rebuild even when the cache has a glibc for these inputs.
    #[arg(long)]
    pub force: bool,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Also export the sealed cache entry into this new directory, for `cache import` in
    /// another CI job (docs/ci.md).
    #[arg(long, value_name = "DIR")]
    pub stage_artifact: Option<PathBuf>,
}

/// Runs `build glibc` and prints where the sysroot, runtime, tests and log are.
pub(crate) async fn run_build_glibc(
    cfg: &Config,
    args: &BuildGlibcArgs,
) -> Result<ExitCode, BuildError> {
    let variant = crate::stages::glibc::GlibcVariant::parse(&args.variant).ok_or_else(|| {
        BuildError::BadSource {
            source_arg: args.variant.clone(),
            reason: "unknown variant (xsc or disabled)".into(),
        }
    })?;
    let opts = crate::stages::glibc::GlibcBuildOptions {
        variant,
        force: args.force,
        jobs: args.jobs,
    };
    let mut progress = stderr_progress("glibc");
    let started = std::time::Instant::now();
    let a = crate::stages::glibc::build_glibc(cfg, &opts, &mut progress).await?;
    drop(progress);
    if a.built_now {
        record_duration(&cfg.cache_dir, "glibc", started.elapsed());
    }
    let took = started.elapsed().as_secs_f64();
    let how = match (a.built_now, a.facts.get("incremental").map(String::as_str)) {
        (false, _) => format!("cache hit, nothing built ({took:.1}s)"),
        (true, Some("true")) => format!("built in {took:.1}s (incremental)"),
        (true, _) => format!("built in {took:.1}s (fresh tree)"),
    };
    println!("glibc: {how}");
    let row = |k: &str, v: String| println!("  {k:<9} {v}");
    row("variant:", variant.name().to_string());
    row(
        "version:",
        format!("{} {}", cfg.glibc.package, cfg.glibc.version),
    );
    row("key:", a.key.clone());
    row("sysroot:", a.sysroot.display().to_string());
    row("runtime:", a.runtime.display().to_string());
    row(
        "tests:",
        format!(
            "{} ({} of glibc's own tests)",
            a.tests.display(),
            a.facts.get("tests").map_or("0", String::as_str)
        ),
    );
    if let Some(l) = &a.log {
        row("log:", l.display().to_string());
    }
    Ok(ExitCode::Success)
}

/// `xsc-release patches …`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct PatchesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PatchesCommand,
}

/// Subcommands of `patches`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum PatchesCommand {
    /// Set up `linux-6.1/` at the repository root with quilt state, to edit the series.
    Edit(PatchesEditArgs),
}

/// `xsc-release patches edit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct PatchesEditArgs {
    /// Source instead of the pinned package (as for `build kernel`).
    #[arg(long)]
    pub source: Option<String>,
    /// sha256 of the --source tarball.
    #[arg(long, requires = "source")]
    pub sha256: Option<String>,
    /// Leave the tree with no patch applied instead of pushing the whole series.
    #[arg(long)]
    pub no_push: bool,
    /// Edit the glibc series instead: `glibc-2.36/` from the pinned glibc-source, its
    /// `patches` link pointing at `patches/glibc`.
    #[arg(long, conflicts_with_all = ["source", "sha256"])]
    pub glibc: bool,
}

/// Runs `build kernel` (or `--check-repro`) and prints where the artifacts are.
pub(crate) async fn run_build_kernel(
    cfg: &Config,
    args: &BuildKernelArgs,
) -> Result<ExitCode, BuildError> {
    let opts = args.options()?;
    let mut progress = stderr_progress("kernel");
    if args.check_repro {
        let report = kernel::check_reproducible(cfg, &opts, &mut progress).await?;
        drop(progress);
        println!(
            "kernel: reproducible: both clean builds give bzImage sha256 {}",
            report.bzimage_sha256
        );
        println!(
            "  trees: {} {}",
            report.trees[0].display(),
            report.trees[1].display()
        );
        println!("  log:   {}", report.log.display());
        return Ok(ExitCode::Success);
    }
    let started = std::time::Instant::now();
    let a = kernel::build_kernel(cfg, &opts, &mut progress).await?;
    // The bar goes before the summary is printed.
    drop(progress);
    if a.built_now {
        record_duration(&cfg.cache_dir, "kernel", started.elapsed());
    }
    print!("{}", describe(&a, started.elapsed()));
    if args.rpm {
        rpm_of(cfg, &a.profile).await?;
    }
    Ok(ExitCode::Success)
}

/// `--rpm`: the RPMs of the kernel of `profile` through the RPM stage, published to
/// `packages/rpm[-<profile>]/`.
async fn rpm_of(cfg: &Config, profile: &str) -> Result<(), BuildError> {
    use crate::stages::{package_set, rpm_package};
    let cancel = crate::stages::stage::Cancel::from_option(None);
    let policy = crate::stages::stage::Policy::default();
    let inputs = package_set::gather_profile(cfg, profile, policy, &cancel).await?;
    let rpms = rpm_package::ensure_rpms(
        cfg,
        &inputs,
        policy,
        &cancel,
        &mut stderr_progress("packages"),
    )
    .await?;
    let dir = rpm_package::profile_publish_dir(cfg, profile);
    package_set::publish(&rpms.repo, &dir)?;
    let how = if rpms.built_now { "built" } else { "cache hit" };
    println!(
        "rpm: {how} ({} modules)",
        if inputs.modules.is_some() {
            "with"
        } else {
            "no"
        }
    );
    println!("  {:<9} {}", "repo:", dir.display());
    for r in &rpms.rpms {
        println!(
            "  {:<9} {}",
            "",
            r.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    println!("  {:<9} {}", "key:", rpms.key);
    Ok(())
}

/// The lines `build kernel` prints about its artifacts.
pub(crate) fn describe(a: &KernelArtifacts, took: Duration) -> String {
    let how = if a.built_now {
        let kind = if a.facts.get("incremental").is_some_and(|v| v == "true") {
            "incremental"
        } else {
            "fresh tree"
        };
        format!("built in {:.1}s ({kind})", took.as_secs_f64())
    } else {
        format!("cache hit, nothing built ({:.1}s)", took.as_secs_f64())
    };
    let mut out = format!("kernel: {how}\n");
    let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<14} {v}\n"));
    row(
        "profile:",
        format!(
            "{} ({})",
            a.profile,
            a.facts.get("purpose").map_or("", String::as_str)
        ),
    );
    row("kernelrelease:", a.kernelrelease.clone());
    row("key:", a.key.clone());
    row("bzImage:", a.bzimage.display().to_string());
    row("config:", a.config.display().to_string());
    row("System.map:", a.system_map.display().to_string());
    if let Some(m) = &a.modules {
        row("modules:", m.display().to_string());
    }
    if let Some(log) = &a.log {
        row("log:", log.display().to_string());
    }
    out
}

/// Runs `patches edit`: a `linux-6.1/` tree at the repository root whose `patches` symlink
/// points at `../patches/kernel`, so `quilt new/add/refresh` work without a `.quiltrc`
/// and refreshed patches land in the repository.
pub(crate) async fn run_patches_edit(
    cfg: &Config,
    args: &PatchesEditArgs,
) -> Result<ExitCode, BuildError> {
    let (tree, series_dir, again) = if args.glibc {
        (
            glibc_edit_tree(cfg),
            "../patches/glibc",
            "xsc-release patches edit --glibc",
        )
    } else {
        (
            edit_tree(cfg),
            "../patches/kernel",
            "xsc-release patches edit",
        )
    };
    let link = tree.join("patches");
    if tree.exists() {
        let applied = std::fs::read_to_string(tree.join(".pc/applied-patches")).unwrap_or_default();
        let applied: Vec<&str> = applied.lines().filter(|l| !l.trim().is_empty()).collect();
        println!(
            "{} exists; left as it is ({} patches applied{}).",
            tree.display(),
            applied.len(),
            applied
                .last()
                .map(|t| format!(", top: {t}"))
                .unwrap_or_default()
        );
        println!("To start over: rm -rf {} && {again}", tree.display());
        print!("{}", edit_hints(&tree, args.glibc));
        return Ok(ExitCode::Success);
    }
    tools::check_tools(&[("quilt", "quilt"), ("tar", "tar"), ("xz", "xz-utils")])?;
    let spec = SourceSpec::from_args(args.source.as_deref(), args.sha256.as_deref())?;
    let cache = kernel::kernel_cache(cfg);
    let log = edit_log(cfg)?;
    eprintln!(
        "patches edit: unpacking the pristine source into {} (log: {})",
        tree.display(),
        log.display()
    );
    let unpacked = if args.glibc {
        let resolved =
            source::resolve_pinned(cfg, &cfg.glibc, "glibc", &cache.downloads(), &log).await?;
        let source::Resolved::Tarball(tarball) = resolved else {
            unreachable!("a pinned source is a tarball")
        };
        std::fs::create_dir_all(&tree).map_err(BuildError::io("failed to create", &tree))?;
        crate::sys::process::run(&source::untar_cmd(&tarball, &tree, 1), Some(&log))
            .await
            .map(|_| ())
            .map_err(BuildError::step("unpack glibc source"))
    } else {
        let resolved = source::resolve(cfg, &spec, &cache.downloads(), &log).await?;
        source::unpack(&resolved, &tree, &log).await
    };
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(&tree);
        return Err(e);
    }
    std::os::unix::fs::symlink(Path::new(series_dir), &link)
        .map_err(BuildError::io("failed to create", &link))?;
    if !args.no_push {
        // Relative QUILT_PATCHES: quilt records it in .pc/.quilt_patches, so later quilt
        // commands in the tree need neither the variable nor a .quiltrc.
        quilt::push_all(&tree, Path::new("patches"), &log).await?;
    }
    let n =
        quilt::series_patches(&std::fs::read_to_string(link.join("series")).unwrap_or_default())
            .len();
    println!(
        "{} ready: {} of {n} patches applied.",
        tree.display(),
        if args.no_push { 0 } else { n }
    );
    print!("{}", edit_hints(&tree, args.glibc));
    Ok(ExitCode::Success)
}

/// `linux-<series>/` at the repository root (git-ignored).
pub(crate) fn edit_tree(cfg: &Config) -> PathBuf {
    let series = cfg.linux.package.rsplit('-').next().unwrap_or("6.1");
    kernel::repo_root(cfg).join(format!("linux-{series}"))
}

/// `glibc-<version>/` at the repository root (git-ignored), for `patches edit --glibc`.
pub(crate) fn glibc_edit_tree(cfg: &Config) -> PathBuf {
    let version = cfg
        .glibc
        .tarball
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".tar.xz").to_string())
        .filter(|n| n.starts_with("glibc-"))
        .unwrap_or_else(|| "glibc-2.36".into());
    kernel::repo_root(cfg).join(version)
}

fn edit_hints(tree: &Path, glibc: bool) -> String {
    if glibc {
        return format!(
            "  cd {}\n  quilt new 0099-new-change.patch   # after `quilt push -a`; also add it to the series\n  \
             quilt add sysdeps/unix/sysv/linux/x86_64/file.c && $EDITOR sysdeps/unix/sysv/linux/x86_64/file.c\n  \
             quilt refresh -p ab --no-timestamps --no-index   # lands in patches/glibc/\n  \
             (configure.ac changed? regenerate configure with autoconf2.69; see patches/glibc/README.md)\n",
            tree.display()
        );
    }
    format!(
        "  cd {}\n  quilt new 0009-xsc-new-feature.patch   # after `quilt push -a`; also add it to the series\n  \
         quilt add drivers/xsc/file.c && $EDITOR drivers/xsc/file.c\n  \
         quilt refresh -p ab --no-timestamps --no-index   # lands in patches/kernel/\n  \
         (or export QUILT_REFRESH_ARGS='-p ab --no-timestamps --no-index'; see docs/kernel-build.md)\n",
        tree.display()
    )
}

fn edit_log(cfg: &Config) -> Result<PathBuf, BuildError> {
    let dir = kernel::repo_root(cfg).join("logs");
    std::fs::create_dir_all(&dir).map_err(BuildError::io("failed to create", &dir))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(dir.join(format!(
        "patches-edit-{}.log",
        crate::stages::make::compact_utc(i64::try_from(now).unwrap_or(0))
    )))
}

/// One row of `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StageStatus {
    /// `kernel`, `glibc`, `debian-iso`.
    pub stage: String,
    /// Profile or variant (`qemu`); `-` when none.
    pub variant: String,
    /// The state, for machines (`status --json`).
    pub kind: StateKind,
    /// `built`, `not built yet`, `stale`, or an error, in words.
    pub state: String,
    /// Key of the current inputs (full; `status` shows the first 12 digits).
    pub key: Option<String>,
    /// When the entry was built (RFC 3339).
    pub built: Option<String>,
    /// Entry directory.
    pub artifacts: Option<PathBuf>,
    /// Build log.
    pub log: Option<PathBuf>,
    /// The build time the stage stamps into its output for the current inputs, and where
    /// it came from (`sys::epoch`); `None` for a stage that stamps none (glibc).
    pub epoch: Option<Epoch>,
}

/// A stage's state for the current inputs, as `status --json` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StateKind {
    /// The cache has an entry for the current key.
    Built,
    /// An entry of the same variant exists, for older inputs.
    Stale,
    /// Nothing of this variant in the cache.
    NotBuilt,
    /// The key could not be computed (offline, source missing).
    Unknown,
}

impl StateKind {
    /// The JSON word.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StateKind::Built => "built",
            StateKind::Stale => "stale",
            StateKind::NotBuilt => "not-built",
            StateKind::Unknown => "unknown",
        }
    }
}

impl StageStatus {
    fn new(stage: &str, variant: &str) -> Self {
        StageStatus {
            stage: stage.into(),
            variant: variant.into(),
            kind: StateKind::Unknown,
            state: String::new(),
            key: None,
            built: None,
            artifacts: None,
            log: None,
            epoch: None,
        }
    }

    /// Fills the row from the current inputs' key: built, stale (an older entry of the same
    /// variant exists), or not built; `previous` picks that older entry.
    fn fill(
        &mut self,
        cache: &crate::sys::cache::Cache,
        key: Result<String, BuildError>,
        previous: impl Fn(&crate::sys::cache::Entry) -> bool,
    ) {
        let latest = cache.latest(&self.stage).filter(|e| previous(e));
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                self.state = match latest {
                    Some(old) => format!(
                        "cannot compute key ({e}); last built {}",
                        when(old.info.created)
                    ),
                    None => format!("not built yet (cannot compute key: {e})"),
                };
                return;
            }
        };
        self.key = Some(key.clone());
        match cache.lookup(&self.stage, &key) {
            Some(entry) => {
                self.kind = StateKind::Built;
                self.state = "built".into();
                self.built = Some(when(entry.info.created));
                self.log = entry.artifact("build.log");
                self.artifacts = Some(entry.dir);
            }
            None => {
                self.kind = if latest.is_some() {
                    StateKind::Stale
                } else {
                    StateKind::NotBuilt
                };
                self.state = match latest {
                    Some(old) => format!(
                        "stale (inputs changed; last built {} key {})",
                        when(old.info.created),
                        &old.info.key[..12]
                    ),
                    None => "not built yet".into(),
                };
            }
        }
    }
}

/// The status of every stage for the current inputs (computes the keys, builds nothing).
pub(crate) async fn stage_status(cfg: &Config) -> Vec<StageStatus> {
    let cache = kernel::kernel_cache(cfg);
    let mut rows = Vec::new();
    let kernel_epoch = crate::stages::stage::epoch_of(cfg, &kernel::epoch_inputs(cfg)).await;
    for name in PROFILES {
        let mut row = StageStatus::new(STAGE, name);
        row.epoch = Some(kernel_epoch);
        let key = match KernelProfile::named(name) {
            Ok(p) => kernel::kernel_key(cfg, &p, &SourceSpec::Pinned)
                .await
                .map(|k| k.key),
            Err(e) => Err(e),
        };
        row.fill(&cache, key, |e| {
            e.info.facts.get("profile").map(String::as_str) == Some(name)
        });
        rows.push(row);
    }
    // The debian-iso key needs the archive's InRelease files, so offline the row says so.
    let mut iso = StageStatus::new(crate::stages::debian::STAGE, "-");
    iso.epoch =
        Some(crate::stages::stage::epoch_of(cfg, &crate::stages::debian::epoch_inputs(cfg)).await);
    let iso_cache = crate::sys::cache::Cache::new(&cfg.cache_dir);
    iso.fill(
        &iso_cache,
        crate::stages::debian::debian_key(cfg).await.map(|k| k.key),
        |_| true,
    );
    rows.push(iso);
    for variant in [
        crate::stages::glibc::GlibcVariant::Xsc,
        crate::stages::glibc::GlibcVariant::Disabled,
    ] {
        let mut row = StageStatus::new(crate::stages::glibc::STAGE, variant.name());
        row.fill(
            &cache,
            crate::stages::glibc::glibc_key(cfg, variant)
                .await
                .map(|k| k.key),
            |e| e.info.facts.get("variant").map(String::as_str) == Some(variant.name()),
        );
        rows.push(row);
    }
    rows
}

fn when(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(epoch))
        .to_string()
}

/// Formats `status` rows for a person.
pub(crate) fn format_status(rows: &[StageStatus]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!("{:<11} {:<8} {}", r.stage, r.variant, r.state));
        if let Some(k) = &r.key {
            out.push_str(&format!("  key {}", k.get(..12).unwrap_or(k)));
        }
        out.push('\n');
        if let Some(b) = &r.built {
            out.push_str(&format!("{:21}built:     {b}\n", ""));
        }
        if let Some(a) = &r.artifacts {
            out.push_str(&format!("{:21}artifacts: {}\n", "", a.display()));
        }
        if let Some(l) = &r.log {
            out.push_str(&format!("{:21}log:       {}\n", "", l.display()));
        }
        if let Some(e) = &r.epoch {
            out.push_str(&format!(
                "{:21}epoch:     {} ({})\n",
                "",
                u64::try_from(e.secs).map_or_else(|_| e.secs.to_string(), when),
                e.source.describe()
            ));
        }
    }
    out
}

/// Runs `status`: prints each stage's state for the current inputs, for people or (with
/// `json`) as the docs/json.md document.
pub(crate) async fn run_status(cfg: &Config, json: bool) -> Result<ExitCode, BuildError> {
    let rows = stage_status(cfg).await;
    if json {
        print!(
            "{}",
            crate::app::json::render(&crate::app::json::status(&rows))
        );
    } else {
        print!("{}", format_status(&rows));
    }
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::epoch::EpochSource;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(Debug, clap::Subcommand)]
    enum Cmd {
        Kernel(BuildKernelArgs),
        Patches(PatchesArgs),
    }

    #[test]
    fn arguments_parse_and_map_to_options() {
        let Cmd::Kernel(a) =
            Cli::try_parse_from(["x", "kernel", "--profile", "debian", "--force", "-j", "2"])
                .unwrap()
                .cmd
        else {
            panic!()
        };
        assert_eq!(
            (a.profile.as_deref(), a.force, a.jobs, a.check_repro),
            (Some("debian"), true, Some(2), false)
        );
        let o = a.options().unwrap();
        assert_eq!((o.source, o.jobs), (SourceSpec::Pinned, Some(2)));
        assert!(
            Cli::try_parse_from(["x", "kernel", "--sha256", "ab"]).is_err(),
            "--sha256 requires --source"
        );
        let Cmd::Patches(p) = Cli::try_parse_from(["x", "patches", "edit", "--no-push"])
            .unwrap()
            .cmd
        else {
            panic!()
        };
        assert_eq!(
            p.command,
            PatchesCommand::Edit(PatchesEditArgs {
                source: None,
                sha256: None,
                no_push: true,
                glibc: false,
            })
        );
        let Cmd::Patches(p) = Cli::try_parse_from(["x", "patches", "edit", "--glibc"])
            .unwrap()
            .cmd
        else {
            panic!()
        };
        assert!(matches!(
            p.command,
            PatchesCommand::Edit(PatchesEditArgs { glibc: true, .. })
        ));
        assert!(
            Cli::try_parse_from(["x", "patches", "edit", "--glibc", "--source", "/t"]).is_err()
        );
    }

    #[test]
    fn status_rows_say_where_things_are() {
        let rows = vec![
            StageStatus {
                stage: "kernel".into(),
                variant: "qemu".into(),
                kind: StateKind::Built,
                state: "built".into(),
                key: Some("0123456789abcdef".into()),
                built: Some("2026-11-30T02:00:00Z".into()),
                artifacts: Some("/c/stages/kernel/0123".into()),
                log: Some("/c/stages/kernel/0123/build.log".into()),
                epoch: Some(Epoch {
                    secs: 1_700_000_000,
                    source: EpochSource::Config,
                }),
            },
            StageStatus {
                stage: "glibc".into(),
                variant: "xsc".into(),
                kind: StateKind::NotBuilt,
                state: "not built yet".into(),
                key: None,
                built: None,
                artifacts: None,
                log: None,
                epoch: None,
            },
        ];
        let text = format_status(&rows);
        assert!(
            text.starts_with("kernel      qemu     built  key 0123456789ab\n"),
            "{text}"
        );
        assert!(text.contains("artifacts: /c/stages/kernel/0123\n"));
        assert!(text.contains("glibc       xsc      not built yet\n"));
        assert!(
            text.contains("epoch:     2023-11-14T22:13:20Z (xsc.toml [build] epoch"),
            "{text}"
        );
        assert_eq!(
            text.matches("epoch:").count(),
            1,
            "glibc stamps no time: {text}"
        );
    }

    #[test]
    fn the_edit_tree_is_linux_6_1_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::stages::source::tests::test_config(dir.path());
        assert_eq!(edit_tree(&cfg), dir.path().join("linux-6.1"));
        // The test config pins /g.tar.xz: not a glibc-<version> name, so the default.
        assert_eq!(glibc_edit_tree(&cfg), dir.path().join("glibc-2.36"));
    }
}
