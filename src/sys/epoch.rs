//! The one build epoch (`SOURCE_DATE_EPOCH`) of everything the harness stamps a time into
//! (the kernel, the Debian ISO, the test initramfs, the release manifest), derived from the
//! stamped thing's own inputs so that a commit which touches none of them (docs, the
//! harness's tests) changes neither the timestamps inside an artifact nor, where the epoch
//! is a key input (the Debian ISO), its cache key.
//!
//! The rule ([`decide`], docs/cache.md): `SOURCE_DATE_EPOCH` from the environment when
//! set; else the time of the newest commit touching the inputs (`git log -1 -- <paths>`),
//! unless that commit is the cut-off of a shallow clone (it then only looks like it
//! touched everything); else the value pinned in xsc.toml (`[build] epoch`: source
//! tarballs, shallow clones); else [`DEFAULT_EPOCH`]. The config reader is not this
//! module's: callers pass the pinned value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::process::{self, Cmd};

/// The last resort when neither the environment, git history nor xsc.toml decides: a
/// fixed value so a checkout without any of them still builds reproducibly.
/// 2025-01-01T00:00:00Z.
pub(crate) const DEFAULT_EPOCH: i64 = 1_735_689_600;

/// Where an epoch came from (recorded as a fact next to the artifacts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EpochSource {
    /// `SOURCE_DATE_EPOCH` was set.
    Env,
    /// The newest commit touching the inputs.
    Git,
    /// `[build] epoch` of xsc.toml (no usable git history).
    Config,
    /// [`DEFAULT_EPOCH`].
    Default,
}

impl EpochSource {
    /// The words recorded in `entry.json` and shown by `status`.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            EpochSource::Env => "SOURCE_DATE_EPOCH",
            EpochSource::Git => "git: newest commit touching the inputs",
            EpochSource::Config => "xsc.toml [build] epoch (no git history of the inputs)",
            EpochSource::Default => {
                "default epoch (no SOURCE_DATE_EPOCH, no git history, no [build] epoch)"
            }
        }
    }

    /// One word for machine-readable output (`status --json`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            EpochSource::Env => "env",
            EpochSource::Git => "git",
            EpochSource::Config => "config",
            EpochSource::Default => "default",
        }
    }
}

/// A build time, in seconds since 1970, and its origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Epoch {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Where it came from.
    pub source: EpochSource,
}

/// The rule, on what each source said: the environment's text, the newest usable commit
/// time of the inputs, the value pinned in xsc.toml. A garbage environment value is
/// ignored rather than fatal (it would be everyone's build time otherwise).
pub(crate) fn decide(env: Option<&str>, git: Option<i64>, pinned: Option<i64>) -> Epoch {
    let at = |secs, source| Epoch { secs, source };
    if let Some(secs) = env.and_then(|s| s.trim().parse().ok()) {
        return at(secs, EpochSource::Env);
    }
    if let Some(secs) = git {
        return at(secs, EpochSource::Git);
    }
    if let Some(secs) = pinned {
        return at(secs, EpochSource::Config);
    }
    at(DEFAULT_EPOCH, EpochSource::Default)
}

/// The epoch of the inputs `paths` of the repository `repo`, `pinned` being xsc.toml's
/// `[build] epoch` (see the module doc).
pub(crate) async fn of_inputs(repo: &Path, paths: &[PathBuf], pinned: Option<i64>) -> Epoch {
    let env = std::env::var("SOURCE_DATE_EPOCH").ok();
    let git = match env {
        // The environment decides: no need to ask git.
        Some(ref e) if e.trim().parse::<i64>().is_ok() => None,
        _ => newest_commit(repo, paths).await,
    };
    decide(env.as_deref(), git, pinned)
}

/// The commit time of the newest commit touching `paths`, if there is git history that
/// knows: `None` outside a git checkout, without git, when no commit touched them, or when
/// the commit found is a shallow clone's cut-off (its missing parent makes it look like it
/// added every file, so its time is HEAD's depth-th ancestor's, not the inputs').
pub(crate) async fn newest_commit(repo: &Path, paths: &[PathBuf]) -> Option<i64> {
    let out = process::run(&commit_time_cmd(repo, paths)?, None)
        .await
        .ok()?;
    let (secs, hash) = out.stdout.trim().split_once(' ')?;
    let secs = secs.parse().ok()?;
    let git_dir = process::run(&git_dir_cmd(repo), None).await.ok()?;
    let shallow = std::fs::read_to_string(Path::new(git_dir.stdout.trim()).join("shallow"))
        .unwrap_or_default();
    if shallow.lines().any(|l| l.trim() == hash) {
        return None;
    }
    Some(secs)
}

fn git(repo: &Path) -> Vec<std::ffi::OsString> {
    let mut argv: Vec<std::ffi::OsString> = ["git", "-C"].iter().map(Into::into).collect();
    argv.push(repo.into());
    argv.push("-c".into());
    let mut safe = std::ffi::OsString::from("safe.directory=");
    safe.push(repo);
    argv.push(safe);
    argv
}

/// The pathspecs of `paths` in `repo`: those inside it relative to it, those outside it
/// left out (no commit there can be ours).
fn pathspecs(repo: &Path, paths: &[PathBuf]) -> Vec<std::ffi::OsString> {
    paths
        .iter()
        .filter_map(|p| {
            let rel = if p.is_absolute() {
                p.strip_prefix(repo).ok()?
            } else {
                p.as_path()
            };
            // An empty pathspec would mean the whole repository, i.e. every commit.
            Some(if rel.as_os_str().is_empty() {
                ".".into()
            } else {
                rel.into()
            })
        })
        .collect()
}

/// `git -C <repo> -c safe.directory=<repo> log -1 --format='%ct %H' -- <pathspecs>`, or
/// `None` when no input is inside `repo` (`git log` without a pathspec would answer with
/// HEAD, whatever it touched). `safe.directory`: `build debian` runs as root in a user's
/// clone, and git would refuse it, giving root another epoch (and another ISO key) than
/// the user's `test` run; reading commit times runs no hooks or filters.
pub(crate) fn commit_time_cmd(repo: &Path, paths: &[PathBuf]) -> Option<Cmd> {
    let specs = pathspecs(repo, paths);
    if specs.is_empty() {
        return None;
    }
    let mut argv = git(repo);
    argv.extend(
        ["log", "-1", "--format=%ct %H", "--"]
            .iter()
            .map(Into::into),
    );
    argv.extend(specs);
    Some(
        Cmd::new(argv)
            .env("LC_ALL", "C")
            .deadline(Duration::from_secs(60)),
    )
}

/// `git -C <repo> rev-parse --absolute-git-dir`: where a shallow clone lists its cut-offs.
pub(crate) fn git_dir_cmd(repo: &Path) -> Cmd {
    let mut argv = git(repo);
    argv.extend(["rev-parse", "--absolute-git-dir"].iter().map(Into::into));
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
        )
        .unwrap();
        assert_eq!(
            cmd.to_string(),
            "LC_ALL=C git -C /r -c safe.directory=/r log -1 '--format=%ct %H' -- patches/kernel recipes/debian"
        );
        // Only inputs outside the repository: no command (not every commit's time).
        assert_eq!(
            commit_time_cmd(Path::new("/r"), &[PathBuf::from("/elsewhere/x")]),
            None
        );
        assert_eq!(
            git_dir_cmd(Path::new("/r")).to_string(),
            "LC_ALL=C git -C /r -c safe.directory=/r rev-parse --absolute-git-dir"
        );
    }

    #[test]
    fn the_environment_wins_then_git_then_the_config_then_the_default() {
        let e = |secs, source| Epoch { secs, source };
        assert_eq!(
            decide(Some("1700000000"), Some(1), Some(2)),
            e(1_700_000_000, EpochSource::Env)
        );
        assert_eq!(decide(None, Some(1), Some(2)), e(1, EpochSource::Git));
        assert_eq!(decide(None, None, Some(2)), e(2, EpochSource::Config));
        assert_eq!(
            decide(None, None, None),
            e(DEFAULT_EPOCH, EpochSource::Default)
        );
        // A garbage environment value is ignored, not fatal.
        assert_eq!(
            decide(Some("soon"), None, Some(2)),
            e(2, EpochSource::Config)
        );
        assert_eq!(decide(Some(" 7 "), None, None), e(7, EpochSource::Env));
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
                "-c",
                "protocol.file.allow=always",
            ])
            .args(args)
            .env("GIT_COMMITTER_DATE", date)
            .env("GIT_AUTHOR_DATE", date)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    #[tokio::test]
    async fn the_newest_commit_touching_the_inputs_and_not_a_shallow_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let repo = &dir.path().join("repo");
        std::fs::create_dir_all(repo).unwrap();
        let inputs = [repo.join("patches"), PathBuf::from("recipes")];

        // No git repository: git knows nothing.
        assert_eq!(newest_commit(repo, &inputs).await, None);

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
        assert_eq!(newest_commit(repo, &inputs).await, Some(1_100_000_000));
        // Inputs no commit ever touched: git does not decide (not HEAD's time).
        assert_eq!(
            newest_commit(repo, &[repo.join("never-committed")]).await,
            None
        );

        // A clone cut off at HEAD: its one commit seems to add every file, inputs included;
        // its time is not the inputs', so git does not decide there.
        let shallow = dir.path().join("shallow");
        let url = format!("file://{}", repo.display());
        git(
            dir.path(),
            &["clone", "-q", "--depth", "1", &url, "shallow"],
            "@1200000000 +0000",
        );
        let moved = [shallow.join("patches"), PathBuf::from("recipes")];
        assert_eq!(newest_commit(&shallow, &moved).await, None);
        // A commit after the cut-off that touches an input is real history.
        std::fs::create_dir_all(shallow.join("recipes")).unwrap();
        std::fs::write(shallow.join("recipes/x"), "x\n").unwrap();
        git(&shallow, &["add", "."], "@1300000000 +0000");
        git(
            &shallow,
            &["commit", "-q", "-m", "recipe"],
            "@1300000000 +0000",
        );
        assert_eq!(newest_commit(&shallow, &moved).await, Some(1_300_000_000));
        // And in the full repository, a commit touching an input moves it.
        std::fs::create_dir_all(repo.join("recipes")).unwrap();
        std::fs::write(repo.join("recipes/x"), "x\n").unwrap();
        git(repo, &["add", "."], "@1400000000 +0000");
        git(repo, &["commit", "-q", "-m", "recipe"], "@1400000000 +0000");
        assert_eq!(newest_commit(repo, &inputs).await, Some(1_400_000_000));
    }
}
