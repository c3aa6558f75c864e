//! The one build epoch (`SOURCE_DATE_EPOCH`) of a stage, derived from the stage's own
//! inputs so that a commit which touches none of them (docs, the harness's tests) changes
//! neither the timestamps inside an artifact nor, where the epoch is a key input (the
//! Debian ISO), its cache key.
//!
//! The rule (docs/cache.md): `SOURCE_DATE_EPOCH` from the environment when set; else the
//! time of the newest commit touching the inputs (`git log -1 --format=%ct -- <paths>`);
//! else [`DEFAULT_EPOCH`] (no git, no history, or inputs never committed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::process::{self, Cmd};

/// The fallback when neither the environment nor git history decides: a fixed value so a
/// tarball checkout still builds reproducibly. 2025-01-01T00:00:00Z. A `[build] epoch` key
/// in xsc.toml should pin it per project (the config reader is not this module's).
pub(crate) const DEFAULT_EPOCH: i64 = 1_735_689_600;

/// Where an epoch came from (recorded as a fact next to the artifacts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EpochSource {
    /// `SOURCE_DATE_EPOCH` was set.
    Env,
    /// The newest commit touching the stage's inputs.
    Git,
    /// [`DEFAULT_EPOCH`].
    Default,
}

impl EpochSource {
    /// The words recorded in `entry.json`.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            EpochSource::Env => "SOURCE_DATE_EPOCH",
            EpochSource::Git => "git: newest commit touching the inputs",
            EpochSource::Default => "default epoch (no SOURCE_DATE_EPOCH, no git history)",
        }
    }
}

/// A stage's build time, in seconds since 1970, and its origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Epoch {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Where it came from.
    pub source: EpochSource,
}

/// The epoch of the inputs `paths` of the repository `repo` (see the module doc).
pub(crate) async fn of_inputs(repo: &Path, paths: &[PathBuf]) -> Epoch {
    with_env(
        std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        repo,
        paths,
    )
    .await
}

/// [`of_inputs`] with the environment's value given (tests set it without touching the
/// process environment, which other tests share).
pub(crate) async fn with_env(env: Option<&str>, repo: &Path, paths: &[PathBuf]) -> Epoch {
    if let Some(secs) = env.and_then(|s| s.trim().parse().ok()) {
        return Epoch {
            secs,
            source: EpochSource::Env,
        };
    }
    // Not a git checkout, git missing, or the inputs never committed: the fixed default.
    let git = process::run(&commit_time_cmd(repo, paths), None).await.ok();
    match git.and_then(|out| out.stdout.trim().parse().ok()) {
        Some(secs) => Epoch {
            secs,
            source: EpochSource::Git,
        },
        None => Epoch {
            secs: DEFAULT_EPOCH,
            source: EpochSource::Default,
        },
    }
}

/// `git -C <repo> -c safe.directory=<repo> log -1 --format=%ct -- <paths>`; paths inside
/// `repo` are given relative to it (git's pathspecs), paths outside it are left out (no
/// commit there can be ours). `safe.directory`: `build debian` runs as root in a user's
/// clone, and git would refuse it, giving root another epoch (and another ISO key) than
/// the user's `test` run; reading commit times runs no hooks or filters.
pub(crate) fn commit_time_cmd(repo: &Path, paths: &[PathBuf]) -> Cmd {
    let mut argv: Vec<std::ffi::OsString> = ["git", "-C"].iter().map(Into::into).collect();
    argv.push(repo.into());
    argv.push("-c".into());
    let mut safe = std::ffi::OsString::from("safe.directory=");
    safe.push(repo);
    argv.push(safe);
    argv.extend(["log", "-1", "--format=%ct", "--"].iter().map(Into::into));
    for p in paths {
        let rel = if p.is_absolute() {
            match p.strip_prefix(repo) {
                Ok(rel) => rel,
                Err(_) => continue,
            }
        } else {
            p.as_path()
        };
        // An empty pathspec would mean the whole repository, i.e. every commit.
        argv.push(if rel.as_os_str().is_empty() {
            ".".into()
        } else {
            rel.into()
        });
    }
    Cmd::new(argv)
        .env("LC_ALL", "C")
        .deadline(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_git_command_names_the_inputs_relative_to_the_repo() {
        let cmd = commit_time_cmd(
            Path::new("/r"),
            &[
                PathBuf::from("/r/patches/kernel"),
                PathBuf::from("recipes/debian"),
                PathBuf::from("/elsewhere/guest-tests"),
            ],
        );
        assert_eq!(
            cmd.to_string(),
            "LC_ALL=C git -C /r -c safe.directory=/r log -1 --format=%ct -- patches/kernel recipes/debian"
        );
    }

    /// Runs git in `dir` with a fixed commit date (the test, not the harness, spawns it).
    #[allow(
        clippy::disallowed_methods,
        reason = "the test builds its fixture repository"
    )]
    fn git(dir: &Path, args: &[&str], date: &str) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .env("GIT_COMMITTER_DATE", date)
            .env("GIT_AUTHOR_DATE", date)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    #[tokio::test]
    async fn the_environment_wins_then_the_inputs_history_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let inputs = [repo.join("patches"), PathBuf::from("recipes")];

        // No git repository: the default (also when git fails for any other reason).
        let none = with_env(None, repo, &inputs).await;
        assert_eq!(
            none,
            Epoch {
                secs: DEFAULT_EPOCH,
                source: EpochSource::Default
            }
        );
        // The environment decides, whatever git says.
        assert_eq!(
            with_env(Some("1700000000"), repo, &inputs).await,
            Epoch {
                secs: 1_700_000_000,
                source: EpochSource::Env
            }
        );

        git(repo, &["init", "-q"], "@1000000000 +0000");
        std::fs::create_dir_all(repo.join("patches")).unwrap();
        std::fs::write(repo.join("patches/series"), "a.patch\n").unwrap();
        git(repo, &["add", "."], "@1000000000 +0000");
        git(repo, &["commit", "-q", "-m", "inputs"], "@1100000000 +0000");
        std::fs::write(repo.join("README.md"), "docs\n").unwrap();
        git(repo, &["add", "."], "@1200000000 +0000");
        git(
            repo,
            &["commit", "-q", "-m", "docs only"],
            "@1200000000 +0000",
        );

        // A docs-only commit after the inputs' commit does not move the epoch.
        let inputs_epoch = with_env(None, repo, &inputs).await;
        assert_eq!(
            inputs_epoch,
            Epoch {
                secs: 1_100_000_000,
                source: EpochSource::Git
            }
        );
        // A commit touching an input does.
        std::fs::create_dir_all(repo.join("recipes")).unwrap();
        std::fs::write(repo.join("recipes/x"), "x\n").unwrap();
        git(repo, &["add", "."], "@1300000000 +0000");
        git(repo, &["commit", "-q", "-m", "recipe"], "@1300000000 +0000");
        assert_eq!(with_env(None, repo, &inputs).await.secs, 1_300_000_000);
        // Inputs no commit ever touched: the default, not HEAD's time.
        let untracked = with_env(None, repo, &[repo.join("never-committed")]).await;
        assert_eq!(untracked.source, EpochSource::Default);
        // A garbage environment value is ignored.
        assert_eq!(
            with_env(Some("soon"), repo, &inputs).await.secs,
            1_300_000_000
        );
    }
}
