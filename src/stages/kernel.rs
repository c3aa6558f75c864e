//! The kernel build stage: inputs → cache key → (cache hit | incremental or fresh build in
//! the kept work tree) → artifacts sealed in the content-addressed cache.
//!
//! Owns the recipe (order of steps, what goes into the key, what is stored) and the kept
//! work tree `<cache>/work/kernel/<profile>/` (`linux/` in-tree build, `patches/` snapshot
//! of the series, `state.json`). The steps themselves live in `source`, `quilt`, `kconfig`
//! and `make`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::error::BuildError;
use super::fragment;
use super::kconfig::{self, KernelProfile};
use super::make::{self, BuildEnv};
use super::progress::BuildEvent;
use super::quilt::{self, MtimeSnapshot};
use super::source::{self, SourceSpec};
use super::tools::{self, KERNEL_TOOLS};
use crate::input::config::Config;
use crate::sys::cache::{Cache, Entry, EntryInfo, KeyBuilder, sha256_file};
use crate::sys::process;

/// Bump when the recipe changes in a way that changes the artifacts (steps, env, flags).
pub(crate) const KERNEL_RECIPE: &str = "kernel-recipe-1";

/// The cache stage name.
pub(crate) const STAGE: &str = "kernel";

/// A progress sink.
pub(crate) type Progress<'a> = &'a mut (dyn FnMut(&BuildEvent) + Send);

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

/// The key of one set of inputs, with the labelled inputs that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KernelKey {
    /// Hex sha256.
    pub key: String,
    /// Labelled inputs (stored in `entry.json`).
    pub inputs: Vec<(String, String)>,
}

/// `patches/kernel` of the repository, absolute (commands run with the tree as cwd).
pub(crate) fn patches_dir(cfg: &Config) -> PathBuf {
    repo_root(cfg).join("patches").join("kernel")
}

/// The cache, by absolute path (quilt and make run with the work tree as cwd).
pub(crate) fn kernel_cache(cfg: &Config) -> Cache {
    Cache::new(std::path::absolute(&cfg.cache_dir).unwrap_or_else(|_| cfg.cache_dir.clone()))
}

/// The repository root as an absolute path (`xsc.toml` may have been given as relative).
pub(crate) fn repo_root(cfg: &Config) -> PathBuf {
    std::path::absolute(&cfg.root).unwrap_or_else(|_| cfg.root.clone())
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
    Ok(KernelKey {
        key: key.finish(),
        inputs: key.inputs().to_vec(),
    })
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

/// Adds a quilt series and every patch it lists to `key`; files in the directory that the
/// series does not list are not inputs. Shared by the kernel and glibc stages.
pub(crate) fn key_series(key: &mut KeyBuilder, patches: &Path) -> Result<(), BuildError> {
    let text = read_input("patch series", &patches.join("series"))?;
    key.str("series", &crate::sys::cache::sha256_bytes(text.as_bytes()));
    for name in quilt::series_patches(&text) {
        let path = patches.join(&name);
        let digest = sha256_file(&path).map_err(|source| BuildError::Input {
            what: "patch",
            path,
            source,
        })?;
        key.str(&format!("patch/{name}"), &digest);
    }
    Ok(())
}

/// Commits a staged entry with its labelled inputs, artifacts and facts.
pub(crate) fn seal(
    cache: &Cache,
    stage: &str,
    key: &str,
    inputs: &[(String, String)],
    staged: &Path,
    artifacts: BTreeMap<String, String>,
    facts: impl IntoIterator<Item = (&'static str, String)>,
) -> Result<Entry, BuildError> {
    let info = EntryInfo {
        stage: stage.into(),
        key: key.to_string(),
        created: 0,
        inputs: inputs.to_vec(),
        artifacts,
        facts: facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    cache
        .commit(staged, info)
        .map_err(BuildError::io("failed to commit cache entry", staged))
}

/// The artifact `name` of a cache entry, which must exist.
pub(crate) fn need_artifact(entry: &Entry, name: &str) -> Result<PathBuf, BuildError> {
    entry
        .artifact(name)
        .filter(|p| p.exists())
        .ok_or_else(|| BuildError::MissingArtifact {
            path: entry.dir.join(name),
            log: None,
        })
}

pub(crate) fn read_input(what: &'static str, path: &Path) -> Result<String, BuildError> {
    std::fs::read_to_string(path).map_err(|source| BuildError::Input {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The cached kernel for the current inputs of `profile` (pinned source), without building:
/// for `--no-build`, where a miss is exit 3 ([`BuildError::NotCached`] from the caller).
///
/// Async because the key includes the toolchain (`gcc --version`, …).
pub(crate) async fn cached_kernel(
    cfg: &Config,
    profile: Option<&str>,
) -> Result<Option<KernelArtifacts>, BuildError> {
    let profile = KernelProfile::named(profile.unwrap_or(&cfg.kernel_profile))?;
    let key = kernel_key(cfg, &profile, &SourceSpec::Pinned).await?;
    match kernel_cache(cfg).lookup(STAGE, &key.key) {
        Some(entry) => Ok(Some(artifacts_from_entry(&entry, false, None)?)),
        None => Ok(None),
    }
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
/// changed.
pub(crate) async fn build_kernel(
    cfg: &Config,
    opts: &KernelBuildOptions,
    progress: Progress<'_>,
) -> Result<KernelArtifacts, BuildError> {
    let profile = KernelProfile::named(opts.profile.as_deref().unwrap_or(&cfg.kernel_profile))?;
    tools::check_tools(KERNEL_TOOLS)?;
    let cache = kernel_cache(cfg);
    let key = kernel_key(cfg, &profile, &opts.source).await?;
    if !opts.force {
        if let Some(entry) = cache.lookup(STAGE, &key.key) {
            progress(&BuildEvent::CacheHit {
                dir: entry.dir.clone(),
            });
            return artifacts_from_entry(&entry, false, None);
        }
    }
    let _lock = WorkLock::acquire(&cache.root().join("work").join("kernel.lock"), progress).await?;
    // Another process may have built the same inputs while we waited for the lock.
    if !opts.force {
        if let Some(entry) = cache.lookup(STAGE, &key.key) {
            progress(&BuildEvent::CacheHit {
                dir: entry.dir.clone(),
            });
            return artifacts_from_entry(&entry, false, None);
        }
    }
    let log = new_log(cfg)?;
    progress(&BuildEvent::Log { path: log.clone() });
    let started = Instant::now();
    let work = cache.work_dir(STAGE, &profile.name);
    let built = build_in(cfg, &profile, opts, &work, true, &log, progress).await?;
    store(&cache, &key, &profile, &built, started, &log).await
}

/// What one build in a tree produced.
#[derive(Debug)]
struct Built {
    tree: PathBuf,
    kernelrelease: String,
    modules: bool,
    incremental: bool,
    env: BuildEnv,
    epoch_source: &'static str,
}

/// Remembered about a kept work tree.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct WorkState {
    /// Source identity the tree was unpacked from.
    pub(crate) source: String,
    /// Fingerprint of what configured the tree ([`config_fingerprint`] for the kernel);
    /// empty when unknown.
    #[serde(default)]
    pub(crate) config: String,
}

impl WorkState {
    /// The state in `path`, or the default (nothing known) when absent or unreadable.
    pub(crate) fn read(path: &Path) -> WorkState {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub(crate) fn write(&self, path: &Path) -> Result<(), BuildError> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other);
        json.and_then(|j| std::fs::write(path, j))
            .map_err(BuildError::io("failed to write", path))
    }
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

    let (epoch, epoch_source) = make::build_epoch(&cfg.root).await;
    let env = BuildEnv::new(epoch, opts.jobs);
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
        epoch_source,
    })
}

/// Copies `series` and the patches it lists into `dest`, so the tree's quilt state refers
/// to a snapshot that matches the key rather than files someone may be editing.
pub(crate) fn snapshot_series(patches: &Path, dest: &Path) -> Result<(), BuildError> {
    let series = patches.join("series");
    let text = read_input("patch series", &series)?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(BuildError::io("failed to remove", dest))?;
    }
    for name in quilt::series_patches(&text) {
        let to = dest.join(&name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(BuildError::io("failed to create", parent))?;
        }
        std::fs::copy(patches.join(&name), &to).map_err(|source| BuildError::Input {
            what: "patch",
            path: patches.join(&name),
            source,
        })?;
    }
    std::fs::create_dir_all(dest).map_err(BuildError::io("failed to create", dest))?;
    std::fs::write(dest.join("series"), text)
        .map_err(BuildError::io("failed to write", dest.join("series")))
}

/// Seals the artifacts of `built` as the cache entry for `key`.
async fn store(
    cache: &Cache,
    key: &KernelKey,
    profile: &KernelProfile,
    built: &Built,
    started: Instant,
    log: &Path,
) -> Result<KernelArtifacts, BuildError> {
    let staged = cache
        .staging(STAGE, &key.key)
        .map_err(BuildError::io("failed to create staging for", cache.root()))?;
    let mut artifacts = BTreeMap::new();
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
        artifacts.insert(name.to_string(), name.to_string());
    }
    if built.modules {
        let dest = staged.join("modules");
        process::run(
            &make::modules_install_cmd(&built.tree, &built.env, &dest),
            Some(log),
        )
        .await
        .map_err(BuildError::step("make modules_install"))?;
        artifacts.insert("modules".into(), "modules".into());
    }
    std::fs::write(
        staged.join("kernelrelease"),
        format!("{}\n", built.kernelrelease),
    )
    .map_err(BuildError::io(
        "failed to write",
        staged.join("kernelrelease"),
    ))?;
    artifacts.insert("kernelrelease".into(), "kernelrelease".into());
    std::fs::copy(log, staged.join("build.log")).map_err(BuildError::io("failed to copy", log))?;
    artifacts.insert("build.log".into(), "build.log".into());

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
        ("timestamp_source", built.epoch_source.to_string()),
        ("bzimage_sha256", bz_sha),
        ("log", log.display().to_string()),
        ("work_tree", built.tree.display().to_string()),
    ];
    let entry = seal(
        cache,
        STAGE,
        &key.key,
        &key.inputs,
        &staged,
        artifacts,
        facts,
    )?;
    artifacts_from_entry(&entry, true, Some(log.to_path_buf()))
}

/// `logs/kernel-build-<UTC>.log`, unique.
fn new_log(cfg: &Config) -> Result<PathBuf, BuildError> {
    new_stage_log(cfg, "kernel")
}

/// `logs/<stage>-build-<UTC>.log`, unique (shared by the kernel and glibc stages).
pub(crate) fn new_stage_log(cfg: &Config, stage: &str) -> Result<PathBuf, BuildError> {
    let dir = repo_root(cfg).join("logs");
    std::fs::create_dir_all(&dir).map_err(BuildError::io("failed to create", &dir))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = make::compact_utc(i64::try_from(now).unwrap_or(0));
    let mut path = dir.join(format!("{stage}-build-{stamp}.log"));
    if path.exists() {
        path = dir.join(format!("{stage}-build-{stamp}-{}.log", std::process::id()));
    }
    std::fs::write(&path, "").map_err(BuildError::io("failed to create", &path))?;
    Ok(path)
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
    let _lock = WorkLock::acquire(&cache.root().join("work").join("kernel.lock"), progress).await?;
    let log = new_log(cfg)?;
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

/// One kernel build per machine at a time (2 cores; the kept work trees are shared by
/// every clone). A pid file; a stale one (its process gone) is taken over.
/// A per-machine lock on a stage's kept work tree: a pid file, taken over when its holder
/// is gone. Shared by the kernel and Debian ISO stages.
pub(crate) struct WorkLock {
    path: PathBuf,
}

impl WorkLock {
    pub(crate) async fn acquire(
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<WorkLock, BuildError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(BuildError::io("failed to create", dir))?;
        }
        let mut told = false;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    std::io::Write::write_all(&mut f, std::process::id().to_string().as_bytes())
                        .map_err(BuildError::io("failed to write", path))?;
                    return Ok(WorkLock {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(path)
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    let alive = !holder.is_empty() && Path::new("/proc").join(&holder).exists();
                    if !alive {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    if !told {
                        progress(&BuildEvent::Step {
                            name: "waiting for another build of this stage".into(),
                            detail: format!("pid {holder}, lock {}", path.display()),
                        });
                        told = true;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                Err(e) => {
                    return Err(BuildError::Io {
                        what: "failed to create lock".into(),
                        path: path.to_path_buf(),
                        source: e,
                    });
                }
            }
        }
    }
}

impl Drop for WorkLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (dir, cfg) = repo();
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

        let lock = dir.path().join("kernel.lock");
        std::fs::write(&lock, "999999999").unwrap(); // no such pid
        let mut sink = |_: &super::super::progress::BuildEvent| {};
        let held = WorkLock::acquire(&lock, &mut sink).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            std::process::id().to_string()
        );
        drop(held);
        assert!(!lock.exists());
    }
}
