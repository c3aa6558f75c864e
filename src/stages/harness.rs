//! A commit's own harness (`bisect --each-harness`): the `xsc-release` binary built from
//! that commit, cached by commit (and toolchain) like any other stage.
//!
//! The commit's files are checked out into one build tree per machine,
//! `<cache>/work/harness/src`, with `git read-tree --reset -u` and a private index
//! (`<cache>/work/harness/index`), so the clone's HEAD, index and files are never touched and
//! only the files that differ from the last build are rewritten: cargo then recompiles only
//! what changed (a docs-only commit relinks nothing). The path is the same for every commit
//! and every clone because cargo's artifacts of a path crate are keyed by its path: one tree
//! keeps one set of them, and the dependencies in `<cache>/work/harness/target` are compiled
//! once per machine. The stage lock guards both; a build stopped by Ctrl-C stores nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::BuildError;
use super::progress::BuildEvent;
use super::stage::{self, Cancel, Job, Policy, Product, Stage, StageKey};
use crate::sys::cache::{Cache, KeyBuilder};
use crate::sys::process::{self, Cmd};

/// The cache stage name.
pub(crate) const STAGE: &str = "harness";

/// The binary every harness commit builds.
pub(crate) const BIN: &str = "xsc-release";

/// The stage lock (under `<cache>/work/`): one harness build at a time per machine.
const LOCK: &str = "harness.lock";

/// The host tools of this stage, with their Debian packages.
pub(crate) const TOOLS: &[(&str, &str)] = &[("git", "git"), ("cargo", "cargo"), ("rustc", "rustc")];

/// `rustc -V`: the toolchain identity in the key (a new compiler is a new binary).
pub(crate) fn rustc_version_cmd() -> Cmd {
    Cmd::new(["rustc", "-V"]).deadline(Duration::from_secs(60))
}

/// `git read-tree --reset -u COMMIT` of the clone at `repo` into `tree`, with the private
/// index `index`: the tree becomes the commit's files, rewriting only those that differ.
pub(crate) fn checkout_cmd(repo: &Path, tree: &Path, index: &Path, commit: &str) -> Cmd {
    Cmd::new([
        "git".as_ref(),
        "--work-tree".as_ref(),
        tree.as_os_str(),
        "read-tree".as_ref(),
        "--reset".as_ref(),
        "-u".as_ref(),
        commit.as_ref(),
    ])
    .cwd(repo)
    .env("GIT_INDEX_FILE", index)
    .deadline(Duration::from_secs(300))
}

/// `cargo build --locked --bin xsc-release` in `tree` into the shared `target`. The
/// commit's own Cargo.lock decides the dependencies (`--locked`: never rewritten); no debug
/// info, so the cached binaries stay small and the link is quick.
pub(crate) fn cargo_build_cmd(tree: &Path, target: &Path) -> Cmd {
    Cmd::new(["cargo", "build", "--locked", "--bin", BIN])
        .cwd(tree)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_TERM_COLOR", "never")
        .deadline(Duration::from_secs(3600))
}

/// The key: the commit and the compiler.
pub(crate) fn key(commit: &str, rustc: &str) -> StageKey {
    let mut k = KeyBuilder::new();
    k.str("recipe", "harness-v1")
        .str("commit", commit)
        .str("rustc", rustc);
    StageKey::from(&k)
}

/// The harness of `commit` (of the clone at `repo`): the cached binary, or built now.
/// Returns the binary and whether this call built it. `log_dir` gets the build log.
pub(crate) async fn ensure(
    cache: &Cache,
    repo: &Path,
    commit: &str,
    cancel: &Cancel,
    log_dir: &Path,
) -> Result<(PathBuf, bool), BuildError> {
    super::tools::check_tools(TOOLS)?;
    let rustc = process::run(&rustc_version_cmd(), None)
        .await
        .map_err(BuildError::step("rustc -V"))?;
    let key = key(commit, rustc.stdout.trim());
    let stage = Stage {
        name: STAGE,
        key: &key,
        lock: LOCK,
        log_dir: Some(log_dir.to_path_buf()),
    };
    let mut quiet = |_: &BuildEvent| {};
    let got = stage::ensure(cache, stage, Policy::default(), cancel, &mut quiet, |job| {
        build(cache, repo, commit, job)
    })
    .await?;
    let bin = got
        .entry
        .artifact(BIN)
        .ok_or_else(|| BuildError::MissingArtifact {
            path: got.entry.dir.join(BIN),
            log: got.log.clone(),
        })?;
    Ok((bin, got.built_now))
}

/// Checks the commit out into the build tree, builds, and copies the binary into the entry.
async fn build(
    cache: &Cache,
    repo: &Path,
    commit: &str,
    job: Job<'_>,
) -> Result<Product, BuildError> {
    let tree = cache.work_dir(STAGE, "src");
    let index = cache.work_dir(STAGE, "index");
    let target = cache.work_dir(STAGE, "target");
    std::fs::create_dir_all(&tree).map_err(BuildError::io("cannot create", &tree))?;
    let log = job.log.as_deref();
    let checkout = checkout_cmd(repo, &tree, &index, commit);
    process::run(&checkout, log)
        .await
        .map_err(BuildError::step(format!("checkout of {commit}")))?;
    process::run(&cargo_build_cmd(&tree, &target), log)
        .await
        .map_err(BuildError::step(format!(
            "cargo build of the harness of {commit}"
        )))?;
    let built = target.join("debug").join(BIN);
    let dest = job.staged.join(BIN);
    std::fs::copy(&built, &dest).map_err(BuildError::io("cannot copy the harness", &built))?;
    Ok(Product::new([BIN], [("commit", commit.to_string())]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        assert_eq!(
            checkout_cmd(
                Path::new("/r"),
                Path::new("/c/work/harness/src"),
                Path::new("/c/work/harness/index"),
                "abc"
            )
            .to_string(),
            "(cd /r && GIT_INDEX_FILE=/c/work/harness/index git --work-tree /c/work/harness/src read-tree --reset -u abc)"
        );
        assert_eq!(
            cargo_build_cmd(Path::new("/t"), Path::new("/c/target")).to_string(),
            "(cd /t && CARGO_TARGET_DIR=/c/target CARGO_PROFILE_DEV_DEBUG=0 CARGO_TERM_COLOR=never cargo build --locked --bin xsc-release)"
        );
    }

    /// Real git and cargo on a tiny crate named like the harness: built once per commit,
    /// a hit afterwards, each commit's own code, the clone untouched.
    #[tokio::test]
    async fn builds_each_commit_once_and_leaves_the_clone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("src")).unwrap();
        let git = |args: &[&str]| {
            Cmd::new(
                ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
                    .iter()
                    .chain(args),
            )
            .cwd(&repo)
        };
        let main = |word: &str| format!("fn main() {{ println!(\"{word}\"); }}\n");
        std::fs::write(
            repo.join("Cargo.toml"),
            "[package]\nname = \"xsc-release\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .unwrap();
        std::fs::write(repo.join("src/main.rs"), main("one")).unwrap();
        process::run(
            &Cmd::new(["cargo", "generate-lockfile", "--offline"]).cwd(&repo),
            None,
        )
        .await
        .unwrap();
        let mut commits = Vec::new();
        for (i, word) in ["one", "two"].iter().enumerate() {
            if i > 0 {
                std::fs::write(repo.join("src/main.rs"), main(word)).unwrap();
            }
            for args in [
                &["init", "-q"][..],
                &["add", "-A"],
                &["commit", "-qm", word],
            ] {
                if i > 0 && args[0] == "init" {
                    continue;
                }
                process::run(&git(args), None).await.unwrap();
            }
            let head = process::run(&git(&["rev-parse", "HEAD"]), None)
                .await
                .unwrap();
            commits.push(head.stdout.trim().to_string());
        }
        let cache = Cache::new(dir.path().join("cache"));
        let logs = dir.path().join("logs");
        let says = |bin: PathBuf| async move {
            process::run(&Cmd::new([bin]), None).await.unwrap().stdout
        };
        let (one, built) = ensure(&cache, &repo, &commits[0], &Cancel::never(), &logs)
            .await
            .unwrap();
        assert!(built);
        assert_eq!(says(one.clone()).await, "one\n");
        let (two, built) = ensure(&cache, &repo, &commits[1], &Cancel::never(), &logs)
            .await
            .unwrap();
        assert!(built);
        assert_eq!(says(two).await, "two\n");
        let (again, built) = ensure(&cache, &repo, &commits[0], &Cancel::never(), &logs)
            .await
            .unwrap();
        assert!(!built, "the first commit's harness is cached");
        assert_eq!(again, one);
        assert_eq!(says(again).await, "one\n");
        // The clone: still at the second commit, nothing modified or added.
        let status = process::run(&git(&["status", "--porcelain"]), None)
            .await
            .unwrap();
        assert_eq!(status.stdout, "");
        assert_eq!(
            std::fs::read_to_string(repo.join("src/main.rs")).unwrap(),
            main("two")
        );
    }

    #[test]
    fn the_key_follows_commit_and_compiler() {
        let a = key("c1", "rustc 1.85.0");
        assert_eq!(a, key("c1", "rustc 1.85.0"));
        assert_ne!(a.key, key("c2", "rustc 1.85.0").key);
        assert_ne!(a.key, key("c1", "rustc 1.86.0").key);
    }
}
