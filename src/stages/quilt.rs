//! Applying a quilt series to a tree, and turning quilt's output into a failure that names
//! the patch, file and hunk.
//!
//! Owns: the `quilt` command lines, the output parser, and keeping the mtimes of files
//! whose content a re-applied series did not change (so that kbuild's dependency tracking
//! rebuilds only what really changed). Not owned: where the tree comes from (`source`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::{BuildError, HunkFailure};
use crate::sys::cache::sha256_file;
use crate::sys::process::{self, Cmd, ProcessError};

/// `quilt push -a --fuzz=0` in `tree` with the series in `patches`.
///
/// `--quiltrc -` keeps a user's `~/.quiltrc` (or Debian's `/etc/quilt.quiltrc`) from
/// changing what CI does; `--fuzz=0` because a hunk that only applies with fuzz has lost
/// its context and may land in the wrong place.
pub(crate) fn push_cmd(tree: &Path, patches: &Path) -> Cmd {
    Cmd::new(["quilt", "--quiltrc", "-", "push", "-a", "--fuzz=0"])
        .cwd(tree)
        .env("QUILT_PATCHES", patches)
}

/// `quilt pop -a -f`: back to pristine from quilt's own backups, even if files changed.
pub(crate) fn pop_cmd(tree: &Path, patches: &Path) -> Cmd {
    Cmd::new(["quilt", "--quiltrc", "-", "pop", "-a", "-f"])
        .cwd(tree)
        .env("QUILT_PATCHES", patches)
}

/// Patch names of a `series` file, in order (comments, blanks and `-pN` options skipped).
pub(crate) fn series_patches(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// What quilt said about a push that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PushFailure {
    /// The patch that did not apply, relative to the patch directory.
    pub patch: String,
    /// Its failed hunks.
    pub hunks: Vec<HunkFailure>,
    /// Summary and reason lines (`1 out of 3 hunks FAILED -- rejects in file x.c`).
    pub summary: Vec<String>,
}

/// Parses `quilt push` output; `None` when no patch is reported as failing.
///
/// Quilt prints patch names with the `QUILT_PATCHES` prefix; `patches` is stripped so the
/// name matches the series entry.
pub(crate) fn parse_push_output(output: &str, patches: &Path) -> Option<PushFailure> {
    let prefix = format!("{}/", patches.display());
    let name = |raw: &str| {
        raw.trim()
            .strip_prefix(prefix.as_str())
            .unwrap_or(raw.trim())
            .to_string()
    };
    let (mut current, mut file) = (None::<String>, String::new());
    let (mut hunks, mut summary) = (Vec::new(), Vec::new());
    let mut failed = None;
    for line in output.lines() {
        let line = line.trim_end();
        if let Some(p) = line.strip_prefix("Applying patch ") {
            current = Some(name(p));
            hunks.clear();
            summary.clear();
        } else if let Some(f) = line
            .strip_prefix("patching file ")
            .or_else(|| line.strip_prefix("checking file "))
        {
            file = f.trim().trim_matches('\'').to_string();
        } else if let Some(h) = parse_hunk_failed(line) {
            hunks.push(HunkFailure {
                hunk: h.0,
                line: h.1,
                file: file.clone(),
            });
        } else if let Some(p) = line
            .strip_prefix("Patch ")
            .and_then(|r| r.strip_suffix(" does not apply (enforce with -f)"))
        {
            failed = Some(name(p));
            break;
        } else if line.contains("hunks FAILED") || line.contains("hunk FAILED") || is_reason(line) {
            summary.push(line.trim().to_string());
        }
    }
    let patch = failed.or_else(|| (!hunks.is_empty()).then(|| current.clone()).flatten())?;
    Some(PushFailure {
        patch,
        hunks,
        summary,
    })
}

/// Other reasons `patch` gives for refusing a patch, kept for the message.
fn is_reason(line: &str) -> bool {
    [
        "malformed patch",
        "Reversed (or previously applied)",
        "can't find file to patch",
        "No such file",
    ]
    .iter()
    .any(|r| line.contains(r))
}

/// `Hunk #2 FAILED at 123.` (optionally `at 123 (different line endings).`) → (2, 123).
fn parse_hunk_failed(line: &str) -> Option<(u32, u32)> {
    let rest = line.trim().strip_prefix("Hunk #")?;
    let (num, rest) = rest.split_once(" FAILED at ")?;
    let at: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((num.parse().ok()?, at.parse().ok()?))
}

/// Applies the whole series in `patches` to `tree`, appending quilt's output to `log`.
/// A failing patch becomes [`BuildError::PatchFailed`] with its hunks.
pub(crate) async fn push_all(tree: &Path, patches: &Path, log: &Path) -> Result<(), BuildError> {
    // A relative patch directory is relative to the tree, as for quilt itself.
    let series = tree.join(patches).join("series");
    let text = std::fs::read_to_string(&series).map_err(|source| BuildError::Input {
        what: "patch series",
        path: series.clone(),
        source,
    })?;
    if series_patches(&text).is_empty() {
        return Ok(()); // quilt exits 2 on an empty series; nothing to apply is not an error
    }
    let start = std::fs::metadata(log).map_or(0, |m| m.len());
    let cmd = push_cmd(tree, patches);
    match process::run(&cmd, Some(log)).await {
        Ok(_) => Ok(()),
        Err(err @ ProcessError::Failed { .. }) => {
            let output = read_from(log, start);
            match parse_push_output(&output, patches) {
                Some(f) => Err(BuildError::PatchFailed {
                    patch: f.patch,
                    hunks: f.hunks,
                    summary: f.summary,
                    log: Some(log.to_path_buf()),
                }),
                None => Err(BuildError::Step {
                    step: "quilt push".into(),
                    source: err,
                }),
            }
        }
        Err(err) => Err(BuildError::Step {
            step: "quilt push".into(),
            source: err,
        }),
    }
}

/// Unapplies everything (a no-op on a tree without `.pc`). Quilt exits 2 for "nothing to
/// pop", which is success here.
pub(crate) async fn pop_all(tree: &Path, patches: &Path, log: &Path) -> Result<(), BuildError> {
    if !tree.join(".pc").exists() {
        return Ok(());
    }
    match process::run(&pop_cmd(tree, patches), Some(log)).await {
        Ok(_) => Ok(()),
        Err(ProcessError::Failed { status, .. }) if status.code() == Some(2) => Ok(()),
        Err(err) => Err(BuildError::Step {
            step: "quilt pop".into(),
            source: err,
        }),
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Files (relative to `tree`) that the applied patches touch, from quilt's backups in
/// `.pc/<patch>/`.
pub(crate) fn touched_files(tree: &Path) -> Vec<PathBuf> {
    let pc = tree.join(".pc");
    let applied = std::fs::read_to_string(pc.join("applied-patches")).unwrap_or_default();
    let mut out: Vec<PathBuf> = applied
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|p| crate::sys::cache::walk_sorted(&pc.join(p.trim())).unwrap_or_default())
        .filter(|rel| rel.file_name().is_some_and(|n| n != ".timestamp"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Content and mtime of files, taken before a series is re-applied.
#[derive(Debug, Default)]
pub(crate) struct MtimeSnapshot(Vec<(PathBuf, String, SystemTime)>);

impl MtimeSnapshot {
    /// Records digest and mtime of each existing file of `files` (relative to `tree`).
    pub(crate) fn take(tree: &Path, files: &[PathBuf]) -> Self {
        MtimeSnapshot(
            files
                .iter()
                .filter_map(|rel| {
                    let path = tree.join(rel);
                    let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
                    Some((rel.clone(), sha256_file(&path).ok()?, mtime))
                })
                .collect(),
        )
    }

    /// Gives back the old mtime to every file whose content is unchanged, so that popping
    /// and pushing the series does not make make rebuild everything the series touches
    /// (the series patches headers such as `include/linux/thread_info.h`). Returns how
    /// many files kept their mtime.
    pub(crate) fn restore(&self, tree: &Path) -> usize {
        let mut kept = 0;
        for (rel, digest, mtime) in &self.0 {
            let path = tree.join(rel);
            if sha256_file(&path).ok().as_ref() != Some(digest) {
                continue;
            }
            let set = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(*mtime));
            if set.is_ok() {
                kept += 1;
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/stages/testdata/quilt");

    /// Copies the fixture tree and a chosen series into a tempdir: (tempdir, tree, patches).
    fn fixture(series: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (tree, patches) = (dir.path().join("tree"), dir.path().join("patches"));
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::create_dir_all(&patches).unwrap();
        for rel in crate::sys::cache::walk_sorted(&Path::new(FIXTURE).join("tree")).unwrap() {
            std::fs::copy(Path::new(FIXTURE).join("tree").join(&rel), tree.join(&rel)).unwrap();
        }
        for p in series {
            std::fs::copy(Path::new(FIXTURE).join("patches").join(p), patches.join(p)).unwrap();
        }
        std::fs::write(
            patches.join("series"),
            format!("# fixture\n{}\n", series.join("\n")),
        )
        .unwrap();
        (dir, tree, patches)
    }

    #[test]
    fn command_lines_are_data() {
        let cmd = push_cmd(Path::new("/w/linux"), Path::new("/repo/patches/kernel"));
        assert_eq!(
            cmd.to_string(),
            "(cd /w/linux && QUILT_PATCHES=/repo/patches/kernel quilt --quiltrc - push -a --fuzz=0)"
        );
        assert_eq!(
            pop_cmd(Path::new("/w"), Path::new("/p")).argv[3..],
            ["pop", "-a", "-f"].map(std::ffi::OsString::from)
        );
    }

    #[test]
    fn series_names_skip_comments_and_options() {
        let text = "# XSC\n0001-a.patch\n\n0002-b.patch -p1\n  # 0003-off.patch\n";
        assert_eq!(series_patches(text), ["0001-a.patch", "0002-b.patch"]);
    }

    #[test]
    fn the_issue_s_quilt_messages_parse() {
        let out = "Applying patch /r/patches/kernel/0001-xsc-a.patch\npatching file drivers/Kconfig\n\n\
                   Applying patch /r/patches/kernel/0002-xsc-b.patch\npatching file drivers/x.c\n\
                   Hunk #1 succeeded at 10 (offset 2 lines).\nHunk #2 FAILED at 123.\nHunk #3 FAILED at 200 (different line endings).\n\
                   2 out of 3 hunks FAILED -- rejects in file drivers/x.c\n\
                   Patch /r/patches/kernel/0002-xsc-b.patch does not apply (enforce with -f)\n";
        let f = parse_push_output(out, Path::new("/r/patches/kernel")).unwrap();
        assert_eq!(f.patch, "0002-xsc-b.patch");
        assert_eq!(
            f.hunks,
            [
                HunkFailure {
                    hunk: 2,
                    line: 123,
                    file: "drivers/x.c".into()
                },
                HunkFailure {
                    hunk: 3,
                    line: 200,
                    file: "drivers/x.c".into()
                }
            ]
        );
        assert_eq!(
            f.summary,
            ["2 out of 3 hunks FAILED -- rejects in file drivers/x.c"]
        );
        assert_eq!(
            parse_push_output(
                "Applying patch p/a.patch\npatching file x\n",
                Path::new("p")
            ),
            None
        );
    }

    #[tokio::test]
    async fn real_quilt_names_the_failing_patch_and_hunk() {
        let (dir, tree, patches) = fixture(&["0001-edit-a.patch", "0002-edit-b-broken.patch"]);
        let log = dir.path().join("build.log");
        let err = push_all(&tree, &patches, &log).await.unwrap_err();
        let BuildError::PatchFailed {
            patch,
            hunks,
            summary,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(patch, "0002-edit-b-broken.patch");
        assert_eq!(
            hunks,
            &[HunkFailure {
                hunk: 2,
                line: 7,
                file: "b.c".into()
            }]
        );
        assert_eq!(summary, &["1 out of 2 hunks FAILED -- rejects in file b.c"]);
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BuildFailed);
        assert!(err.to_string().starts_with(
            "patch 0002-edit-b-broken.patch does not apply: b.c hunk #2 FAILED at line 7"
        ));
        // The first patch stays applied, the failed one was rolled back by quilt.
        assert!(
            std::fs::read_to_string(tree.join("a.c"))
                .unwrap()
                .contains("LINE2")
        );
        assert!(
            !std::fs::read_to_string(tree.join("b.c"))
                .unwrap()
                .contains("B2")
        );
    }

    #[tokio::test]
    async fn fuzz_is_refused() {
        // 0002-edit-b-fuzzy applies with `patch --fuzz=1` (plain `quilt push` accepts it).
        let (dir, tree, patches) = fixture(&["0001-edit-a.patch", "0002-edit-b-fuzzy.patch"]);
        let err = push_all(&tree, &patches, &dir.path().join("log"))
            .await
            .unwrap_err();
        let BuildError::PatchFailed { patch, hunks, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(patch, "0002-edit-b-fuzzy.patch");
        assert_eq!(
            hunks,
            &[HunkFailure {
                hunk: 1,
                line: 6,
                file: "b.c".into()
            }]
        );
    }

    #[tokio::test]
    async fn pop_and_push_keep_mtimes_of_unchanged_files() {
        let (dir, tree, patches) = fixture(&["0001-edit-a.patch", "0003-edit-b.patch"]);
        let log = dir.path().join("log");
        push_all(&tree, &patches, &log).await.unwrap();
        assert_eq!(
            touched_files(&tree),
            [PathBuf::from("a.c"), PathBuf::from("b.c")]
        );
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for f in ["a.c", "b.c"] {
            std::fs::File::options()
                .write(true)
                .open(tree.join(f))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let snap = MtimeSnapshot::take(&tree, &touched_files(&tree));
        // Edit 0003 so b.c changes; a.c must keep its mtime, b.c must not.
        let p3 = patches.join("0003-edit-b.patch");
        std::fs::write(
            &p3,
            std::fs::read_to_string(&p3)
                .unwrap()
                .replace("+B8", "+B8-changed"),
        )
        .unwrap();
        pop_all(&tree, &patches, &log).await.unwrap();
        assert!(
            !std::fs::read_to_string(tree.join("a.c"))
                .unwrap()
                .contains("LINE2"),
            "pop restores pristine"
        );
        push_all(&tree, &patches, &log).await.unwrap();
        assert_eq!(snap.restore(&tree), 1);
        let mtime = |f: &str| std::fs::metadata(tree.join(f)).unwrap().modified().unwrap();
        assert_eq!(mtime("a.c"), old);
        assert!(mtime("b.c") > old);
        // Popping a tree with nothing applied is fine.
        pop_all(&tree, &patches, &log).await.unwrap();
        pop_all(&tree, &patches, &log).await.unwrap();
    }
}
