//! Building a signed release directory and making it appear atomically: everything is
//! written under `<root>/.tmp-<name>-<pid>.<n>`, fsynced, and renamed into `<root>/<name>`
//! with `RENAME_NOREPLACE`. Readers see the whole release or none of it, and an existing
//! version is never replaced, even by a racing publisher.
//!
//! A plain `rename(2)` would silently replace an *empty* target directory, so it is never
//! used. Any error (ENOSPC included) removes the temporary directory.
//!
//! Not here: locking (lock.rs, taken by the callers in promote.rs) and deciding whether a
//! candidate may be promoted.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::checksums::{self, CopyError, Digests, SumEntry, default_jobs, parallel_map};
use super::error::ReleaseError;
use super::keys::{KeyId, ReleaseKey, sync_dir};
use super::manifest::{
    CandidateRef, FileEntry, FileRole, MANIFEST_SCHEMA, Manifest, ReleaseInputs, SignedBy, names,
};
use super::provenance;
use super::sign::{TrustedComment, minisig};

/// What to publish and how to sign it.
#[derive(Debug)]
pub(crate) struct Release<'a> {
    /// The files and facts.
    pub inputs: &'a ReleaseInputs,
    /// The signing key.
    pub key: &'a ReleaseKey,
    /// Dev candidate or release.
    pub signed_by: SignedBy,
    /// For promotes: the candidate it came from.
    pub promoted_from: Option<CandidateRef>,
    /// For promotes: the SHA-256 every artifact must still have (the candidate's), so a file
    /// changed between verification and copy is caught.
    pub expect_sha256: Option<BTreeMap<String, String>>,
    /// Signing time; `None` means now.
    pub timestamp: Option<u64>,
}

/// A published directory.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// `<root>/<name>`.
    pub dir: PathBuf,
    /// Its name (version or candidate id).
    pub name: String,
    /// The key that signed it.
    pub key_id: KeyId,
}

/// Builds and signs the release into `<root>/<name>`, atomically and never over an existing
/// directory.
pub(crate) fn publish(
    release: &Release<'_>,
    root: &Path,
    name: &str,
) -> Result<Published, ReleaseError> {
    let artifacts = validate(release.inputs)?;
    validate_field("release name", name, false)?;
    let target = root.join(name);
    if target.symlink_metadata().is_ok() {
        return Err(ReleaseError::VersionExists {
            version: name.to_string(),
            path: target,
        });
    }
    fs::create_dir_all(root).map_err(ReleaseError::io("create directory", root))?;
    let staging = Staging::create(root, name)?;
    stage(release, &artifacts, &staging.path, name)?;
    fault("before-rename")?;
    sync_dir(&staging.path)?;
    match rename_noreplace(&staging.path, &target) {
        Ok(()) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
            return Err(ReleaseError::VersionExists {
                version: name.to_string(),
                path: target,
            });
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return Err(ReleaseError::NoReplaceUnsupported {
                path: root.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ReleaseError::Io {
                action: "rename into place",
                path: target,
                source,
            });
        }
    }
    staging.commit();
    sync_dir(root)?;
    Ok(Published {
        dir: target,
        name: name.to_string(),
        key_id: release.key.id(),
    })
}

/// Writes every file of the release into `dir` and returns the manifest.
fn stage(
    release: &Release<'_>,
    artifacts: &[(PathBuf, String)],
    dir: &Path,
    name: &str,
) -> Result<Manifest, ReleaseError> {
    let inputs = release.inputs;
    let timestamp = release.timestamp.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let created =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(timestamp)).to_string();

    // Artifacts: copy + SHA-256 + BLAKE2b in one read, several files at once.
    let copied = parallel_map(artifacts, default_jobs(), |(src, file)| {
        copy_in(src, &dir.join(file))
    });
    let mut files: Vec<(FileEntry, Digests)> = Vec::new();
    for ((_, file), result) in artifacts.iter().zip(copied) {
        let d = result?;
        files.push((entry(file, FileRole::Artifact, &d), d));
    }
    fault("after-artifacts")?;
    if let Some(expected) = &release.expect_sha256 {
        for (e, _) in &files {
            if expected.get(&e.name) != Some(&e.sha256) {
                return Err(ReleaseError::CandidateDidNotVerify {
                    dir: artifacts
                        .iter()
                        .find(|(_, n)| *n == e.name)
                        .and_then(|(p, _)| p.parent())
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                    failures: 1,
                    first: format!("{} changed while being promoted", e.name),
                });
            }
        }
    }
    if let Some(junit) = &inputs.junit {
        let d = copy_in(junit, &dir.join(names::JUNIT))?;
        files.push((entry(names::JUNIT, FileRole::Junit, &d), d));
    }
    let d = write_file(dir, names::PUBKEY, release.key.public_key_file().as_bytes())?;
    files.push((entry(names::PUBKEY, FileRole::Pubkey, &d), d));

    let artifact_entries: Vec<FileEntry> = files
        .iter()
        .filter(|(e, _)| e.role == FileRole::Artifact)
        .map(|(e, _)| e.clone())
        .collect();
    let statement = provenance::statement(inputs, &artifact_entries, &created, name);
    let d = write_file(
        dir,
        names::PROVENANCE,
        provenance::envelope(&statement, release.key).as_bytes(),
    )?;
    files.push((entry(names::PROVENANCE, FileRole::Provenance, &d), d));

    let d = write_file(
        dir,
        names::README,
        readme(release, name, &artifact_entries).as_bytes(),
    )?;
    files.push((entry(names::README, FileRole::Readme, &d), d));

    let manifest = Manifest {
        schema: MANIFEST_SCHEMA,
        version: inputs.version.clone(),
        commit: inputs.commit.clone(),
        profile: inputs.profile.clone(),
        signed_by: release.signed_by,
        key_id: release.key.id().to_string(),
        created,
        source_date_epoch: inputs.source_date_epoch,
        promoted_from: release.promoted_from.clone(),
        sources: inputs.sources.clone(),
        toolchain: inputs.toolchain.clone(),
        inputs: inputs.inputs.clone(),
        tests: inputs.tests.clone(),
        flaky: inputs.flaky.clone(),
        not_built: inputs.not_built.clone(),
        repository_signing: inputs.repository_signing.clone(),
        allowed_regressions: inputs.allowed_regressions.clone(),
        builder_id: provenance::builder_id(inputs),
        files: files.iter().map(|(e, _)| e.clone()).collect(),
    };
    let manifest_digests = write_file(dir, names::MANIFEST, manifest.to_json().as_bytes())?;

    let mut signed: Vec<(String, Digests)> = files.into_iter().map(|(e, d)| (e.name, d)).collect();
    signed.push((names::MANIFEST.to_string(), manifest_digests));
    let sums: Vec<SumEntry> = signed
        .iter()
        .map(|(n, d)| SumEntry {
            sha256: d.sha256_hex(),
            name: n.clone(),
        })
        .collect();
    let sums_digests = write_file(dir, names::SUMS, checksums::render_sums(&sums).as_bytes())?;
    fault("after-sums")?;
    signed.push((names::SUMS.to_string(), sums_digests));
    for (file, d) in &signed {
        let comment = TrustedComment {
            timestamp,
            file: file.clone(),
            sha256: d.sha256_hex(),
            version: inputs.version.clone(),
            commit: inputs.commit.clone(),
        };
        let sig_name = format!("{file}{}", names::SIG_SUFFIX);
        write_file(
            dir,
            &sig_name,
            minisig(release.key, &d.blake2b, &comment.to_string()).as_bytes(),
        )?;
    }
    Ok(manifest)
}

fn entry(name: &str, role: FileRole, d: &Digests) -> FileEntry {
    FileEntry {
        name: name.to_string(),
        role,
        size: d.size,
        sha256: d.sha256_hex(),
    }
}

fn copy_in(src: &Path, dst: &Path) -> Result<Digests, ReleaseError> {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(ReleaseError::io("create directory", parent))?;
    }
    checksums::hash_copy(src, dst).map_err(|e| match e {
        CopyError::Read(source) if source.kind() == io::ErrorKind::NotFound => {
            ReleaseError::MissingInput {
                path: src.to_path_buf(),
            }
        }
        CopyError::Read(source) => ReleaseError::Io {
            action: "read",
            path: src.to_path_buf(),
            source,
        },
        CopyError::Write(source) => ReleaseError::Io {
            action: "write",
            path: dst.to_path_buf(),
            source,
        },
    })
}

/// Writes a small generated file (new, fsynced) and returns its digests.
pub(crate) fn write_file(dir: &Path, name: &str, data: &[u8]) -> Result<Digests, ReleaseError> {
    let path = dir.join(name);
    let write = || -> io::Result<()> {
        let mut f = File::create_new(&path)?;
        f.write_all(data)?;
        f.sync_all()
    };
    write().map_err(ReleaseError::io("write", &path))?;
    Ok(Digests::of_bytes(data))
}

/// Checks the inputs and returns `(source, name in the release)` per artifact.
pub(crate) fn validate(inputs: &ReleaseInputs) -> Result<Vec<(PathBuf, String)>, ReleaseError> {
    validate_field("version", &inputs.version, false)?;
    if inputs.commit.len() < 7
        || inputs.commit.len() > 64
        || !inputs.commit.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ReleaseError::BadField {
            field: "commit",
            value: inputs.commit.clone(),
            expected: "a git commit id (7 to 64 hex digits)",
        });
    }
    validate_field("profile", &inputs.profile, true)?;
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for path in &inputs.artifacts {
        let name = base_name(path);
        check_name(&name, &name, &out)?;
        if !path.is_file() {
            return Err(ReleaseError::MissingInput { path: path.clone() });
        }
        out.push((path.clone(), name));
    }
    // A file under a relative path (the repositories): each component obeys the rules
    // of a file name, so a listed name cannot leave the release directory.
    for (name, path) in &inputs.artifact_paths {
        for part in name.split('/') {
            check_name(part, name, &out)?;
        }
        let top = name.split('/').next().unwrap_or_default();
        if out.iter().any(|(_, n)| n == top) {
            return Err(ReleaseError::BadArtifactName {
                name: name.clone(),
                reason: "a file of the release has the name of this directory",
            });
        }
        if !path.is_file() {
            return Err(ReleaseError::MissingInput { path: path.clone() });
        }
        out.push((path.clone(), name.clone()));
    }
    if let Some(junit) = &inputs.junit
        && !junit.is_file()
    {
        return Err(ReleaseError::MissingInput {
            path: junit.clone(),
        });
    }
    Ok(out)
}

fn base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One file name, or one component of a name in an artifact directory (`name` is the
/// whole name, for the error and the duplicate check).
fn check_name(part: &str, name: &str, seen: &[(PathBuf, String)]) -> Result<(), ReleaseError> {
    let bad = |reason| ReleaseError::BadArtifactName {
        name: name.to_string(),
        reason,
    };
    if part.is_empty() || part.starts_with('.') || !part.bytes().all(tidy_byte) {
        return Err(bad(
            "use letters, digits and . _ + - only, not starting with a dot",
        ));
    }
    if names::RESERVED.contains(&name) || part.ends_with(names::SIG_SUFFIX) {
        return Err(bad("the name is reserved for release metadata"));
    }
    if seen.iter().any(|(_, n)| n == name) {
        return Err(bad("two artifacts have this name"));
    }
    Ok(())
}

fn tidy_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._+-".contains(&b)
}

/// Values that go into trusted comments and file names must not hold spaces, tabs, colons
/// or newlines, or the comment could not be parsed back unambiguously.
fn validate_field(field: &'static str, value: &str, allow_empty: bool) -> Result<(), ReleaseError> {
    if (value.is_empty() && !allow_empty) || value.starts_with('.') || !value.bytes().all(tidy_byte)
    {
        return Err(ReleaseError::BadField {
            field,
            value: value.to_string(),
            expected: "letters, digits and . _ + - only",
        });
    }
    Ok(())
}

/// The temporary directory a release is built in; removed on drop unless committed.
struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Staging {
    fn create(root: &Path, name: &str) -> Result<Self, ReleaseError> {
        // The sequence number keeps two publishes of one process (tests, racing threads)
        // apart; the pid keeps processes apart.
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = root.join(format!(".tmp-{name}-{}.{n}", std::process::id()));
        if path.exists() {
            // Left by a crashed run whose pid we now have; nobody else can be writing it.
            let _ = fs::remove_dir_all(&path);
        }
        fs::create_dir(&path).map_err(ReleaseError::io("create directory", &path))?;
        Ok(Staging {
            path,
            committed: false,
        })
    }

    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// `renameat2(…, RENAME_NOREPLACE)`: fails with EEXIST instead of replacing anything.
#[expect(unsafe_code, reason = "libc::renameat2; std has no no-replace rename")]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let from = CString::new(from.as_os_str().as_bytes())?;
    let to = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both arguments are valid NUL-terminated strings that outlive the call;
    // renameat2 only reads them and keeps no pointer.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The README placed in every release: how to check it with stock tools only.
fn readme(release: &Release<'_>, name: &str, artifacts: &[FileEntry]) -> String {
    let inputs = release.inputs;
    let key = release.key;
    let (id, b64) = (key.id(), key.public_key_base64());
    let first = artifacts.first().map_or("FILE", |a| a.name.as_str());
    let what = match release.signed_by {
        SignedBy::Release => format!("XSC release {}", inputs.version),
        SignedBy::Dev => format!(
            "XSC release CANDIDATE {name} (version {}).\nIt is signed with a machine-local DEVELOPMENT key: it is not a release",
            inputs.version
        ),
    };
    let list: String = artifacts
        .iter()
        .map(|a| format!("  {}  ({} bytes)\n", a.name, a.size))
        .collect();
    format!(
        "{what}.
Built from commit {commit}, profile {profile}.

Files:
{list}
HOW TO CHECK THIS RELEASE
=========================

You need `minisign` (https://jedisct1.github.io/minisign/) and `sha256sum` (GNU coreutils).

1. Get the project's public key from a place you trust, not from this directory: the file
   releases/keys/keys.json in the xsc-release git repository lists the keys and which one is
   current. The key that signed this directory has id {id}:

       {b64}

   Compare it with the published key. (minisign.pub in this directory holds the same key for
   convenience only: whoever can change files here can change it too.)

2. Check the signed checksum list, then every file against it:

       minisign -Vm SHA256SUMS -P {b64}
       sha256sum -c SHA256SUMS

   The first must print \"Signature and comment signature verified\" and a trusted comment
   naming SHA256SUMS, version {version} and commit {commit}; the second must print OK for
   every file. If either fails, do not use the files.

3. Each file also has its own signature, whose trusted comment names the file, its SHA-256,
   the version and the commit:

       minisign -Vm {first} -P {b64}

   or with a key file: the project's xsc-release-{id}.pub, or minisign.pub from this
   directory once you have compared its second line with the key above:

       minisign -Vm {first} -p minisign.pub

4. Or check everything at once with the xsc-release tool:

       xsc-release verify <this directory> --keyring releases/keys/keys.json

manifest.json lists versions, build inputs and test results; provenance.intoto.jsonl is SLSA
provenance in a DSSE envelope signed by the same key.
",
        commit = inputs.commit,
        profile = if inputs.profile.is_empty() {
            "-"
        } else {
            &inputs.profile
        },
        version = inputs.version,
    )
}

#[cfg(test)]
thread_local! {
    /// Test-only fault injection: the named step fails with an I/O error.
    pub(crate) static FAULT: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
fn fault(point: &'static str) -> Result<(), ReleaseError> {
    if FAULT.with(std::cell::Cell::get) == Some(point) {
        return Err(ReleaseError::Io {
            action: "continue (injected fault)",
            path: PathBuf::from(point),
            source: io::Error::other("injected"),
        });
    }
    Ok(())
}

#[cfg(not(test))]
#[inline]
fn fault(_point: &'static str) -> Result<(), ReleaseError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noreplace_rename_refuses_even_an_empty_target() {
        // rename(2) would silently replace an empty directory; renameat2 must not.
        let root = tempfile::tempdir().unwrap();
        let (from, to) = (root.path().join("staged"), root.path().join("1.0.0"));
        fs::create_dir(&from).unwrap();
        fs::write(from.join("f"), b"x").unwrap();
        fs::create_dir(&to).unwrap();
        let err = rename_noreplace(&from, &to).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
        assert!(from.join("f").exists() && fs::read_dir(&to).unwrap().next().is_none());
        fs::remove_dir(&to).unwrap();
        rename_noreplace(&from, &to).unwrap();
        assert!(to.join("f").exists());
    }

    #[test]
    fn version_fields_are_validated() {
        assert!(validate_field("version", "0.1.0+dev.3", false).is_ok());
        for bad in ["", ".hidden", "1.0 beta", "1.0\tx", "a:b", "x/y", "é"] {
            assert!(validate_field("version", bad, false).is_err(), "{bad:?}");
        }
    }
}
