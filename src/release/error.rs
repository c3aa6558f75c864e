//! The one error type of the release half (`keygen`, candidates, `promote`, `verify`).
//!
//! Every variant carries the path, key id or version it is about and maps to exactly one
//! documented exit code. No variant ever holds a password or secret key bytes. A release that
//! fails verification is *not* an error here: `verify` returns a report (exit 1); only
//! `promote`, which needs a good candidate, turns a bad report into [`ReleaseError`].

use std::io;
use std::path::PathBuf;

use crate::exit_code::ExitCode;
use crate::sys::process::ProcessError;

use super::keys::KeyId;

/// Why a release command could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Reading or writing a file failed (a full disk lands here too).
    #[error("failed to {action} {}{}", .path.display(), disk_full_hint(.source))]
    Io {
        /// What we were doing, as a verb phrase ("write", "read", "create directory").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// An input file named by the caller does not exist.
    #[error("input file not found: {}", .path.display())]
    MissingInput {
        /// The path that was given.
        path: PathBuf,
    },
    /// An artifact's file name cannot go into a release directory.
    #[error("artifact name {name:?} is not allowed: {reason}")]
    BadArtifactName {
        /// The offending name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A release field (version, commit, profile…) has characters that would break the
    /// checksum list or a trusted comment.
    #[error("invalid {field} {value:?}: {expected}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is expected instead.
        expected: &'static str,
    },
    /// A key file could not be read.
    #[error("cannot read key file {}", .path.display())]
    KeyUnreadable {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A key file is not a minisign key.
    #[error("{} is not a minisign {kind} key: {reason}", .path.display())]
    KeyMalformed {
        /// The key file.
        path: PathBuf,
        /// "secret" or "public".
        kind: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `minisign -G -W` (CLI 0.11) writes unencrypted keys with an all-zero checksum, which
    /// the minisign crate rejects as "Corrupted key"; say what actually happened instead.
    #[error(
        "secret key {} was made with `minisign -G -W` and has no checksum; re-create it with a password or with `xsc-release keygen --unencrypted`",
        .path.display()
    )]
    CliUnencryptedKey {
        /// The key file.
        path: PathBuf,
    },
    /// The password does not decrypt the key.
    #[error("wrong password for secret key {}", .path.display())]
    WrongPassword {
        /// The key file.
        path: PathBuf,
    },
    /// A password is needed and there is no way to get one.
    #[error(
        "no password for {what}: set XSC_SIGNING_PASSWORD_FILE to a file holding it, run on a terminal, or use --unencrypted"
    )]
    NoPassword {
        /// What the password is for ("secret key /path", "the new key").
        what: String,
    },
    /// The password file named by `XSC_SIGNING_PASSWORD_FILE` could not be read.
    #[error("cannot read password file {}", .path.display())]
    PasswordFile {
        /// The password file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// An empty password protects nothing and trips old minisign crate versions.
    #[error("empty password; use --unencrypted if an unprotected key is really wanted")]
    EmptyPassword,
    /// The two passwords typed at the prompt differ.
    #[error("passwords do not match")]
    PasswordMismatch,
    /// A secret key that others can read is treated as leaked.
    #[error(
        "refusing to use secret key {}: mode {mode:04o} lets group or others read it (run `chmod 600 {}`)",
        .path.display(), .path.display()
    )]
    UnsafeKeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Key generation never overwrites.
    #[error("refusing to overwrite existing key file {}", .path.display())]
    KeyExists {
        /// The file that is already there.
        path: PathBuf,
    },
    /// The development key must not sign a release.
    #[error("refusing to sign release with the development key {key_id}")]
    DevKeyForRelease {
        /// The dev key's id.
        key_id: KeyId,
    },
    /// The keyring does not list the signing key as the current key.
    #[error("key {key_id} is not the current key in {}", .keyring.display())]
    KeyNotCurrent {
        /// The signing key's id.
        key_id: KeyId,
        /// The keyring file.
        keyring: PathBuf,
    },
    /// `keys.json` cannot be used.
    #[error("bad keyring {}: {reason}", .path.display())]
    Keyring {
        /// The keyring file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `verify` was given no key to check against.
    #[error("no trusted key given: pass --pubkey FILE or --keyring releases/keys/keys.json")]
    NoTrustedKey,
    /// The minisign crate failed (key generation, boxing).
    #[error("minisign: {context}")]
    Minisign {
        /// What we were doing.
        context: &'static str,
        /// The crate's error.
        #[source]
        source: minisign::PError,
    },
    /// The target version directory is already there (also when another promote won a race).
    #[error("version {version} already exists at {}", .path.display())]
    VersionExists {
        /// The version (or candidate id).
        version: String,
        /// The existing directory.
        path: PathBuf,
    },
    /// Another candidate/promote holds the publish root.
    #[error(
        "another release is in progress in {} (lock held by pid {})",
        .root.display(), .pid.map_or_else(|| "unknown".to_string(), |p| p.to_string())
    )]
    LockHeld {
        /// The publish root.
        root: PathBuf,
        /// The holder, as written into the lock file.
        pid: Option<u32>,
    },
    /// The filesystem cannot rename without replacing, so a release could clobber another.
    #[error("filesystem of {} does not support RENAME_NOREPLACE; refusing to publish there", .path.display())]
    NoReplaceUnsupported {
        /// The publish root.
        path: PathBuf,
    },
    /// `promote` was given a candidate id that is not there.
    #[error("candidate {id} not found at {}", .path.display())]
    CandidateNotFound {
        /// The id given.
        id: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The candidate failed re-verification.
    #[error("candidate {} did not verify: {failures} check(s) failed, first: {first}", .dir.display())]
    CandidateDidNotVerify {
        /// The candidate directory.
        dir: PathBuf,
        /// How many checks failed.
        failures: usize,
        /// The first failure, for the one-line message.
        first: String,
    },
    /// The candidate's own tests failed.
    #[error("candidate {candidate} is red: {failed} test(s) failed")]
    RedGate {
        /// The candidate id.
        candidate: String,
        /// The failed-test count from its manifest.
        failed: u32,
    },
    /// The candidate passed only after reruns.
    #[error("candidate {candidate} has flaky tests ({}); pass --allow-flaky to promote anyway", .flaky.join(", "))]
    FlakyCandidate {
        /// The candidate id.
        candidate: String,
        /// The flaky test names.
        flaky: Vec<String>,
    },
    /// A manifest could not be parsed (a verified candidate always has a good one).
    #[error("cannot parse manifest {}", .path.display())]
    ManifestParse {
        /// The manifest file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// `git` failed while looking up the commit.
    #[error("cannot determine the git commit")]
    Git(#[source] ProcessError),
    /// Talking to a publish target or a published URL failed (network, credentials, ssh).
    #[error("cannot {action} {url}: {detail}")]
    Remote {
        /// The remote file or directory.
        url: String,
        /// What we were doing ("list", "upload", "download").
        action: String,
        /// What the client or rsync said.
        detail: String,
    },
    /// The target already holds this version, complete and different: never replaced.
    #[error(
        "{url} is already published (its manifest.json differs from this one); a published version is never replaced"
    )]
    RemoteVersionExists {
        /// The published directory.
        url: String,
    },
    /// `--publish NAME` names no `[publish.NAME]` table.
    #[error(
        "no publish target {name:?} in xsc.toml (configured: {known}); add a [publish.{name}] table (docs/publish.md)"
    )]
    UnknownTarget {
        /// The name given.
        name: String,
        /// The configured names.
        known: String,
    },
    /// A worker thread died (a bug).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

fn disk_full_hint(err: &io::Error) -> &'static str {
    if is_disk_full(err) {
        " (disk full)"
    } else {
        ""
    }
}

/// True when `err` means the filesystem is out of space or quota.
pub(crate) fn is_disk_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || err.kind() == io::ErrorKind::StorageFull
}

impl ReleaseError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        use ReleaseError::*;
        match self {
            Io { .. }
            | Minisign { .. }
            | NoReplaceUnsupported { .. }
            | Internal(_)
            | Remote { .. } => ExitCode::Harness,
            Git(e) if e.is_not_found() => ExitCode::Harness,
            Git(_) => ExitCode::BadInput,
            MissingInput { .. }
            | BadArtifactName { .. }
            | BadField { .. }
            | KeyUnreadable { .. }
            | KeyMalformed { .. }
            | CliUnencryptedKey { .. }
            | WrongPassword { .. }
            | NoPassword { .. }
            | PasswordFile { .. }
            | EmptyPassword
            | PasswordMismatch
            | Keyring { .. }
            | NoTrustedKey
            | CandidateNotFound { .. }
            | UnknownTarget { .. } => ExitCode::BadInput,
            UnsafeKeyPermissions { .. }
            | KeyExists { .. }
            | DevKeyForRelease { .. }
            | KeyNotCurrent { .. }
            | VersionExists { .. }
            | RemoteVersionExists { .. }
            | LockHeld { .. }
            | RedGate { .. }
            | FlakyCandidate { .. } => ExitCode::ReleaseRefused,
            CandidateDidNotVerify { .. } | ManifestParse { .. } => ExitCode::ProductFailed,
        }
    }

    /// Shorthand for [`ReleaseError::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ReleaseError::Io {
            action,
            path,
            source,
        }
    }
}
