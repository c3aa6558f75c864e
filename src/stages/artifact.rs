//! A stage artifact: one sealed cache entry carried from the CI job that built it to the
//! jobs that boot or sign it (`build … --stage-artifact DIR`, `cache import DIR`;
//! docs/ci.md).
//!
//! `DIR/entry/` holds the entry's regular files, `DIR/seal.json` the stage, variant and key
//! and every file's SHA-256 and executable bit, every symlink and every directory. CI
//! artifact stores lose modes and symlinks, so the seal, not the upload, is what restores
//! them. Import copies into the cache's staging and hashes the bytes it copied (never a
//! check-then-copy race), refuses any file, link or directory the seal does not list or
//! lists differently, and commits through [`Cache::commit`], so a refused artifact leaves
//! nothing behind. Which key the entry must have is the importer's to say: the key this
//! checkout computes for that stage ([`import`]'s `checkout_key`).
//!
//! The seal guards against a corrupted, partial or edited upload and against an entry of
//! other inputs; it is not a signature (a forger who rewrites the seal too is caught by the
//! gates' image hashes in the verdict records, docs/ci.md).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::exit_code::ExitCode;
use crate::sys::cache::{Cache, Entry, EntryInfo};

/// The seal file in an artifact directory.
pub(crate) const SEAL: &str = "seal.json";
/// The entry's files in an artifact directory.
pub(crate) const ENTRY: &str = "entry";
/// The seal's format tag; another one is refused.
const FORMAT: &str = "xsc-stage-artifact-1";

/// What an artifact says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Seal {
    /// [`FORMAT`].
    pub format: String,
    /// The cache stage (`kernel`, `glibc`, `debian-iso`).
    pub stage: String,
    /// Profile or variant as `status` names it (`qemu`, `xsc`, `-`).
    pub variant: String,
    /// The entry's key (hex SHA-256 of its inputs).
    pub key: String,
    /// Every regular file, sorted by path.
    pub files: Vec<SealedFile>,
    /// Every symlink, sorted by path.
    pub links: Vec<SealedLink>,
    /// Every directory below the entry, sorted (so empty ones come back too).
    pub dirs: Vec<String>,
}

/// One regular file of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedFile {
    /// Path relative to the entry.
    pub path: String,
    /// Hex SHA-256 of its content.
    pub sha256: String,
    /// Whether it is executable (restored as 0755, else 0644).
    pub executable: bool,
}

/// One symlink of an entry (glibc's sysroot has some).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedLink {
    /// Path relative to the entry.
    pub path: String,
    /// Its relative target, which stays inside the entry.
    pub target: String,
}

/// What [`import`] did.
#[derive(Debug)]
pub(crate) struct Imported {
    /// The entry now in the cache.
    pub entry: Entry,
    /// The cache had it already (the artifact was checked all the same).
    pub was_there: bool,
}

/// Why an artifact could not be written or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The directory has no readable seal of this format.
    #[error("{} is not a stage artifact: {why}", .dir.display())]
    NotAnArtifact {
        /// The artifact directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The entry was built from other inputs than this checkout's.
    #[error(
        "stage artifact {} holds {stage} {variant} key {artifact_key}, but this checkout's {stage} {variant} key is {checkout_key}: it was built from other inputs (refused; rebuild it with this checkout)",
        .dir.display()
    )]
    KeyMismatch {
        /// The artifact directory.
        dir: PathBuf,
        /// The stage.
        stage: String,
        /// Its variant.
        variant: String,
        /// The key in the seal.
        artifact_key: String,
        /// The key this checkout computes.
        checkout_key: String,
    },
    /// A file, link or directory differs from the seal (corrupted, partial or edited).
    #[error("stage artifact {} does not match its seal: {problem} (refused)", .dir.display())]
    Tampered {
        /// The artifact directory.
        dir: PathBuf,
        /// The first difference found.
        problem: String,
    },
    /// The seal names a stage or variant this checkout does not key.
    #[error("stage artifact {} holds {stage} {variant}, which is not a stage `status` lists", .dir.display())]
    UnknownStage {
        /// The artifact directory.
        dir: PathBuf,
        /// The stage.
        stage: String,
        /// Its variant.
        variant: String,
    },
    /// This checkout's key for the stage could not be computed (offline, source missing).
    #[error("cannot compute this checkout's {stage} {variant} key to check the artifact: {why}")]
    KeyUnknown {
        /// The stage.
        stage: String,
        /// Its variant.
        variant: String,
        /// What `status` says.
        why: String,
    },
    /// The stage has no entry for the current inputs to export.
    #[error("no cached {stage} {variant} for the current inputs (key {key}) to export")]
    NotCached {
        /// The stage.
        stage: String,
        /// Its variant.
        variant: String,
        /// The key of the current inputs.
        key: String,
    },
    /// `--stage-artifact` names a directory that already has something in it.
    #[error("{} exists and is not empty: --stage-artifact writes a new directory", .dir.display())]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// File-system trouble.
    #[error("failed to {what} {}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ArtifactError {
    /// The documented exit code: a bad or foreign artifact is bad input (2), a key that
    /// cannot be computed or an entry not built is "cannot build" (3), i/o is the host (4).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ArtifactError::NotAnArtifact { .. }
            | ArtifactError::KeyMismatch { .. }
            | ArtifactError::Tampered { .. }
            | ArtifactError::UnknownStage { .. }
            | ArtifactError::NotEmpty { .. } => ExitCode::BadInput,
            ArtifactError::KeyUnknown { .. } | ArtifactError::NotCached { .. } => {
                ExitCode::BuildFailed
            }
            ArtifactError::Io { .. } => ExitCode::Harness,
        }
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let path = path.to_path_buf();
    move |source| ArtifactError::Io { what, path, source }
}

/// Writes `entry` (of `variant`) as an artifact into `dir`, which must be new or empty.
pub(crate) fn export(entry: &Entry, variant: &str, dir: &Path) -> Result<Seal, ArtifactError> {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ArtifactError::NotEmpty {
            dir: dir.to_path_buf(),
        });
    }
    let out = dir.join(ENTRY);
    std::fs::create_dir_all(&out).map_err(io("create", &out))?;
    let mut seal = Seal {
        format: FORMAT.into(),
        stage: entry.info.stage.clone(),
        variant: variant.into(),
        key: entry.info.key.clone(),
        files: vec![],
        links: vec![],
        dirs: vec![],
    };
    for (rel, kind) in walk(&entry.dir)? {
        let (from, to) = (entry.dir.join(&rel), out.join(&rel));
        let path = rel.to_string_lossy().into_owned();
        match kind {
            Kind::Dir => {
                std::fs::create_dir_all(&to).map_err(io("create", &to))?;
                seal.dirs.push(path);
            }
            Kind::Link => {
                let target = std::fs::read_link(&from).map_err(io("read link", &from))?;
                seal.links.push(SealedLink {
                    path,
                    target: target.to_string_lossy().into_owned(),
                });
            }
            Kind::File => {
                let sha256 = copy_hashing(&from, &to)?;
                let mode = std::fs::metadata(&from)
                    .map_err(io("stat", &from))?
                    .permissions()
                    .mode();
                seal.files.push(SealedFile {
                    path,
                    sha256,
                    executable: mode & 0o111 != 0,
                });
            }
        }
    }
    let json = serde_json::to_vec_pretty(&seal).map_err(std::io::Error::other);
    let path = dir.join(SEAL);
    json.and_then(|j| crate::sys::atomic_file::write(&path, &j))
        .map_err(io("write", &path))?;
    Ok(seal)
}

/// The seal of the artifact in `dir`.
pub(crate) fn read_seal(dir: &Path) -> Result<Seal, ArtifactError> {
    let not = |why: String| ArtifactError::NotAnArtifact {
        dir: dir.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(dir.join(SEAL)).map_err(|e| not(format!("{SEAL}: {e}")))?;
    let seal: Seal = serde_json::from_slice(&bytes).map_err(|e| not(format!("{SEAL}: {e}")))?;
    if seal.format != FORMAT {
        return Err(not(format!(
            "format {:?}, this harness reads {FORMAT:?}",
            seal.format
        )));
    }
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !plain(&seal.stage) || !plain(&seal.variant) {
        return Err(not(format!(
            "stage {:?} variant {:?} are not plain names",
            seal.stage, seal.variant
        )));
    }
    if seal.key.len() != 64 || !seal.key.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(not(format!("key {:?} is not a SHA-256", seal.key)));
    }
    Ok(seal)
}

/// Imports the artifact in `dir` (sealed by `seal`, from [`read_seal`]) into `cache`, when
/// its key is `checkout_key` and every file, link and directory is the seal's.
pub(crate) fn import(
    cache: &Cache,
    dir: &Path,
    seal: &Seal,
    checkout_key: &str,
) -> Result<Imported, ArtifactError> {
    if seal.key != checkout_key {
        return Err(ArtifactError::KeyMismatch {
            dir: dir.to_path_buf(),
            stage: seal.stage.clone(),
            variant: seal.variant.clone(),
            artifact_key: seal.key.clone(),
            checkout_key: checkout_key.into(),
        });
    }
    let tampered = |problem: String| ArtifactError::Tampered {
        dir: dir.to_path_buf(),
        problem,
    };
    let src = dir.join(ENTRY);
    // What is there must be what the seal lists: nothing more (an added file would land in
    // the cache unchecked), nothing less.
    let mut found_files = Vec::new();
    let mut found_dirs = Vec::new();
    for (rel, kind) in walk(&src).map_err(|e| tampered(e.to_string()))? {
        let path = rel.to_string_lossy().into_owned();
        match kind {
            Kind::Dir => found_dirs.push(path),
            Kind::File => found_files.push(path),
            Kind::Link => return Err(tampered(format!("{path} is a symlink in the upload"))),
        }
    }
    let want_files: Vec<String> = seal.files.iter().map(|f| f.path.clone()).collect();
    // A symlink's parent directory exists in the upload only when something else is in it.
    let dirs_ok = found_dirs.iter().all(|d| seal.dirs.contains(d));
    if found_files != want_files || !dirs_ok {
        let extra = found_files.iter().find(|f| !want_files.contains(f));
        let missing = want_files.iter().find(|f| !found_files.contains(f));
        let stray_dir = found_dirs.iter().find(|d| !seal.dirs.contains(d));
        return Err(tampered(match (extra, missing, stray_dir) {
            (Some(f), _, _) => format!("{f} is not in the seal"),
            (_, Some(f), _) => format!("{f} is missing"),
            (_, _, Some(d)) => format!("directory {d} is not in the seal"),
            _ => "the files are not in the seal's order".into(),
        }));
    }
    for p in seal
        .files
        .iter()
        .map(|f| &f.path)
        .chain(seal.links.iter().map(|l| &l.path))
        .chain(&seal.dirs)
    {
        if !inside(Path::new(p)) {
            return Err(tampered(format!("{p:?} leaves the entry")));
        }
    }
    for l in &seal.links {
        let from = Path::new(&l.path).parent().unwrap_or(Path::new(""));
        if Path::new(&l.target).is_absolute() || !inside(&from.join(&l.target)) {
            return Err(tampered(format!(
                "link {} -> {} leaves the entry",
                l.path, l.target
            )));
        }
    }
    let staged = cache
        .staging(&seal.stage, &seal.key)
        .map_err(io("create staging in", cache.root()))?;
    let filled = fill(&staged, &src, seal, &tampered);
    let info = filled.and_then(|()| {
        let path = staged.join("entry.json");
        let bytes = std::fs::read(&path).map_err(|e| tampered(format!("entry.json: {e}")))?;
        let info: EntryInfo =
            serde_json::from_slice(&bytes).map_err(|e| tampered(format!("entry.json: {e}")))?;
        let variant_fact = ["profile", "variant"]
            .iter()
            .find_map(|k| info.facts.get(*k));
        if info.stage != seal.stage
            || info.key != seal.key
            || variant_fact.is_some_and(|v| *v != seal.variant)
        {
            return Err(tampered(format!(
                "entry.json is {} {} key {}, the seal says {} {} key {}",
                info.stage,
                variant_fact.map_or("-", String::as_str),
                info.key,
                seal.stage,
                seal.variant,
                seal.key
            )));
        }
        Ok(info)
    });
    let info = match info {
        Ok(i) => i,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
    };
    let was_there = cache.lookup(&seal.stage, &seal.key).is_some();
    let entry = cache
        .commit(&staged, info)
        .map_err(io("commit the imported entry", &staged))?;
    Ok(Imported { entry, was_there })
}

/// Copies the sealed files into `staged`, checking each copied byte stream against the seal,
/// and restores modes, links and directories.
fn fill(
    staged: &Path,
    src: &Path,
    seal: &Seal,
    tampered: &dyn Fn(String) -> ArtifactError,
) -> Result<(), ArtifactError> {
    for d in &seal.dirs {
        let to = staged.join(d);
        std::fs::create_dir_all(&to).map_err(io("create", &to))?;
    }
    for f in &seal.files {
        let to = staged.join(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let got = copy_hashing(&src.join(&f.path), &to)?;
        if got != f.sha256 {
            return Err(tampered(format!(
                "{} has sha256 {got}, the seal says {}",
                f.path, f.sha256
            )));
        }
        let mode = if f.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
            .map_err(io("set the mode of", &to))?;
    }
    for l in &seal.links {
        let at = staged.join(&l.path);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::os::unix::fs::symlink(&l.target, &at).map_err(io("create link", &at))?;
    }
    Ok(())
}

/// True when `rel` is relative and, taken lexically, never climbs above its root.
fn inside(rel: &Path) -> bool {
    let mut depth = 0usize;
    for c in rel.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return false,
        }
    }
    true
}

/// Copies `from` to `to` (created new) and returns the hex SHA-256 of the bytes written.
fn copy_hashing(from: &Path, to: &Path) -> Result<String, ArtifactError> {
    let mut r = std::fs::File::open(from).map_err(io("read", from))?;
    let mut w = std::fs::File::create(to).map_err(io("write", to))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(io("read", from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(io("write", to))?;
    }
    Ok(hex::encode(hasher.finalize()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Link,
    Dir,
}

/// Everything below `root`, relative, sorted; symlinks are not followed.
fn walk(root: &Path) -> Result<Vec<(PathBuf, Kind)>, ArtifactError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = root.join(&rel);
        for e in std::fs::read_dir(&here).map_err(io("read", &here))? {
            let e = e.map_err(io("read", &here))?;
            let child = rel.join(e.file_name());
            let t = e.file_type().map_err(io("stat", &root.join(&child)))?;
            let kind = if t.is_dir() {
                stack.push(child.clone());
                Kind::Dir
            } else if t.is_symlink() {
                Kind::Link
            } else {
                Kind::File
            };
            out.push((child, kind));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    /// A committed entry with a file, an executable, a nested file, a link and an empty dir.
    fn entry(cache: &Cache) -> Entry {
        let staged = cache.staging("glibc", KEY).unwrap();
        std::fs::create_dir_all(staged.join("sysroot/lib64")).unwrap();
        std::fs::create_dir_all(staged.join("sysroot/usr/lib64")).unwrap();
        std::fs::create_dir_all(staged.join("empty")).unwrap();
        std::fs::write(staged.join("sysroot/lib64/libc.so.6"), "libc").unwrap();
        std::fs::write(staged.join("runner"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(staged.join("runner"), PermissionsExt::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(
            "../../lib64/libc.so.6",
            staged.join("sysroot/usr/lib64/libc.so"),
        )
        .unwrap();
        let info = EntryInfo {
            stage: "glibc".into(),
            key: KEY.into(),
            created: 0,
            inputs: vec![],
            artifacts: BTreeMap::new(),
            facts: [("variant".to_string(), "xsc".to_string())].into(),
        };
        cache.commit(&staged, info).unwrap()
    }

    #[test]
    fn an_exported_entry_imports_whole_with_modes_links_and_empty_dirs() {
        let d = tempfile::tempdir().unwrap();
        let from = Cache::new(d.path().join("a"));
        let e = entry(&from);
        let art = d.path().join("art");
        let seal = export(&e, "xsc", &art).unwrap();
        assert_eq!(seal.links.len(), 1);
        assert!(
            seal.files
                .iter()
                .any(|f| f.path == "runner" && f.executable)
        );
        // CI artifact stores drop modes: the seal restores them.
        std::fs::set_permissions(art.join("entry/runner"), PermissionsExt::from_mode(0o644))
            .unwrap();
        let to = Cache::new(d.path().join("b"));
        let got = import(&to, &art, &read_seal(&art).unwrap(), KEY).unwrap();
        assert!(!got.was_there);
        let dir = to.lookup("glibc", KEY).unwrap().dir;
        let mode = std::fs::metadata(dir.join("runner")).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o755);
        assert_eq!(
            std::fs::read_to_string(dir.join("sysroot/usr/lib64/libc.so")).unwrap(),
            "libc"
        );
        assert!(dir.join("empty").is_dir());
        // Again: checked all the same, already there.
        assert!(import(&to, &art, &seal, KEY).unwrap().was_there);
        // A second export into the same directory is refused.
        assert!(matches!(
            export(&e, "xsc", &art),
            Err(ArtifactError::NotEmpty { .. })
        ));
    }

    #[test]
    fn a_foreign_key_an_edited_an_added_or_a_missing_file_is_refused_and_nothing_lands() {
        let d = tempfile::tempdir().unwrap();
        let from = Cache::new(d.path().join("a"));
        let e = entry(&from);
        let fresh = |name: &str| {
            let art = d.path().join(name);
            export(&e, "xsc", &art).unwrap();
            art
        };
        let to = Cache::new(d.path().join("b"));
        let other = "2".repeat(64);

        let art = fresh("key");
        let r = import(&to, &art, &read_seal(&art).unwrap(), &other);
        let Err(err @ ArtifactError::KeyMismatch { .. }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(err.exit_code(), ExitCode::BadInput);
        assert!(err.to_string().contains(KEY) && err.to_string().contains(&other));

        let art = fresh("edited");
        std::fs::write(art.join("entry/sysroot/lib64/libc.so.6"), "evil").unwrap();
        let r = import(&to, &art, &read_seal(&art).unwrap(), KEY);
        assert!(
            matches!(&r, Err(ArtifactError::Tampered { problem, .. }) if problem.contains("libc.so.6 has sha256")),
            "{r:?}"
        );

        let art = fresh("added");
        std::fs::write(art.join("entry/extra"), "x").unwrap();
        let r = import(&to, &art, &read_seal(&art).unwrap(), KEY);
        assert!(
            matches!(&r, Err(ArtifactError::Tampered { problem, .. }) if problem.contains("extra is not in the seal")),
            "{r:?}"
        );

        let art = fresh("missing");
        std::fs::remove_file(art.join("entry/runner")).unwrap();
        let r = import(&to, &art, &read_seal(&art).unwrap(), KEY);
        assert!(
            matches!(&r, Err(ArtifactError::Tampered { problem, .. }) if problem.contains("runner is missing")),
            "{r:?}"
        );

        // A link the seal points outside the entry.
        let art = fresh("link");
        let mut seal = read_seal(&art).unwrap();
        seal.links[0].target = "../../../../etc/passwd".into();
        let r = import(&to, &art, &seal, KEY);
        assert!(
            matches!(&r, Err(ArtifactError::Tampered { problem, .. }) if problem.contains("leaves the entry")),
            "{r:?}"
        );

        assert!(to.lookup("glibc", KEY).is_none());
        let left: Vec<_> = std::fs::read_dir(d.path().join("b/stages/glibc"))
            .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "no staging left behind: {left:?}");
    }

    #[test]
    fn a_seal_of_another_format_or_with_a_path_as_stage_is_not_an_artifact() {
        let d = tempfile::tempdir().unwrap();
        let e = entry(&Cache::new(d.path().join("a")));
        let art = d.path().join("art");
        export(&e, "xsc", &art).unwrap();
        let text = std::fs::read_to_string(art.join(SEAL)).unwrap();
        for (from, to) in [
            ("xsc-stage-artifact-1", "xsc-stage-artifact-0"),
            ("\"stage\": \"glibc\"", "\"stage\": \"../glibc\""),
        ] {
            std::fs::write(art.join(SEAL), text.replace(from, to)).unwrap();
            let r = read_seal(&art);
            assert!(
                matches!(r, Err(ArtifactError::NotAnArtifact { .. })),
                "{r:?}"
            );
        }
        assert!(inside(Path::new("a/../b")));
        assert!(!inside(Path::new("a/../../b")));
        assert!(!inside(Path::new("/etc")));
    }
}
