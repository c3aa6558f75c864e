//! The one skeleton every build stage runs through (kernel, glibc, Debian ISO, stock
//! kernel): key → cache lookup → lock → re-lookup → log → build → seal.
//!
//! A stage supplies its [`StageKey`] and an async build that fills a staging directory and
//! returns the artifacts and facts to record; [`ensure`] owns the rest: the cache-or-build
//! policy (`--force`, `--no-build`), the per-machine lock (two processes missing the cache
//! at once build once; the second finds the first one's entry), the log, cancellation
//! (Ctrl-C stops the build's children with SIGTERM and nothing is stored) and the atomic
//! commit. Progress goes to the caller's [`BuildEvent`] sink; nothing here prints.
//!
//! Helpers every stage shares live here too (reading inputs, keying a quilt series,
//! snapshotting it, the kept tree's `state.json`), so no stage reaches into another.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::error::BuildError;
use super::make;
use super::progress::BuildEvent;
use super::quilt;
use crate::input::config::Config;
use crate::sys::cache::{Cache, Entry, EntryInfo, KeyBuilder, sha256_bytes, sha256_file};
use crate::sys::epoch::{self, Epoch};
use crate::sys::lock::{FileLock, LockError};
use crate::sys::process;

/// A progress sink.
pub(crate) type Progress<'a> = &'a mut (dyn FnMut(&BuildEvent) + Send);

/// How long a cancelled build gets to stop after its children got SIGTERM (make deletes
/// the target it was writing, the stage removes its mounts) before it is dropped, which
/// SIGKILLs what is left.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Lock of the heavy compiler stages (kernel, glibc): one per machine (2 cores), shared.
pub(crate) const HEAVY_LOCK: &str = "kernel.lock";

/// The key of one set of inputs, with the labelled inputs that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StageKey {
    /// Hex sha256.
    pub key: String,
    /// Labelled inputs (stored in `entry.json`).
    pub inputs: Vec<(String, String)>,
}

impl From<&KeyBuilder> for StageKey {
    fn from(k: &KeyBuilder) -> StageKey {
        StageKey {
            key: k.finish(),
            inputs: k.inputs().to_vec(),
        }
    }
}

/// One stage to ensure: its cache name, key, lock and where its build log goes.
#[derive(Clone, Debug)]
pub(crate) struct Stage<'a> {
    /// The cache stage name (`kernel`, `glibc`, `debian-iso`, `stock-kernel`).
    pub name: &'static str,
    /// The key of the current inputs.
    pub key: &'a StageKey,
    /// The lock file under `<cache>/work/` held while building.
    pub lock: &'static str,
    /// Directory of `<name>-build-<UTC>.log`, created before the build; `None` when the
    /// stage keeps its log itself (in the staging directory).
    pub log_dir: Option<PathBuf>,
}

/// The cache-or-build policy of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Build even on a hit (the existing entry is kept when the key is already there).
    pub force: bool,
    /// Never build: a miss is [`StageError::NotCached`].
    pub no_build: bool,
}

/// The cancel signal of a request (flips on the first SIGINT/SIGTERM) and how a running
/// build's children are stopped when it does.
#[derive(Clone, Debug)]
pub(crate) struct Cancel {
    rx: watch::Receiver<bool>,
    stop_children: fn(),
}

impl Cancel {
    /// Follows `rx`; on cancel every child group gets SIGTERM, as `build kernel|glibc` do.
    pub(crate) fn new(rx: watch::Receiver<bool>) -> Cancel {
        Cancel {
            rx,
            stop_children: process::terminate_all_groups,
        }
    }

    /// `rx` when there is one, else a signal nobody can send.
    pub(crate) fn from_option(rx: Option<watch::Receiver<bool>>) -> Cancel {
        Cancel::new(rx.unwrap_or_else(|| watch::channel(false).1))
    }

    /// Nobody can cancel (the caller stops the whole future itself).
    pub(crate) fn never() -> Cancel {
        Cancel::from_option(None)
    }

    /// Follows `rx`; on cancel calls `stop_children` instead of signalling every child
    /// group (a test binary runs other tests' children beside it).
    #[cfg(test)]
    pub(crate) fn with_stop(rx: watch::Receiver<bool>, stop_children: fn()) -> Cancel {
        Cancel { rx, stop_children }
    }

    /// True once cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }
}

/// What a stage's build gets: where to put the entry, its log, progress, the cancel flag.
pub(crate) struct Job<'p> {
    /// The staging directory of the entry (becomes `<cache>/stages/<name>/<key>/`).
    pub staged: PathBuf,
    /// The build log when the framework made one ([`Stage::log_dir`]).
    pub log: Option<PathBuf>,
    /// The progress sink.
    pub progress: Progress<'p>,
    /// The cancel flag (for steps that stop themselves; the framework also stops children).
    pub cancel: watch::Receiver<bool>,
}

/// What a build leaves in the staging directory to be sealed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Product {
    /// Artifact name → path relative to the entry.
    pub artifacts: BTreeMap<String, String>,
    /// Facts recorded in `entry.json`.
    pub facts: BTreeMap<String, String>,
}

impl Product {
    /// A product from artifact names that are also their relative paths, and facts.
    pub(crate) fn new<'a>(
        artifacts: impl IntoIterator<Item = &'a str>,
        facts: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Product {
        Product {
            artifacts: artifacts
                .into_iter()
                .map(|a| (a.to_string(), a.to_string()))
                .collect(),
            facts: facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }
}

/// The entry [`ensure`] found or built.
#[derive(Clone, Debug)]
pub(crate) struct Ensured {
    /// The complete cache entry.
    pub entry: Entry,
    /// True when this call built it.
    pub built_now: bool,
    /// The log this call wrote (built now with a [`Stage::log_dir`]).
    pub log: Option<PathBuf>,
}

/// What the skeleton itself can fail with; each stage's error converts from it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StageError {
    /// `--no-build` and the cache has no entry for the current inputs.
    #[error("no cached {stage} for the current inputs (key {key})")]
    NotCached {
        /// The stage.
        stage: &'static str,
        /// The key of the current inputs.
        key: String,
    },
    /// The stage lock could not be taken.
    #[error("stage lock")]
    Lock(#[from] LockError),
    /// Cache or log i/o of the skeleton.
    #[error("{what} {}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Cancelled (Ctrl-C, SIGTERM) while waiting or building; nothing was stored.
    #[error("build interrupted")]
    Interrupted,
}

impl From<StageError> for BuildError {
    fn from(e: StageError) -> BuildError {
        match e {
            StageError::Interrupted => BuildError::Interrupted,
            StageError::Io { what, path, source } => BuildError::Io {
                what: what.into(),
                path,
                source,
            },
            StageError::Lock(LockError::Io { what, path, source }) => BuildError::Io {
                what: format!("cannot {what} lock file"),
                path,
                source,
            },
            StageError::Lock(LockError::Held { path, .. }) => BuildError::Io {
                what: "lock held:".into(),
                path,
                source: std::io::ErrorKind::WouldBlock.into(),
            },
            StageError::NotCached { stage, key } => BuildError::NotCached {
                profile: stage.into(),
                key,
            },
        }
    }
}

/// The entry of `stage` for its key: the cached one, or built by `build` under the stage
/// lock (see the module doc). A cancelled build stores nothing and returns
/// [`StageError::Interrupted`].
pub(crate) async fn ensure<'p, E, F, Fut>(
    cache: &Cache,
    stage: Stage<'_>,
    policy: Policy,
    cancel: &Cancel,
    progress: Progress<'p>,
    build: F,
) -> Result<Ensured, E>
where
    E: From<StageError>,
    F: FnOnce(Job<'p>) -> Fut,
    Fut: Future<Output = Result<Product, E>>,
{
    let hit = |progress: Progress<'_>| {
        let entry = cache.lookup(stage.name, &stage.key.key)?;
        progress(&BuildEvent::CacheHit {
            dir: entry.dir.clone(),
        });
        Some(Ensured {
            entry,
            built_now: false,
            log: None,
        })
    };
    if !policy.force {
        if let Some(found) = hit(progress) {
            return Ok(found);
        }
    }
    if policy.no_build {
        return Err(StageError::NotCached {
            stage: stage.name,
            key: stage.key.key.clone(),
        }
        .into());
    }
    let mut rx = cancel.rx.clone();
    let _lock = tokio::select! {
        l = work_lock(cache, stage.lock, progress) => l?,
        () = cancelled(&mut rx) => return Err(StageError::Interrupted.into()),
    };
    // Another process may have built the same inputs while we waited for the lock.
    if !policy.force {
        if let Some(found) = hit(progress) {
            return Ok(found);
        }
    }
    let log = match &stage.log_dir {
        Some(dir) => {
            let log = new_log(dir, stage.name)?;
            progress(&BuildEvent::Log { path: log.clone() });
            Some(log)
        }
        None => None,
    };
    let staged = cache
        .staging(stage.name, &stage.key.key)
        .map_err(stage_io("failed to create staging for", cache.root()))?;
    let job = Job {
        staged: staged.clone(),
        log: log.clone(),
        progress,
        cancel: cancel.rx.clone(),
    };
    let run = build(job);
    tokio::pin!(run);
    let built = tokio::select! {
        r = &mut run => r,
        () = cancelled(&mut rx) => {
            // As `build kernel|glibc` do: SIGTERM, so make deletes its half-written target
            // (the kept tree must not hold a truncated object newer than its source), then
            // let the build unwind its own steps (mounts, work tree) for a while.
            (cancel.stop_children)();
            let _ = tokio::time::timeout(CANCEL_GRACE, &mut run).await;
            Err(StageError::Interrupted.into())
        }
    };
    // A build that finished just as the signal came is not stored either: the user asked
    // us to stop, and a store would be work done after that.
    let product = match built {
        Ok(_) if cancel.is_cancelled() => Err(StageError::Interrupted.into()),
        other => other,
    };
    let product = match product {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
    };
    let info = EntryInfo {
        stage: stage.name.into(),
        key: stage.key.key.clone(),
        created: 0,
        inputs: stage.key.inputs.clone(),
        artifacts: product.artifacts,
        facts: product.facts,
    };
    let entry = cache
        .commit(&staged, info)
        .map_err(stage_io("failed to commit cache entry", &staged))?;
    Ok(Ensured {
        entry,
        built_now: true,
        log,
    })
}

/// Takes `<cache>/work/<name>`, telling the sink once whom it waits for.
pub(crate) async fn work_lock(
    cache: &Cache,
    name: &str,
    progress: Progress<'_>,
) -> Result<FileLock, StageError> {
    let path = cache.root().join("work").join(name);
    let lock = FileLock::acquire(&path, |pid| {
        progress(&BuildEvent::Step {
            name: "waiting for another build of this stage".into(),
            detail: format!(
                "{}, lock {}",
                pid.map_or_else(|| "holder unknown".into(), |p| format!("pid {p}")),
                path.display()
            ),
        });
    })
    .await?;
    Ok(lock)
}

/// Resolves when the flag turns true; never when its sender is gone (nobody can cancel).
pub(crate) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    loop {
        if *cancel.borrow_and_update() {
            return;
        }
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn stage_io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StageError {
    let path = path.to_path_buf();
    move |source| StageError::Io { what, path, source }
}

/// `<dir>/<stage>-build-<UTC>.log`, unique, created empty.
pub(crate) fn new_log(dir: &Path, stage: &str) -> Result<PathBuf, StageError> {
    std::fs::create_dir_all(dir).map_err(stage_io("failed to create", dir))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = make::compact_utc(i64::try_from(now).unwrap_or(0));
    let mut path = dir.join(format!("{stage}-build-{stamp}.log"));
    if path.exists() {
        path = dir.join(format!("{stage}-build-{stamp}-{}.log", std::process::id()));
    }
    std::fs::write(&path, "").map_err(stage_io("failed to create", &path))?;
    Ok(path)
}

/// The repository root as an absolute path (`xsc.toml` may have been given as relative;
/// quilt and make run with a work tree as cwd).
pub(crate) fn repo_root(cfg: &Config) -> PathBuf {
    std::path::absolute(&cfg.root).unwrap_or_else(|_| cfg.root.clone())
}

/// The build epoch of what is made from `inputs` (paths of the repository): the one rule
/// of `sys::epoch`, with xsc.toml's `[build] epoch` for a checkout without git history.
pub(crate) async fn epoch_of(cfg: &Config, inputs: &[PathBuf]) -> Epoch {
    epoch::of_inputs(&repo_root(cfg), inputs, cfg.build_epoch).await
}

/// The cache, by absolute path (quilt and make run with the work tree as cwd).
pub(crate) fn stage_cache(cfg: &Config) -> Cache {
    Cache::new(std::path::absolute(&cfg.cache_dir).unwrap_or_else(|_| cfg.cache_dir.clone()))
}

/// `logs/` of the repository: where the kernel and glibc build logs go.
pub(crate) fn logs_dir(cfg: &Config) -> PathBuf {
    repo_root(cfg).join("logs")
}

/// Reads an input file of a stage (a missing one is bad input, exit 2).
pub(crate) fn read_input(what: &'static str, path: &Path) -> Result<String, BuildError> {
    std::fs::read_to_string(path).map_err(|source| BuildError::Input {
        what,
        path: path.to_path_buf(),
        source,
    })
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

/// Adds a quilt series and every patch it lists to `key`; files in the directory that the
/// series does not list are not inputs.
pub(crate) fn key_series(key: &mut KeyBuilder, patches: &Path) -> Result<(), BuildError> {
    let text = read_input("patch series", &patches.join("series"))?;
    key.str("series", &sha256_bytes(text.as_bytes()));
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

/// Copies `series` and the patches it lists into `dest`, so a kept tree's quilt state
/// refers to a snapshot that matches the key rather than files someone may be editing.
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

/// Remembered about a kept work tree.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct WorkState {
    /// Source identity the tree was unpacked from.
    pub(crate) source: String,
    /// Fingerprint of what configured the tree; empty when unknown.
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
        // A build killed mid-write must not leave a state that half-describes the tree.
        json.and_then(|j| crate::sys::atomic_file::write(path, &j))
            .map_err(BuildError::io("failed to write", path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(k: &str) -> StageKey {
        StageKey {
            key: k.into(),
            inputs: vec![("in".into(), "1".into())],
        }
    }

    fn stage<'a>(k: &'a StageKey) -> Stage<'a> {
        Stage {
            name: "test",
            key: k,
            lock: "test.lock",
            log_dir: None,
        }
    }

    /// A build that writes `out` and counts its runs.
    async fn write_out(job: Job<'_>, runs: &AtomicUsize) -> Result<Product, BuildError> {
        runs.fetch_add(1, Ordering::SeqCst);
        std::fs::write(job.staged.join("out"), "built").unwrap();
        Ok(Product::new(["out"], [("fact", "x".to_string())]))
    }

    #[tokio::test]
    async fn builds_once_then_hits_and_no_build_refuses_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let k = key("k1");
        let runs = AtomicUsize::new(0);
        let mut events = Vec::new();
        let mut sink = |e: &BuildEvent| events.push(e.clone());
        let no_build = Policy {
            no_build: true,
            ..Policy::default()
        };
        let miss = ensure(
            &cache,
            stage(&k),
            no_build,
            &Cancel::never(),
            &mut sink,
            |j| write_out(j, &runs),
        )
        .await;
        assert!(
            matches!(miss, Err(BuildError::NotCached { ref key, .. }) if key == "k1"),
            "{miss:?}"
        );
        let first = ensure(
            &cache,
            stage(&k),
            Policy::default(),
            &Cancel::never(),
            &mut sink,
            |j| write_out(j, &runs),
        )
        .await
        .unwrap();
        assert!(first.built_now);
        assert_eq!(first.entry.info.facts["fact"], "x");
        assert_eq!(first.entry.info.inputs, k.inputs);
        let again = ensure::<BuildError, _, _>(
            &cache,
            stage(&k),
            no_build,
            &Cancel::never(),
            &mut sink,
            |j| write_out(j, &runs),
        )
        .await
        .unwrap();
        assert!(!again.built_now);
        assert_eq!(again.entry.dir, first.entry.dir);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // --force builds again; the existing entry is kept.
        let forced = ensure(
            &cache,
            stage(&k),
            Policy {
                force: true,
                ..Policy::default()
            },
            &Cancel::never(),
            &mut sink,
            |j| write_out(j, &runs),
        )
        .await
        .unwrap();
        assert!(forced.built_now);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(
            matches!(events[0], BuildEvent::CacheHit { .. }),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn two_requests_missing_at_once_build_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let k = key("k2");
        let runs = Arc::new(AtomicUsize::new(0));
        let one = |cache: Cache, k: StageKey, runs: Arc<AtomicUsize>| async move {
            let mut sink = |_: &BuildEvent| {};
            ensure::<BuildError, _, _>(
                &cache,
                stage(&k),
                Policy::default(),
                &Cancel::never(),
                &mut sink,
                |j| async move {
                    // Long enough for the other request to miss the cache and wait for the lock.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    write_out(j, &runs).await
                },
            )
            .await
            .unwrap()
            .built_now
        };
        let (a, b) = tokio::join!(
            one(cache.clone(), k.clone(), runs.clone()),
            one(cache.clone(), k.clone(), runs.clone())
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one build, one hit after the lock"
        );
        assert!(a ^ b);
    }

    #[tokio::test]
    async fn a_cancelled_build_stops_its_children_and_stores_nothing() {
        static STOPPED: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let k = key("k3");
        let (tx, rx) = watch::channel(false);
        // Not the real SIGTERM to every group: other tests of this binary have children.
        let cancel = Cancel::with_stop(rx, || {
            STOPPED.fetch_add(1, Ordering::SeqCst);
        });
        let mut sink = |_: &BuildEvent| {};
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(true).unwrap();
            tx
        });
        let r = ensure::<BuildError, _, _>(
            &cache,
            stage(&k),
            Policy::default(),
            &cancel,
            &mut sink,
            |j| async move {
                std::fs::write(j.staged.join("out"), "half").unwrap();
                // Stands for make: it stops only when its children are told to, and then
                // even "succeeds" (it finished just as the signal came).
                while STOPPED.load(Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(Product::new(["out"], []))
            },
        )
        .await;
        let _tx = stopper.await.unwrap();
        assert!(matches!(r, Err(BuildError::Interrupted)), "{r:?}");
        assert_eq!(STOPPED.load(Ordering::SeqCst), 1);
        assert!(cache.lookup("test", "k3").is_none());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("stages/test"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "staging removed: {leftovers:?}");
        // The lock was released: the next request builds.
        let runs = AtomicUsize::new(0);
        let ok = ensure(
            &cache,
            stage(&k),
            Policy::default(),
            &Cancel::never(),
            &mut sink,
            |j| write_out(j, &runs),
        )
        .await
        .unwrap();
        assert!(ok.built_now);
    }

    #[tokio::test]
    async fn a_framework_log_is_created_and_announced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"));
        let k = key("k4");
        let mut events = Vec::new();
        let mut sink = |e: &BuildEvent| events.push(e.clone());
        let runs = AtomicUsize::new(0);
        let s = Stage {
            log_dir: Some(dir.path().join("logs")),
            ..stage(&k)
        };
        let got = ensure(
            &cache,
            s,
            Policy::default(),
            &Cancel::never(),
            &mut sink,
            |j| {
                assert!(j.log.as_ref().is_some_and(|l| l.is_file()));
                write_out(j, &runs)
            },
        )
        .await
        .unwrap();
        let log = got.log.unwrap();
        assert!(log.starts_with(dir.path().join("logs")));
        assert!(
            log.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("test-build-")
        );
        assert_eq!(events, [BuildEvent::Log { path: log }]);
    }
}
