//! The kernel build stage: inputs → cache key → (cache hit | incremental or fresh build in
//! the kept work tree) → artifacts sealed in the content-addressed cache.
//!
//! Owns the recipe (order of steps, what goes into the key, what is stored) and the kept
//! work tree `<cache>/work/kernel/<profile>/` (`linux/` in-tree build, `patches/` snapshot
//! of the series, `state.json`). The steps themselves live in `source`, `quilt`, `kconfig`
//! and `make`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::error::BuildError;
use super::fragment;
use super::kconfig::{self, KernelProfile};
use super::make::{self, BuildEnv};
use super::progress::BuildEvent;
use super::quilt::{self, MtimeSnapshot};
use super::source::{self, SourceSpec};
use super::stage::{
    self, Cancel, HEAVY_LOCK, Job, Policy, Product, Progress, Stage, StageKey, WorkState,
    key_series, need_artifact, snapshot_series,
};
use super::tools::{self, KERNEL_TOOLS};
use crate::input::config::Config;
use crate::sys::cache::{Cache, Entry, KeyBuilder, sha256_file};
use crate::sys::epoch::Epoch;
use crate::sys::process;

// The commands (src/app) find the repository root here.
pub(crate) use super::stage::repo_root;

/// Bump when the recipe changes in a way that changes the artifacts (steps, env, flags).
pub(crate) const KERNEL_RECIPE: &str = "kernel-recipe-1";

/// The cache stage name.
pub(crate) const STAGE: &str = "kernel";

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelBuildOptions {
    /// `qemu` or `debian`; `None` = `[kernel] profile` of xsc.toml.
    pub profile: Option<String>,
    /// Where the source comes from.
    pub source: SourceSpec,
    /// Build even when the cache has the key (the entry is replaced only if it is absent).
    pub force: bool,
    /// `make -j`; `None` = number of CPUs.
    pub jobs: Option<usize>,
}

impl Default for KernelBuildOptions {
    fn default() -> Self {
        KernelBuildOptions {
            profile: None,
            source: SourceSpec::Pinned,
            force: false,
            jobs: None,
        }
    }
}

/// A built kernel in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KernelArtifacts {
    /// `arch/x86/boot/bzImage`.
    pub bzimage: PathBuf,
    /// The final `.config`.
    pub config: PathBuf,
    /// `System.map`.
    pub system_map: PathBuf,
    /// `lib/modules/<release>/` tree root (INSTALL_MOD_PATH), when the config has modules.
    pub modules: Option<PathBuf>,
    /// `make -s kernelrelease`.
    pub kernelrelease: String,
    /// The cache key.
    pub key: String,
    /// The cache entry directory.
    pub entry_dir: PathBuf,
    /// The build log (under `logs/` when built now, the entry's copy otherwise).
    pub log: Option<PathBuf>,
    /// True when this call ran make; false on a cache hit.
    pub built_now: bool,
    /// The profile.
    pub profile: String,
    /// Recorded facts: purpose, build seconds, timestamp, incremental, sha256 …
    pub facts: BTreeMap<String, String>,
}

/// The key of one set of kernel inputs.
pub(crate) type KernelKey = StageKey;

/// `patches/kernel` of the repository, absolute (commands run with the tree as cwd).
pub(crate) fn patches_dir(cfg: &Config) -> PathBuf {
    repo_root(cfg).join("patches").join("kernel")
}

/// The cache, by absolute path (quilt and make run with the work tree as cwd).
pub(crate) fn kernel_cache(cfg: &Config) -> Cache {
    stage::stage_cache(cfg)
}

/// What the kernel's build time is derived from ([`stage::epoch_of`]): `patches/kernel`
/// (the series, its patches and the fragments), so a commit elsewhere does not move it.
pub(crate) fn epoch_inputs(cfg: &Config) -> Vec<PathBuf> {
    vec![patches_dir(cfg)]
}

/// Builds the key from everything that decides the artifacts: recipe, source, profile and
/// base, the series and each patch in it, each fragment, and the toolchain. Files in the
/// patch directory that the series or profile does not use are not inputs.
pub(crate) fn key_from_parts(
    cfg: &Config,
    profile: &KernelProfile,
    source_identity: &str,
    toolchain: &[(&str, String)],
) -> Result<KernelKey, BuildError> {
    let patches = patches_dir(cfg);
    let mut key = KeyBuilder::new();
    key.str("recipe", KERNEL_RECIPE)
        .str("source", source_identity)
        .str("profile", &profile.name);
    key.str("base", &kconfig::base_identity(cfg, &profile.base)?);
    key_series(&mut key, &patches)?;
    for (name, path) in profile
        .fragments
        .iter()
        .zip(profile.fragment_paths(&patches))
    {
        let digest = sha256_file(&path).map_err(|source| BuildError::Input {
            what: "config fragment",
            path,
            source,
        })?;
        key.str(&format!("fragment/{name}"), &digest);
    }
    for (label, line) in toolchain {
        key.str(label, line);
    }
    Ok(StageKey::from(&key))
}

/// The key of the current inputs (runs `gcc/ld/make --version`).
pub(crate) async fn kernel_key(
    cfg: &Config,
    profile: &KernelProfile,
    source: &SourceSpec,
) -> Result<KernelKey, BuildError> {
    let toolchain = tools::toolchain_identity().await?;
    key_from_parts(cfg, profile, &source.identity(cfg)?, &toolchain)
}

/// Turns a cache entry back into artifacts.
pub(crate) fn artifacts_from_entry(
    entry: &Entry,
    built_now: bool,
    log: Option<PathBuf>,
) -> Result<KernelArtifacts, BuildError> {
    let need = |name: &str| need_artifact(entry, name);
    Ok(KernelArtifacts {
        bzimage: need("bzImage")?,
        config: need("config")?,
        system_map: need("System.map")?,
        modules: entry.artifact("modules").filter(|p| p.exists()),
        kernelrelease: entry
            .info
            .facts
            .get("kernelrelease")
            .cloned()
            .unwrap_or_default(),
        key: entry.info.key.clone(),
        entry_dir: entry.dir.clone(),
        log: log.or_else(|| entry.artifact("build.log")),
        built_now,
        profile: entry.info.facts.get("profile").cloned().unwrap_or_default(),
        facts: entry.info.facts.clone(),
    })
}

/// Builds the kernel for `opts`, or returns the cached one when the inputs are unchanged
/// (no make at all). A rebuild reuses the kept work tree so kbuild rebuilds only what
/// changed. Nothing here stops on Ctrl-C: `build kernel` stops the whole future itself;
/// [`ensure_kernel`] takes a cancel signal.
pub(crate) async fn build_kernel(
    cfg: &Config,
    opts: &KernelBuildOptions,
    progress: Progress<'_>,
) -> Result<KernelArtifacts, BuildError> {
    // `build kernel` names a missing tool even when the kernel is cached.
    tools::check_tools(KERNEL_TOOLS)?;
    let policy = Policy {
        force: opts.force,
        no_build: false,
    };
    ensure_kernel(cfg, opts, policy, &Cancel::never(), progress).await
}

/// The kernel for `opts` through the stage framework: cached, built, or (`--no-build`)
/// [`BuildError::NotCached`]; a cancelled build stores nothing.
pub(crate) async fn ensure_kernel(
    cfg: &Config,
    opts: &KernelBuildOptions,
    policy: Policy,
    cancel: &Cancel,
    progress: Progress<'_>,
) -> Result<KernelArtifacts, BuildError> {
    let profile = KernelProfile::named(opts.profile.as_deref().unwrap_or(&cfg.kernel_profile))?;
    let cache = kernel_cache(cfg);
    let key = kernel_key(cfg, &profile, &opts.source).await?;
    let stage = Stage {
        name: STAGE,
        key: &key,
        lock: HEAVY_LOCK,
        log_dir: Some(stage::logs_dir(cfg)),
    };
    let got = stage::ensure(&cache, stage, policy, cancel, progress, |job: Job<'_>| {
        let (cfg, profile) = (cfg, &profile);
        async move {
            // Here, not before the key: a cached kernel needs no build tools.
            tools::check_tools(KERNEL_TOOLS)?;
            let log = job.log.expect("the kernel stage asks for a log");
            let started = Instant::now();
            let work = kernel_cache(cfg).work_dir(STAGE, &profile.name);
            let built = build_in(cfg, profile, opts, &work, true, &log, job.progress).await?;
            store(&job.staged, profile, &built, started, &log).await
        }
    })
    .await
    .map_err(|e| match e {
        // Name the profile and the command that builds it, as `--no-build` users need.
        BuildError::NotCached { key, .. } => BuildError::NotCached {
            profile: profile.name.clone(),
            key,
        },
        other => other,
    })?;
    artifacts_from_entry(&got.entry, got.built_now, got.log)
}

/// What one build in a tree produced.
#[derive(Debug)]
struct Built {
    tree: PathBuf,
    kernelrelease: String,
    modules: bool,
    incremental: bool,
    env: BuildEnv,
    epoch: Epoch,
}

/// What decides the `.config`: the base, the fragments, and every Kconfig file the series
/// touches. When it is unchanged the configure step (~11 s here, mostly `make tinyconfig`)
/// is skipped on an incremental build.
fn config_fingerprint(
    cfg: &Config,
    profile: &KernelProfile,
    tree: &Path,
    fragments: &[PathBuf],
) -> Result<String, BuildError> {
    let mut key = KeyBuilder::new();
    key.str("recipe", KERNEL_RECIPE)
        .str("base", &kconfig::base_identity(cfg, &profile.base)?);
    for f in fragments {
        let digest = sha256_file(f).map_err(|source| BuildError::Input {
            what: "config fragment",
            path: f.clone(),
            source,
        })?;
        key.str(&f.display().to_string(), &digest);
    }
    for rel in quilt::touched_files(tree) {
        if rel
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("Kconfig"))
        {
            key.str(
                &rel.display().to_string(),
                &sha256_file(&tree.join(&rel)).unwrap_or_default(),
            );
        }
    }
    Ok(key.finish())
}

/// Prepares `work/linux` (kept or fresh), applies the series, configures, verifies, makes.
async fn build_in(
    cfg: &Config,
    profile: &KernelProfile,
    opts: &KernelBuildOptions,
    work: &Path,
    keep: bool,
    log: &Path,
    progress: Progress<'_>,
) -> Result<Built, BuildError> {
    let linux = work.join("linux");
    let snapshot_dir = work.join("patches");
    let state_file = work.join("state.json");
    let source_id = opts.source.identity(cfg)?;
    let state = WorkState::read(&state_file);
    let mut incremental = keep && state.source == source_id && linux.join("Makefile").is_file();
    let mut mtimes = MtimeSnapshot::default();
    if incremental {
        progress(&BuildEvent::Step {
            name: "reuse work tree".into(),
            detail: linux.display().to_string(),
        });
        let mut files = quilt::touched_files(&linux);
        files.push(PathBuf::from(".config"));
        mtimes = MtimeSnapshot::take(&linux, &files);
        if let Err(e) = quilt::pop_all(&linux, &snapshot_dir, log).await {
            // A tree left half-patched by a killed run: start over rather than guess.
            progress(&BuildEvent::Step {
                name: "kept tree unusable, unpacking fresh".into(),
                detail: e.to_string(),
            });
            incremental = false;
        }
    }
    if !incremental {
        if work.exists() {
            std::fs::remove_dir_all(work).map_err(BuildError::io("failed to remove", work))?;
        }
        std::fs::create_dir_all(work).map_err(BuildError::io("failed to create", work))?;
        let cache = kernel_cache(cfg);
        progress(&BuildEvent::Step {
            name: "resolve source".into(),
            detail: String::new(),
        });
        let resolved = source::resolve(cfg, &opts.source, &cache.downloads(), log).await?;
        progress(&BuildEvent::Step {
            name: "unpack".into(),
            detail: linux.display().to_string(),
        });
        source::unpack(&resolved, &linux, log).await?;
        WorkState {
            source: source_id.clone(),
            config: String::new(),
        }
        .write(&state_file)?;
    }
    snapshot_series(&patches_dir(cfg), &snapshot_dir)?;
    progress(&BuildEvent::Step {
        name: "quilt push -a --fuzz=0".into(),
        detail: String::new(),
    });
    quilt::push_all(&linux, &snapshot_dir, log).await?;

    let epoch = stage::epoch_of(cfg, &epoch_inputs(cfg)).await;
    let env = BuildEnv::new(epoch.secs, opts.jobs);
    let fragments = profile.fragment_paths(&patches_dir(cfg));
    let config_key = config_fingerprint(cfg, profile, &linux, &fragments)?;
    if incremental && state.config == config_key && linux.join(".config").is_file() {
        progress(&BuildEvent::Step {
            name: "configure: inputs unchanged, keeping .config".into(),
            detail: String::new(),
        });
    } else {
        progress(&BuildEvent::Step {
            name: format!("configure ({:?} base + fragments)", profile.base),
            detail: String::new(),
        });
        let downloads = kernel_cache(cfg).downloads();
        kconfig::configure(cfg, profile, &linux, &fragments, &env, &downloads, log).await?;
        WorkState {
            source: source_id,
            config: config_key,
        }
        .write(&state_file)?;
    }
    if incremental {
        mtimes.restore(&linux);
    }
    fragment::verify_file(
        &fragment::read_fragments(&fragments)?,
        &linux.join(".config"),
    )?;

    let dot = std::fs::read_to_string(linux.join(".config"))
        .map_err(BuildError::io("failed to read", linux.join(".config")))?;
    let modules = fragment::has_modules(&fragment::parse_dot_config(&dot));
    let targets: &[&str] = if modules {
        &["bzImage", "modules"]
    } else {
        &["bzImage"]
    };
    let step = format!("make -j{} {}", env.jobs, targets.join(" "));
    progress(&BuildEvent::Step {
        name: step.clone(),
        detail: if incremental {
            "incremental".into()
        } else {
            "fresh tree".into()
        },
    });
    make::run_following(&make::make_cmd(&linux, &env, targets), log, &step, progress).await?;
    let release = process::run(&make::kernelrelease_cmd(&linux, &env), None)
        .await
        .map_err(BuildError::step("make -s kernelrelease"))?;
    Ok(Built {
        tree: linux,
        kernelrelease: release.stdout.trim().to_string(),
        modules,
        incremental,
        env,
        epoch,
    })
}

/// Puts the artifacts of `built` into the staging entry `staged` (the framework seals it).
async fn store(
    staged: &Path,
    profile: &KernelProfile,
    built: &Built,
    started: Instant,
    log: &Path,
) -> Result<Product, BuildError> {
    let mut artifacts = vec!["bzImage", "config", "System.map"];
    for (name, rel) in [
        ("bzImage", "arch/x86/boot/bzImage"),
        ("config", ".config"),
        ("System.map", "System.map"),
    ] {
        let from = built.tree.join(rel);
        if !from.is_file() {
            return Err(BuildError::MissingArtifact {
                path: from,
                log: Some(log.to_path_buf()),
            });
        }
        std::fs::copy(&from, staged.join(name)).map_err(BuildError::io("failed to copy", &from))?;
    }
    if built.modules {
        let dest = staged.join("modules");
        process::run(
            &make::modules_install_cmd(&built.tree, &built.env, &dest),
            Some(log),
        )
        .await
        .map_err(BuildError::step("make modules_install"))?;
        artifacts.push("modules");
    }
    std::fs::write(
        staged.join("kernelrelease"),
        format!("{}\n", built.kernelrelease),
    )
    .map_err(BuildError::io(
        "failed to write",
        staged.join("kernelrelease"),
    ))?;
    std::fs::copy(log, staged.join("build.log")).map_err(BuildError::io("failed to copy", log))?;
    artifacts.extend(["kernelrelease", "build.log"]);

    let bz_sha = sha256_file(&staged.join("bzImage"))
        .map_err(BuildError::io("failed to read", staged.join("bzImage")))?;
    let facts = [
        ("kernelrelease", built.kernelrelease.clone()),
        ("profile", profile.name.clone()),
        ("purpose", profile.purpose.to_string()),
        (
            "build_seconds",
            format!("{:.1}", started.elapsed().as_secs_f64()),
        ),
        ("incremental", built.incremental.to_string()),
        ("jobs", built.env.jobs.to_string()),
        (
            "kbuild_build_timestamp",
            make::kbuild_timestamp(built.env.epoch),
        ),
        (
            "timestamp_source",
            built.epoch.source.describe().to_string(),
        ),
        ("bzimage_sha256", bz_sha),
        ("log", log.display().to_string()),
        ("work_tree", built.tree.display().to_string()),
    ];
    Ok(Product::new(artifacts, facts))
}

/// Result of `--check-repro`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReproReport {
    /// The bzImage sha256 both builds produced.
    pub bzimage_sha256: String,
    /// The two trees (kept for inspection).
    pub trees: [PathBuf; 2],
    /// The log of both builds.
    pub log: PathBuf,
}

/// Builds the kernel twice from scratch in two separate trees and compares the bzImage
/// digests. Slow (two clean builds); for `make repro-kernel`, not CI.
pub(crate) async fn check_reproducible(
    cfg: &Config,
    opts: &KernelBuildOptions,
    progress: Progress<'_>,
) -> Result<ReproReport, BuildError> {
    let profile = KernelProfile::named(opts.profile.as_deref().unwrap_or(&cfg.kernel_profile))?;
    tools::check_tools(KERNEL_TOOLS)?;
    let cache = kernel_cache(cfg);
    let _lock = stage::work_lock(&cache, HEAVY_LOCK, progress).await?;
    let log = stage::new_log(&stage::logs_dir(cfg), STAGE)?;
    progress(&BuildEvent::Log { path: log.clone() });
    let mut digests = Vec::new();
    let mut trees = Vec::new();
    for side in ["a", "b"] {
        let work = cache.work_dir("kernel-repro", &format!("{}-{side}", profile.name));
        let built = build_in(cfg, &profile, opts, &work, false, &log, progress).await?;
        let bz = built.tree.join("arch/x86/boot/bzImage");
        digests.push(sha256_file(&bz).map_err(BuildError::io("failed to read", &bz))?);
        trees.push(built.tree);
    }
    if digests[0] != digests[1] {
        return Err(BuildError::NotReproducible {
            first: digests[0].clone(),
            second: digests[1].clone(),
            first_tree: trees[0].clone(),
            second_tree: trees[1].clone(),
        });
    }
    Ok(ReproReport {
        bzimage_sha256: digests.remove(0),
        trees: [trees[0].clone(), trees[1].clone()],
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::cache::EntryInfo;

    /// A repo with a two-patch series, an unlisted patch, a README and two fragments.
    fn repo() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = super::super::source::tests::test_config(dir.path());
        let p = patches_dir(&cfg);
        std::fs::create_dir_all(p.join("configs")).unwrap();
        std::fs::write(p.join("series"), "0001-a.patch\n0002-b.patch\n").unwrap();
        std::fs::write(p.join("0001-a.patch"), "--- a/x\n+++ b/x\n").unwrap();
        std::fs::write(p.join("0002-b.patch"), "--- a/y\n+++ b/y\n").unwrap();
        std::fs::write(p.join("0009-not-in-series.patch"), "draft").unwrap();
        std::fs::write(p.join("README.md"), "notes").unwrap();
        std::fs::write(p.join("configs/qemu.config"), "CONFIG_VIRTIO=y\n").unwrap();
        std::fs::write(p.join("configs/xsc.config"), "CONFIG_XSC=y\n").unwrap();
        (dir, cfg)
    }

    fn tc(gcc: &str) -> Vec<(&'static str, String)> {
        vec![
            ("toolchain/gcc", gcc.to_string()),
            ("toolchain/ld", "GNU ld 2.40".into()),
            ("toolchain/make", "GNU Make 4.3".into()),
        ]
    }

    #[test]
    fn keys_change_with_every_input_and_only_those() {
        let (_dir, cfg) = repo();
        let qemu = KernelProfile::named("qemu").unwrap();
        let key = |cfg: &Config, gcc: &str| {
            key_from_parts(cfg, &qemu, "sha256:aa", &tc(gcc))
                .unwrap()
                .key
        };
        let base = key(&cfg, "gcc 12.2.0");
        assert_eq!(key(&cfg, "gcc 12.2.0"), base, "keys are deterministic");

        // Unrelated files: a patch not in the series, a README, a fragment of another profile.
        let p = patches_dir(&cfg);
        std::fs::write(p.join("0009-not-in-series.patch"), "draft 2").unwrap();
        std::fs::write(p.join("README.md"), "more notes").unwrap();
        std::fs::write(p.join("configs/debian-extra.config"), "CONFIG_Y=y\n").unwrap();
        std::fs::write(cfg.root.join("unrelated.txt"), "x").unwrap();
        assert_eq!(key(&cfg, "gcc 12.2.0"), base);

        // One byte of a patch.
        std::fs::write(p.join("0002-b.patch"), "--- a/y\n+++ b/z\n").unwrap();
        let patched = key(&cfg, "gcc 12.2.0");
        assert_ne!(patched, base);
        // The series order.
        std::fs::write(p.join("series"), "0002-b.patch\n0001-a.patch\n").unwrap();
        let reordered = key(&cfg, "gcc 12.2.0");
        assert_ne!(reordered, patched);
        // A fragment.
        std::fs::write(
            p.join("configs/xsc.config"),
            "CONFIG_XSC=y\nCONFIG_XSC_DEBUG=y\n",
        )
        .unwrap();
        let fragment = key(&cfg, "gcc 12.2.0");
        assert_ne!(fragment, reordered);
        // The toolchain, the source and the profile.
        assert_ne!(key(&cfg, "gcc 12.3.0"), fragment);
        assert_ne!(
            key_from_parts(&cfg, &qemu, "sha256:bb", &tc("gcc 12.2.0"))
                .unwrap()
                .key,
            fragment
        );
        let inputs = key_from_parts(&cfg, &qemu, "sha256:aa", &tc("gcc 12.2.0"))
            .unwrap()
            .inputs;
        let labels: Vec<&str> = inputs.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "layout",
                "recipe",
                "source",
                "profile",
                "base",
                "series",
                "patch/0002-b.patch",
                "patch/0001-a.patch",
                "fragment/qemu.config",
                "fragment/xsc.config",
                "toolchain/gcc",
                "toolchain/ld",
                "toolchain/make"
            ]
        );
    }

    /// `repo()` with a real two-patch series, pinned to a tarball of a fake kernel tree
    /// (src/stages/testdata/fakekernel: make targets, merge_config.sh, dependency tracking).
    async fn fake_kernel_repo() -> (tempfile::TempDir, Config) {
        let (dir, mut cfg) = repo();
        let p = patches_dir(&cfg);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/stages/testdata");
        for name in ["0001-edit-a.patch", "0003-edit-b.patch"] {
            std::fs::copy(fixture.join("quilt/patches").join(name), p.join(name)).unwrap();
        }
        std::fs::write(p.join("series"), "0001-edit-a.patch\n0003-edit-b.patch\n").unwrap();
        let tar = dir.path().join("linux-source-6.1.tar.gz");
        let pack = process::Cmd::new([
            "tar".as_ref(),
            "-czf".as_ref(),
            tar.as_os_str(),
            "-C".as_ref(),
            fixture.join("fakekernel").as_os_str(),
            "linux-source-6.1".as_ref(),
        ]);
        process::run(&pack, None).await.unwrap();
        cfg.linux.sha256 = sha256_file(&tar).unwrap();
        cfg.linux.tarball = tar;
        (dir, cfg)
    }

    /// The cached kernel of `profile` (pinned source) without building: `--no-build`.
    async fn cached_kernel(
        cfg: &Config,
        profile: Option<&str>,
    ) -> Result<Option<KernelArtifacts>, BuildError> {
        let opts = KernelBuildOptions {
            profile: profile.map(str::to_string),
            ..KernelBuildOptions::default()
        };
        let no_build = Policy {
            force: false,
            no_build: true,
        };
        let mut quiet = |_: &BuildEvent| {};
        match ensure_kernel(cfg, &opts, no_build, &Cancel::never(), &mut quiet).await {
            Err(BuildError::NotCached { profile: p, .. }) => {
                assert_eq!(Some(p.as_str()), profile, "names the profile");
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    fn compiled(cfg: &Config) -> usize {
        let tree = cfg.cache_dir.join("work/kernel/qemu/linux");
        std::fs::read_to_string(tree.join("make-count"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    #[tokio::test]
    async fn build_then_cache_hit_then_incremental_then_dropped_option() {
        let (_dir, cfg) = fake_kernel_repo().await;
        let opts = KernelBuildOptions {
            profile: Some("qemu".into()),
            jobs: Some(2),
            ..KernelBuildOptions::default()
        };
        let mut events = Vec::new();
        let mut sink = |e: &BuildEvent| events.push(e.clone());

        assert_eq!(cached_kernel(&cfg, Some("qemu")).await.unwrap(), None);
        let first = build_kernel(&cfg, &opts, &mut sink).await.unwrap();
        assert!(first.built_now);
        assert_eq!(first.kernelrelease, "6.1.0-fake");
        assert_eq!(first.facts["incremental"], "false");
        let image = std::fs::read_to_string(&first.bzimage).unwrap();
        assert!(
            image.contains("LINE2") && image.contains("B8"),
            "series applied: {image}"
        );
        assert!(
            image.contains("CONFIG_BASE_tinyconfig=y\nCONFIG_VIRTIO=y\nCONFIG_XSC=y"),
            "{image}"
        );
        let map = std::fs::read_to_string(&first.system_map).unwrap();
        assert_eq!(
            map.trim(),
            format!("{} xsc@xsc-release", first.facts["kbuild_build_timestamp"])
        );
        assert!(
            first
                .log
                .as_ref()
                .unwrap()
                .starts_with(cfg.root.join("logs"))
        );
        assert_eq!(compiled(&cfg), 2);

        // Nothing changed: a cache hit, make does not run at all.
        let second = build_kernel(&cfg, &opts, &mut sink).await.unwrap();
        assert!(!second.built_now);
        assert_eq!(
            (second.key.as_str(), &second.bzimage),
            (first.key.as_str(), &first.bzimage)
        );
        assert_eq!(compiled(&cfg), 2);
        assert_eq!(
            cached_kernel(&cfg, Some("qemu"))
                .await
                .unwrap()
                .unwrap()
                .key,
            first.key
        );

        // One line of patch 0003 changes: same kept tree, only b.o is recompiled (a.c keeps
        // its mtime through quilt pop/push).
        let p3 = patches_dir(&cfg).join("0003-edit-b.patch");
        std::fs::write(
            &p3,
            std::fs::read_to_string(&p3)
                .unwrap()
                .replace("+B8", "+B8 edited"),
        )
        .unwrap();
        let third = build_kernel(&cfg, &opts, &mut sink).await.unwrap();
        assert!(third.built_now);
        assert_ne!(third.key, first.key);
        assert_eq!(third.facts["incremental"], "true");
        assert!(
            std::fs::read_to_string(&third.bzimage)
                .unwrap()
                .contains("B8 edited")
        );
        assert_eq!(compiled(&cfg), 3, "only b.o may be rebuilt");
        assert!(
            std::fs::read_to_string(&first.bzimage)
                .unwrap()
                .contains("B8\n"),
            "old entry untouched"
        );

        // An option olddefconfig drops is an error naming the fragment line.
        std::fs::write(
            patches_dir(&cfg).join("configs/xsc.config"),
            "CONFIG_XSC=y\nCONFIG_DROPPED=y\n",
        )
        .unwrap();
        let err = build_kernel(&cfg, &opts, &mut sink).await.unwrap_err();
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BuildFailed);
        assert!(
            err.to_string().contains(
                "configs/xsc.config:2: CONFIG_DROPPED requested y but .config has absent"
            ),
            "{err}"
        );

        assert!(
            events
                .iter()
                .any(|e| matches!(e, BuildEvent::CacheHit { .. }))
        );
        assert!(events.iter().any(|e| matches!(e, BuildEvent::Make { .. })));
    }

    /// What `test` does when a scenario needs a kernel: Ctrl-C while make runs stops the
    /// build and stores nothing, even when make manages to finish first.
    #[tokio::test]
    async fn a_runner_build_cancelled_during_make_stores_nothing() {
        let (_dir, cfg) = fake_kernel_repo().await;
        let (tx, rx) = tokio::sync::watch::channel(false);
        // The real stop signals every child group, and other tests' makes run beside us.
        let cancel = Cancel::with_stop(rx, || {});
        let mut sink = |e: &BuildEvent| {
            if matches!(e, BuildEvent::Step { name, .. } if name.starts_with("make -j")) {
                let _ = tx.send(true);
            }
        };
        let opts = KernelBuildOptions {
            profile: Some("qemu".into()),
            jobs: Some(2),
            ..KernelBuildOptions::default()
        };
        let err = ensure_kernel(&cfg, &opts, Policy::default(), &cancel, &mut sink)
            .await
            .unwrap_err();
        assert!(matches!(err, BuildError::Interrupted), "{err}");
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::Interrupted);
        assert_eq!(cached_kernel(&cfg, Some("qemu")).await.unwrap(), None);
        // The lock was released: the next (uncancelled) build goes ahead.
        let mut quiet = |_: &BuildEvent| {};
        assert!(
            build_kernel(&cfg, &opts, &mut quiet)
                .await
                .unwrap()
                .built_now
        );
    }

    #[tokio::test]
    async fn a_patch_that_no_longer_applies_fails_the_build_with_its_name() {
        let (_dir, cfg) = fake_kernel_repo().await;
        let p3 = patches_dir(&cfg).join("0003-edit-b.patch");
        std::fs::write(
            &p3,
            std::fs::read_to_string(&p3)
                .unwrap()
                .replace(" line7", " line7 changed"),
        )
        .unwrap();
        let mut sink = |_: &super::super::progress::BuildEvent| {};
        let err = build_kernel(&cfg, &KernelBuildOptions::default(), &mut sink)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("patch 0003-edit-b.patch does not apply: b.c hunk #1 FAILED"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BuildFailed);
    }

    #[tokio::test]
    async fn patches_edit_gives_a_quilt_tree_whose_refresh_lands_in_the_repo() {
        let (_dir, cfg) = fake_kernel_repo().await;
        let args = crate::app::build::PatchesEditArgs::default();
        crate::app::build::run_patches_edit(&cfg, &args)
            .await
            .unwrap();
        let tree = cfg.root.join("linux-6.1");
        assert_eq!(
            std::fs::read_link(tree.join("patches")).unwrap(),
            Path::new("../patches/kernel")
        );
        let applied = std::fs::read_to_string(tree.join(".pc/applied-patches")).unwrap();
        assert_eq!(applied, "0001-edit-a.patch\n0003-edit-b.patch\n");
        // No QUILT_PATCHES, no .quiltrc: quilt finds the series through the tree alone.
        std::fs::write(
            tree.join("b.c"),
            std::fs::read_to_string(tree.join("b.c"))
                .unwrap()
                .replace("B8", "B8 refreshed"),
        )
        .unwrap();
        let refresh =
            process::Cmd::new(["quilt", "--quiltrc", "-", "refresh", "--no-timestamps"]).cwd(&tree);
        process::run(&refresh, None).await.unwrap();
        let patch = std::fs::read_to_string(patches_dir(&cfg).join("0003-edit-b.patch")).unwrap();
        assert!(patch.contains("+B8 refreshed"), "{patch}");
        // A second `patches edit` leaves the tree alone.
        crate::app::build::run_patches_edit(&cfg, &args)
            .await
            .unwrap();
        assert!(
            std::fs::read_to_string(tree.join("b.c"))
                .unwrap()
                .contains("B8 refreshed")
        );
    }

    #[test]
    fn a_missing_patch_is_bad_input() {
        let (_dir, cfg) = repo();
        std::fs::remove_file(patches_dir(&cfg).join("0002-b.patch")).unwrap();
        let err = key_from_parts(&cfg, &KernelProfile::named("qemu").unwrap(), "s", &tc("g"))
            .unwrap_err();
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BadInput);
        assert!(err.to_string().contains("0002-b.patch"), "{err}");
    }

    #[test]
    fn the_series_snapshot_has_only_listed_patches() {
        let (dir, cfg) = repo();
        let dest = dir.path().join("snap");
        snapshot_series(&patches_dir(&cfg), &dest).unwrap();
        let mut names: Vec<String> = crate::sys::cache::walk_sorted(&dest)
            .unwrap()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["0001-a.patch", "0002-b.patch", "series"]);
    }

    #[tokio::test]
    async fn entries_turn_back_into_artifacts_and_a_stale_lock_is_taken_over() {
        let (_dir, cfg) = repo();
        let cache = kernel_cache(&cfg);
        let staged = cache.staging(STAGE, "k").unwrap();
        for f in ["bzImage", "config", "System.map", "build.log"] {
            std::fs::write(staged.join(f), f).unwrap();
        }
        let artifacts: BTreeMap<String, String> = ["bzImage", "config", "System.map", "build.log"]
            .iter()
            .map(|f| ((*f).to_string(), (*f).to_string()))
            .collect();
        let facts = [
            ("kernelrelease".to_string(), "6.1.192".to_string()),
            ("profile".to_string(), "qemu".to_string()),
        ]
        .into();
        let info = EntryInfo {
            stage: STAGE.into(),
            key: "k".into(),
            created: 0,
            inputs: vec![],
            artifacts,
            facts,
        };
        let entry = cache.commit(&staged, info).unwrap();
        let a = artifacts_from_entry(&entry, false, None).unwrap();
        assert_eq!(
            (a.kernelrelease.as_str(), a.profile.as_str(), a.built_now),
            ("6.1.192", "qemu", false)
        );
        assert_eq!(a.log, Some(entry.dir.join("build.log")));
        assert_eq!(a.modules, None);

        // A pid file the old lock left (no such pid) does not hold the flock-based one.
        let lock = cache.root().join("work").join(HEAVY_LOCK);
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(&lock, "999999999").unwrap();
        let mut sink = |_: &super::super::progress::BuildEvent| {};
        let held = stage::work_lock(&cache, HEAVY_LOCK, &mut sink)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(held);
        // Kept (deleting it would race), emptied so nobody is blamed.
        assert_eq!(std::fs::read_to_string(&lock).unwrap(), "");
    }
}
