//! Publishing a finished local release (or candidate) directory to a remote target so that
//! a reader never sees half of it, and fetching a published one back for `verify`.
//!
//! The remote layout mirrors `releases/`: `X.Y.Z/` and `latest` at the target's root,
//! `candidates/<id>/` and `candidates/latest`. Uploads go in phases, each finished before
//! the next starts (Debian's mirrors publish `Release` last for the same reason):
//! 1. the artifacts and the other plain files (README, junit.xml, provenance, minisign.pub);
//! 2. `SHA256SUMS` and every `.minisig`;
//! 3. `manifest.json`: from here on the directory counts as published;
//! 4. `latest`, one line naming the new directory: the only object ever replaced.
//!
//! A directory with a `manifest.json` is never written again: the same manifest means a
//! rerun after step 3 (only `latest` is left to do), another one is refused. A directory
//! without one is an interrupted upload: a file already there is kept only when its
//! content is ours — its SHA-256, read back, equals the local `SHA256SUMS` entry (or the
//! local file's for the files SHA256SUMS does not list: itself and the signatures) — and
//! sent again otherwise. Sizes prove nothing (a torn or foreign file can have ours).

use std::collections::BTreeMap;
use std::path::Path;

use super::error::ReleaseError;
use super::manifest::names;
use super::remote::Remote;

/// The name of the pointer file next to the published directories.
pub(crate) const LATEST: &str = "latest";

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploaded {
    /// The published directory, as a URL or `host:/path`.
    pub url: String,
    /// Files sent now.
    pub sent: usize,
    /// Files an interrupted earlier upload had already sent.
    pub kept: usize,
    /// The `latest` pointer that now names it.
    pub latest: String,
}

/// The upload phases of a release directory's files, in order (pure).
pub(crate) fn phases(files: &[String]) -> [Vec<String>; 3] {
    let mut out: [Vec<String>; 3] = Default::default();
    for f in files {
        let phase = if f == names::MANIFEST {
            2
        } else if f == names::SUMS || f.ends_with(names::SIG_SUFFIX) {
            1
        } else {
            0
        };
        out[phase].push(f.clone());
    }
    for p in &mut out {
        p.sort();
    }
    out
}

/// Where a local directory goes on the remote: `(its directory, its latest pointer)`.
/// Candidates (signed by a dev or CI key, under `candidates/` locally) go to `candidates/`.
pub(crate) fn remote_paths(name: &str, candidate: bool) -> (String, String) {
    if candidate {
        (format!("candidates/{name}"), format!("candidates/{LATEST}"))
    } else {
        (name.to_string(), LATEST.to_string())
    }
}

/// Uploads `local` (a finished release directory) as `dir` and then points `latest_rel`
/// at it. `scratch` is a local directory for the pointer file and fetched manifests.
pub(crate) async fn upload(
    remote: &Remote,
    local: &Path,
    dir: &str,
    latest_rel: &str,
    scratch: &Path,
) -> Result<Uploaded, ReleaseError> {
    let mut files: Vec<String> = Vec::new();
    tree(local, "", &mut files)?;
    if !files.iter().any(|f| f == names::MANIFEST) {
        return Err(ReleaseError::MissingInput {
            path: local.join(names::MANIFEST),
        });
    }
    std::fs::create_dir_all(scratch).map_err(ReleaseError::io("create directory", scratch))?;
    let there: BTreeMap<String, u64> = remote.list(dir).await?.unwrap_or_default();
    let url = remote.url_of(dir);
    let (mut sent, mut kept) = (0, 0);
    if there.contains_key(names::MANIFEST) {
        let fetched = scratch.join("remote-manifest.json");
        remote
            .get_to(&format!("{dir}/{}", names::MANIFEST), &fetched)
            .await?;
        let theirs = std::fs::read(&fetched).map_err(ReleaseError::io("read", &fetched))?;
        let ours = std::fs::read(local.join(names::MANIFEST))
            .map_err(ReleaseError::io("read", local.join(names::MANIFEST)))?;
        if theirs != ours {
            return Err(ReleaseError::RemoteVersionExists { url });
        }
        kept = files.len();
    } else {
        let sums = local_sums(local)?;
        for phase in phases(&files) {
            let mut todo: Vec<String> = Vec::new();
            for f in phase {
                let path = local.join(&f);
                let size = std::fs::metadata(&path)
                    .map_err(ReleaseError::io("read", &path))?
                    .len();
                // A different size needs no read-back; the same size proves nothing yet.
                let same = there.get(&f) == Some(&size) && {
                    let want = match sums.get(&f) {
                        Some(h) => h.clone(),
                        None => super::checksums::hash_file(&path)
                            .map_err(ReleaseError::io("read", &path))?
                            .sha256_hex(),
                    };
                    remote.sha256(&format!("{dir}/{f}"), scratch).await? == Some(want)
                };
                if same {
                    kept += 1;
                } else {
                    todo.push(f);
                }
            }
            sent += todo.len();
            remote.put(dir, local, &todo).await?;
        }
    }
    let name = dir.rsplit('/').next().unwrap_or(dir);
    let pointer = scratch.join(LATEST);
    std::fs::write(&pointer, format!("{name}\n")).map_err(ReleaseError::io("write", &pointer))?;
    let (latest_dir, _) = latest_rel.rsplit_once('/').unwrap_or(("", latest_rel));
    remote
        .put(latest_dir, scratch, &[LATEST.to_string()])
        .await?;
    Ok(Uploaded {
        url,
        sent,
        kept,
        latest: remote.url_of(latest_rel),
    })
}

/// The regular files under `dir` as `/`-separated paths relative to the release directory
/// (the package repositories are subdirectories: `apt/Release`, `rpm/repodata/repomd.xml`).
fn tree(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), ReleaseError> {
    let dir = root.join(rel);
    for item in std::fs::read_dir(&dir).map_err(ReleaseError::io("list", &dir))? {
        let item = item.map_err(ReleaseError::io("list", &dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        match item.file_type() {
            Ok(t) if t.is_dir() => tree(root, &path, out)?,
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    Ok(())
}

/// A path from the remote that may be written under a local directory: relative, no empty,
/// `.` or `..` component, nothing hidden.
fn plain_relative(p: &str) -> bool {
    !p.is_empty() && p.split('/').all(|c| !c.is_empty() && !c.starts_with('.'))
}

/// The local SHA256SUMS as file → sha256 hex.
fn local_sums(local: &Path) -> Result<BTreeMap<String, String>, ReleaseError> {
    let path = local.join(names::SUMS);
    let text = std::fs::read_to_string(&path).map_err(ReleaseError::io("read", &path))?;
    let entries = super::checksums::parse_sums(&text).map_err(|reason| ReleaseError::BadField {
        field: "SHA256SUMS",
        value: reason,
        expected: "sha256sum lines",
    })?;
    Ok(entries.into_iter().map(|e| (e.name, e.sha256)).collect())
}

/// Downloads the published directory at `rel` (or, when `rel` holds no `SHA256SUMS` but a
/// `latest` pointer, the directory it names) into `into` for [`super::verify`]: the checksum
/// list, every file it names and their signatures, and, where the remote can list, every
/// other file there (so an unlisted file is reported). Returns the directory's `rel`.
pub(crate) async fn fetch(remote: &Remote, rel: &str, into: &Path) -> Result<String, ReleaseError> {
    std::fs::create_dir_all(into).map_err(ReleaseError::io("create directory", into))?;
    let at = |dir: &str, f: &str| {
        if dir.is_empty() {
            f.to_string()
        } else {
            format!("{dir}/{f}")
        }
    };
    let mut dir = rel.trim_matches('/').to_string();
    let sums = into.join(names::SUMS);
    if !remote.get_to(&at(&dir, names::SUMS), &sums).await? {
        let pointer = into.join(".latest");
        if remote.get_to(&at(&dir, LATEST), &pointer).await? {
            let name = std::fs::read_to_string(&pointer)
                .map_err(ReleaseError::io("read", &pointer))?
                .trim()
                .to_string();
            let _ = std::fs::remove_file(&pointer);
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(ReleaseError::BadField {
                    field: "latest pointer",
                    value: name,
                    expected: "one directory name",
                });
            }
            dir = at(&dir, &name);
            remote.get_to(&at(&dir, names::SUMS), &sums).await?;
        }
    }
    let mut wanted: Vec<String> = vec![names::SUMS_SIG.to_string()];
    if let Ok(text) = std::fs::read_to_string(&sums)
        && let Ok(entries) = super::checksums::parse_sums(&text)
    {
        for e in entries {
            wanted.push(format!("{}{}", e.name, names::SIG_SUFFIX));
            wanted.push(e.name);
        }
    }
    if let Some(listing) = remote.list(&dir).await? {
        wanted.extend(listing.into_keys());
    }
    wanted.sort();
    wanted.dedup();
    for f in wanted {
        // Names come from the remote: only plain relative paths land in `into`.
        if f == names::SUMS || !plain_relative(&f) {
            continue;
        }
        let to = into.join(&f);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(ReleaseError::io("create directory", parent))?;
        }
        remote.get_to(&at(&dir, &f), &to).await?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_go_first_then_sums_and_signatures_then_the_manifest() {
        let files: Vec<String> = [
            "manifest.json",
            "SHA256SUMS.minisig",
            "xsc.iso",
            "xsc.iso.minisig",
            "SHA256SUMS",
            "README",
            "manifest.json.minisig",
            "junit.xml",
            "apt/Release",
            "apt/Release.minisig",
        ]
        .map(String::from)
        .to_vec();
        let [first, second, third] = phases(&files);
        assert_eq!(first, ["README", "apt/Release", "junit.xml", "xsc.iso"]);
        assert_eq!(
            second,
            [
                "SHA256SUMS",
                "SHA256SUMS.minisig",
                "apt/Release.minisig",
                "manifest.json.minisig",
                "xsc.iso.minisig"
            ]
        );
        assert_eq!(third, ["manifest.json"]);
        assert_eq!(
            remote_paths("c1", true),
            ("candidates/c1".into(), "candidates/latest".into())
        );
        assert_eq!(
            remote_paths("1.0.0", false),
            ("1.0.0".into(), "latest".into())
        );
    }

    #[test]
    fn only_plain_relative_paths_from_a_remote_are_written_locally() {
        assert!(plain_relative("apt/Release"));
        assert!(plain_relative("xsc.iso"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "apt/../../x",
            "a//b",
            ".latest",
            "apt/.x",
        ] {
            assert!(!plain_relative(bad), "{bad}");
        }
    }
}
