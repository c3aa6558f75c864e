//! The git command lines of `bisect --commits`, as pure functions (run by `sys::process`):
//! the steps between two revisions, and a detached worktree per step outside the clone,
//! so the clone's checkout, index and files are never touched.

use std::path::Path;

use crate::sys::process::Cmd;

/// `git rev-parse --show-toplevel` in `dir`: the clone the config lives in.
pub(crate) fn toplevel(dir: &Path) -> Cmd {
    Cmd::new(["git", "rev-parse", "--show-toplevel"]).cwd(dir)
}

/// `git log -1 --format=%H %s REV^{commit}`: one commit's hash and subject (fails on a
/// revision that names no commit).
pub(crate) fn show(repo: &Path, rev: &str) -> Cmd {
    Cmd::new([
        "git".to_string(),
        "log".into(),
        "-1".into(),
        "--format=%H %s".into(),
        format!("{rev}^{{commit}}"),
        "--".into(),
    ])
    .cwd(repo)
}

/// The commits after `good` up to and including `bad`, oldest first, one `hash subject`
/// per line. `--first-parent`: a merged branch is one step (its merge commit), so the
/// list is linear and a step's predecessor is its parent.
pub(crate) fn steps(repo: &Path, good: &str, bad: &str) -> Cmd {
    Cmd::new([
        "git".to_string(),
        "log".into(),
        "--reverse".into(),
        "--first-parent".into(),
        "--format=%H %s".into(),
        format!("{good}..{bad}"),
        "--".into(),
    ])
    .cwd(repo)
}

/// `git merge-base --is-ancestor GOOD BAD`: exit 0 when good is an ancestor of bad.
pub(crate) fn is_ancestor(repo: &Path, good: &str, bad: &str) -> Cmd {
    Cmd::new(["git", "merge-base", "--is-ancestor", good, bad]).cwd(repo)
}

/// `git worktree add --detach DIR COMMIT`: the commit's tree, outside the clone.
pub(crate) fn worktree_add(repo: &Path, dir: &Path, commit: &str) -> Cmd {
    Cmd::new([
        "git".as_ref(),
        "worktree".as_ref(),
        "add".as_ref(),
        "--detach".as_ref(),
        dir.as_os_str(),
        commit.as_ref(),
    ])
    .cwd(repo)
}

/// `git worktree remove --force DIR`: the step's tree and its administrative entry.
pub(crate) fn worktree_remove(repo: &Path, dir: &Path) -> Cmd {
    Cmd::new([
        "git".as_ref(),
        "worktree".as_ref(),
        "remove".as_ref(),
        "--force".as_ref(),
        dir.as_os_str(),
    ])
    .cwd(repo)
}

/// `git worktree prune`: forgets worktrees whose directory is gone (a run killed hard).
pub(crate) fn worktree_prune(repo: &Path) -> Cmd {
    Cmd::new(["git", "worktree", "prune"]).cwd(repo)
}

/// Parses `hash subject` lines (the output of [`steps`] and [`show`]).
pub(crate) fn parse_commits(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((h, s)) => (h.to_string(), s.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(c: &Cmd) -> String {
        c.to_string()
    }

    #[test]
    fn command_lines() {
        let r = Path::new("/r");
        assert_eq!(
            line(&steps(r, "v1", "HEAD")),
            "(cd /r && git log --reverse --first-parent '--format=%H %s' v1..HEAD --)"
        );
        assert_eq!(
            line(&show(r, "v1")),
            "(cd /r && git log -1 '--format=%H %s' 'v1^{commit}' --)"
        );
        assert_eq!(
            line(&worktree_add(r, Path::new("/tmp/b/step-1"), "abc")),
            "(cd /r && git worktree add --detach /tmp/b/step-1 abc)"
        );
        assert_eq!(
            line(&worktree_remove(r, Path::new("/tmp/b/step-1"))),
            "(cd /r && git worktree remove --force /tmp/b/step-1)"
        );
        assert_eq!(line(&worktree_prune(r)), "(cd /r && git worktree prune)");
        assert_eq!(
            line(&is_ancestor(r, "a", "b")),
            "(cd /r && git merge-base --is-ancestor a b)"
        );
        assert_eq!(
            line(&toplevel(r)),
            "(cd /r && git rev-parse --show-toplevel)"
        );
    }

    #[test]
    fn commit_lines_parse() {
        assert_eq!(
            parse_commits("abc fix: a thing\ndef\n\n"),
            [
                ("abc".to_string(), "fix: a thing".to_string()),
                ("def".to_string(), String::new())
            ]
        );
    }

    /// The command lines against a real repository: three commits, a worktree of the
    /// middle one outside the clone, then removed without a trace.
    #[tokio::test]
    async fn against_real_git() {
        use crate::sys::process::run;
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        let git = |args: &[&str]| {
            Cmd::new(
                ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
                    .iter()
                    .chain(args),
            )
            .cwd(&repo)
        };
        run(&git(&["init", "-q", "-b", "main"]), None)
            .await
            .unwrap();
        for (i, subject) in ["one", "two", "three"].iter().enumerate() {
            std::fs::write(repo.join("f"), i.to_string()).unwrap();
            run(&git(&["add", "f"]), None).await.unwrap();
            run(&git(&["commit", "-q", "-m", subject]), None)
                .await
                .unwrap();
        }
        let first = parse_commits(&run(&show(&repo, "HEAD~2"), None).await.unwrap().stdout);
        assert_eq!(first[0].1, "one");
        let list = parse_commits(
            &run(&steps(&repo, "HEAD~2", "HEAD"), None)
                .await
                .unwrap()
                .stdout,
        );
        let subjects: Vec<&str> = list.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(subjects, ["two", "three"]);
        assert!(run(&show(&repo, "nope"), None).await.is_err());
        assert!(
            run(&is_ancestor(&repo, "HEAD~2", "HEAD"), None)
                .await
                .is_ok()
        );
        assert!(
            run(&is_ancestor(&repo, "HEAD", "HEAD~2"), None)
                .await
                .is_err()
        );
        let wt = dir.path().join("wt");
        run(&worktree_add(&repo, &wt, &list[0].0), None)
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(wt.join("f")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(repo.join("f")).unwrap(), "2");
        run(&worktree_remove(&repo, &wt), None).await.unwrap();
        assert!(!wt.exists());
        let listed = run(&Cmd::new(["git", "worktree", "list"]).cwd(&repo), None)
            .await
            .unwrap();
        assert_eq!(listed.stdout.lines().count(), 1, "{}", listed.stdout);
    }
}
