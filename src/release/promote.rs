//! The release flow: the pipeline makes a dev-signed *candidate*; `promote` re-verifies it,
//! applies the release gates (no failed tests, no flaky tests unless allowed, a proper key)
//! and re-signs it with the release key into `<publish root>/X.Y.Z/`.
//!
//! Trust in a candidate comes from the keys the caller passes (the machine's dev key from
//! the cache, and/or a keyring), never from the `minisign.pub` inside the candidate. Both
//! steps hold the lock of the root they write to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::checksums::Digests;
use super::error::ReleaseError;
use super::keys::{self, KeyId, KeyStatus, ReleaseKey, TrustedKeys};
use super::lock::PublishLock;
use super::manifest::{CandidateRef, Manifest, ReleaseInputs, SignedBy, names};
use super::publish::{Published, Release, publish};
use super::verify::{VerifyReport, verify_release};
use crate::sys::process::{Cmd, run};

/// A candidate id: `<version>-g<commit12>-<UTC time>`, unique per build and sortable.
pub(crate) fn candidate_id(inputs: &ReleaseInputs, timestamp: u64) -> String {
    let short = &inputs.commit[..inputs.commit.len().min(12)];
    let when =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(timestamp)).to_string();
    let compact: String = when.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{}-g{short}-{compact}", inputs.version)
}

/// Signs `inputs` with `key` (normally the dev key) into `<candidates_root>/<candidate id>`.
pub(crate) fn create_candidate(
    inputs: &ReleaseInputs,
    key: &ReleaseKey,
    candidates_root: &Path,
) -> Result<Published, ReleaseError> {
    let _lock = PublishLock::acquire(candidates_root)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let release = Release {
        inputs,
        key,
        signed_by: SignedBy::Dev,
        promoted_from: None,
        expect_sha256: None,
        timestamp: Some(now),
    };
    publish(&release, candidates_root, &candidate_id(inputs, now))
}

/// The usual pipeline call: a candidate signed with the machine's dev key.
pub(crate) fn create_dev_candidate(
    inputs: &ReleaseInputs,
    cache_dir: &Path,
    candidates_root: &Path,
) -> Result<Published, ReleaseError> {
    create_candidate(inputs, &keys::dev_key(cache_dir)?, candidates_root)
}

/// Resolves a candidate id (a directory name under `candidates_root`, or a path).
pub(crate) fn find_candidate(candidates_root: &Path, id: &str) -> Result<PathBuf, ReleaseError> {
    let by_name = candidates_root.join(id);
    let path = if !id.contains('/') && by_name.is_dir() {
        by_name
    } else {
        PathBuf::from(id)
    };
    if path.is_dir() {
        Ok(path)
    } else {
        Err(ReleaseError::CandidateNotFound {
            id: id.to_string(),
            path: candidates_root.join(id),
        })
    }
}

/// Checks `X.Y.Z` with decimal numbers and no leading zeros (semver core, nothing else).
pub(crate) fn validate_version(version: &str) -> Result<(), ReleaseError> {
    let parts: Vec<&str> = version.split('.').collect();
    let ok = parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 9
                && p.bytes().all(|b| b.is_ascii_digit())
                && (*p == "0" || !p.starts_with('0'))
        });
    if ok {
        Ok(())
    } else {
        Err(ReleaseError::BadField {
            field: "version",
            value: version.to_string(),
            expected: "X.Y.Z (semver, e.g. 1.4.0)",
        })
    }
}

/// What `promote` is allowed to do.
#[derive(Debug)]
pub(crate) struct PromoteOptions<'a> {
    /// Where `X.Y.Z/` is created.
    pub publish_root: &'a Path,
    /// Keys the candidate may be signed with (normally the dev key's public half).
    pub trusted: &'a TrustedKeys,
    /// Promote even when some tests only passed on a rerun.
    pub allow_flaky: bool,
    /// The machine's dev key, which must never sign a release.
    pub dev_key_id: Option<KeyId>,
    /// When given, the release key must be listed there as `current`.
    pub keyring: Option<&'a Path>,
}

/// A finished promote.
#[derive(Debug)]
pub(crate) struct Promoted {
    /// The new release.
    pub published: Published,
    /// The candidate's re-verification.
    pub candidate_report: VerifyReport,
}

/// Promotes the candidate in `candidate_dir` to release `version`, signed with `key`.
pub(crate) fn promote(
    candidate_dir: &Path,
    version: &str,
    key: &ReleaseKey,
    opts: &PromoteOptions<'_>,
) -> Result<Promoted, ReleaseError> {
    validate_version(version)?;
    if opts.dev_key_id == Some(key.id()) {
        return Err(ReleaseError::DevKeyForRelease { key_id: key.id() });
    }
    if let Some(ring_path) = opts.keyring {
        let (ring, _) = keys::read_keyring(ring_path)?;
        let current = ring
            .keys
            .iter()
            .any(|k| k.status == KeyStatus::Current && k.id == key.id().to_string());
        if !current {
            return Err(ReleaseError::KeyNotCurrent {
                key_id: key.id(),
                keyring: ring_path.to_path_buf(),
            });
        }
    }
    let _lock = PublishLock::acquire(opts.publish_root)?;
    let target = opts.publish_root.join(version);
    if target.symlink_metadata().is_ok() {
        return Err(ReleaseError::VersionExists {
            version: version.to_string(),
            path: target,
        });
    }

    let report = verify_release(candidate_dir, opts.trusted)?;
    if let Some((subject, kind, message)) = report.failures().next() {
        return Err(ReleaseError::CandidateDidNotVerify {
            dir: candidate_dir.to_path_buf(),
            failures: report.failures().count(),
            first: format!("{subject}: {kind}: {message}"),
        });
    }
    let manifest_path = candidate_dir.join(names::MANIFEST);
    let manifest_bytes =
        std::fs::read(&manifest_path).map_err(ReleaseError::io("read", &manifest_path))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|source| ReleaseError::ManifestParse {
            path: manifest_path.clone(),
            source,
        })?;
    let candidate = candidate_dir.file_name().map_or_else(
        || candidate_dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    if manifest.tests.failed > 0 {
        return Err(ReleaseError::RedGate {
            candidate,
            failed: manifest.tests.failed,
        });
    }
    if !manifest.flaky.is_empty() && !opts.allow_flaky {
        return Err(ReleaseError::FlakyCandidate {
            candidate,
            flaky: manifest.flaky.clone(),
        });
    }

    let mut inputs = manifest.to_inputs(candidate_dir);
    inputs.version = version.to_string();
    let expect: BTreeMap<String, String> = manifest
        .artifacts()
        .map(|a| (a.name.clone(), a.sha256.clone()))
        .collect();
    let release = Release {
        inputs: &inputs,
        key,
        signed_by: SignedBy::Release,
        promoted_from: Some(CandidateRef {
            id: candidate,
            key_id: manifest.key_id.clone(),
            manifest_sha256: Digests::of_bytes(&manifest_bytes).sha256_hex(),
        }),
        expect_sha256: Some(expect),
        timestamp: None,
    };
    let published = publish(&release, opts.publish_root, version)?;
    Ok(Promoted {
        published,
        candidate_report: report,
    })
}

/// The commit checked out in `repo` (`git rev-parse HEAD`), for [`ReleaseInputs::commit`].
pub(crate) async fn git_commit(repo: &Path) -> Result<String, ReleaseError> {
    let cmd = Cmd::new(["git", "rev-parse", "--verify", "HEAD"])
        .cwd(repo)
        .deadline(Duration::from_secs(30));
    let out = run(&cmd, None).await.map_err(ReleaseError::Git)?;
    Ok(out.stdout.trim().to_string())
}
