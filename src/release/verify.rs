//! Checking a release (or candidate) directory against trusted keys, and the structured
//! report `verify` prints.
//!
//! Only the keys passed in are trusted; the directory's own `minisign.pub` is checked like
//! any other listed file but never used as a key. Every file is read once: its SHA-256 is
//! compared with `SHA256SUMS` and its BLAKE2b-512 checks its `.minisig`. The small metadata
//! files (`SHA256SUMS`, `manifest.json`) are additionally verified with the minisign crate's
//! own implementation, so a bug in our signature code cannot pass alone.
//!
//! A failed check is a result, not an error: [`verify_release`] fails only when it cannot
//! look at all (no directory, no key).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::checksums::{self, Digests, SumEntry, default_jobs, parallel_map};
use super::error::ReleaseError;
use super::keys::{KeyId, TrustedKeys};
use super::manifest::{Manifest, names};
use super::provenance;
use super::sign::{ParsedSig, TrustedComment};
use crate::exit_code::ExitCode;

/// What kind of problem a failed check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FailureKind {
    /// A listed file or a signature is not there.
    MissingFile,
    /// A file's bytes differ from what was signed.
    ChangedFile,
    /// Signed by a key that is not trusted.
    UntrustedKey,
    /// A signature is malformed, truncated or does not verify.
    BadSignature,
    /// A signature belongs to another file (swapped `.minisig`s).
    SwappedSignature,
    /// The manifest disagrees with `SHA256SUMS` or the signatures.
    ManifestMismatch,
    /// The provenance disagrees with the manifest or does not verify.
    ProvenanceMismatch,
    /// A file in the directory is not listed in `SHA256SUMS`.
    UnlistedFile,
    /// `SHA256SUMS` cannot be parsed.
    Malformed,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::MissingFile => "missing file",
            FailureKind::ChangedFile => "changed file",
            FailureKind::UntrustedKey => "untrusted key",
            FailureKind::BadSignature => "bad signature",
            FailureKind::SwappedSignature => "swapped signature",
            FailureKind::ManifestMismatch => "manifest mismatch",
            FailureKind::ProvenanceMismatch => "provenance mismatch",
            FailureKind::UnlistedFile => "unlisted file",
            FailureKind::Malformed => "malformed",
        })
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Passed; the text says what was established.
    Ok(String),
    /// Failed.
    Failed {
        /// The category.
        kind: FailureKind,
        /// What exactly is wrong.
        message: String,
    },
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Check {
    /// The file checked.
    pub subject: String,
    /// The result.
    pub outcome: Outcome,
}

/// Everything `verify` found.
#[derive(Clone, Debug)]
pub(crate) struct VerifyReport {
    /// The directory checked.
    pub dir: PathBuf,
    /// Checks in the order made.
    pub checks: Vec<Check>,
    /// The manifest, when it parsed.
    pub manifest: Option<Manifest>,
}

impl VerifyReport {
    fn ok(&mut self, subject: &str, detail: impl Into<String>) {
        self.checks.push(Check {
            subject: subject.to_string(),
            outcome: Outcome::Ok(detail.into()),
        });
    }

    fn fail(&mut self, subject: &str, kind: FailureKind, message: impl Into<String>) {
        self.checks.push(Check {
            subject: subject.to_string(),
            outcome: Outcome::Failed {
                kind,
                message: message.into(),
            },
        });
    }

    /// True when every check passed.
    pub(crate) fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The failed checks.
    pub(crate) fn failures(&self) -> impl Iterator<Item = (&str, FailureKind, &str)> {
        self.checks.iter().filter_map(|c| match &c.outcome {
            Outcome::Failed { kind, message } => {
                Some((c.subject.as_str(), *kind, message.as_str()))
            }
            Outcome::Ok(_) => None,
        })
    }

    /// The distinct kinds of failure found; the tests' view.
    #[cfg(test)]
    pub(crate) fn failure_kinds(&self) -> BTreeSet<FailureKind> {
        self.failures().map(|(_, k, _)| k).collect()
    }

    /// 0 when the release verifies, 1 when it does not.
    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.passed() {
            ExitCode::Success
        } else {
            ExitCode::ProductFailed
        }
    }

    /// The report as printed by `xsc-release verify`.
    pub(crate) fn render(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.subject.len())
            .max()
            .unwrap_or(0);
        let mut out = format!("verify {}\n", self.dir.display());
        for c in &self.checks {
            let _ = match &c.outcome {
                Outcome::Ok(detail) => writeln!(out, "  ok    {:width$}  {detail}", c.subject),
                Outcome::Failed { kind, message } => {
                    writeln!(out, "  FAIL  {:width$}  {kind}: {message}", c.subject)
                }
            };
        }
        let failed = self.failures().count();
        if failed == 0 {
            let _ = writeln!(out, "release verifies: {} checks passed", self.checks.len());
        } else {
            let _ = writeln!(
                out,
                "release DOES NOT VERIFY: {failed} of {} checks failed",
                self.checks.len()
            );
        }
        out
    }
}

/// Verifies the release in `dir` against `trusted` keys.
pub(crate) fn verify_release(
    dir: &Path,
    trusted: &TrustedKeys,
) -> Result<VerifyReport, ReleaseError> {
    if trusted.is_empty() {
        return Err(ReleaseError::NoTrustedKey);
    }
    if !dir.is_dir() {
        return Err(ReleaseError::MissingInput {
            path: dir.to_path_buf(),
        });
    }
    let mut r = VerifyReport {
        dir: dir.to_path_buf(),
        checks: Vec::new(),
        manifest: None,
    };
    let mut signers = SignerLog::default();

    let sums_bytes = match fs::read(dir.join(names::SUMS)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            r.fail(
                names::SUMS,
                FailureKind::MissingFile,
                "SHA256SUMS is missing; nothing can be checked",
            );
            return Ok(r);
        }
        Err(source) => {
            return Err(ReleaseError::Io {
                action: "read",
                path: dir.join(names::SUMS),
                source,
            });
        }
    };
    let sums_digests = Digests::of_bytes(&sums_bytes);
    check_signature(
        &mut r,
        &mut signers,
        dir,
        names::SUMS,
        &sums_digests,
        Some(&sums_bytes),
        trusted,
    );
    let entries = match std::str::from_utf8(&sums_bytes)
        .map_err(|_| "not UTF-8".to_string())
        .and_then(checksums::parse_sums)
    {
        Ok(entries) => entries,
        Err(reason) => {
            r.fail(names::SUMS, FailureKind::Malformed, reason);
            return Ok(r);
        }
    };

    let hashed = parallel_map(&entries, default_jobs(), |e| {
        checksums::hash_file(&dir.join(&e.name))
    });
    let mut present: BTreeMap<&str, Digests> = BTreeMap::new();
    for (e, result) in entries.iter().zip(hashed) {
        match result {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                r.fail(
                    &e.name,
                    FailureKind::MissingFile,
                    "listed in SHA256SUMS but missing",
                );
            }
            Err(source) => {
                return Err(ReleaseError::Io {
                    action: "read",
                    path: dir.join(&e.name),
                    source,
                });
            }
            Ok(d) => {
                if d.sha256_hex() == e.sha256 {
                    r.ok(
                        &e.name,
                        format!(
                            "sha256 {}… matches SHA256SUMS ({} bytes)",
                            &e.sha256[..16],
                            d.size
                        ),
                    );
                } else {
                    r.fail(
                        &e.name,
                        FailureKind::ChangedFile,
                        format!("sha256 is {}, SHA256SUMS says {}", d.sha256_hex(), e.sha256),
                    );
                }
                let content = if e.name == names::MANIFEST {
                    fs::read(dir.join(&e.name)).ok()
                } else {
                    None
                };
                check_signature(
                    &mut r,
                    &mut signers,
                    dir,
                    &e.name,
                    &d,
                    content.as_deref(),
                    trusted,
                );
                present.insert(e.name.as_str(), d);
            }
        }
    }

    check_unlisted(&mut r, dir, &entries)?;
    check_manifest(&mut r, dir, &entries, &present, &signers, trusted);
    Ok(r)
}

/// What the verified signatures said, for the manifest cross-checks.
#[derive(Default)]
struct SignerLog {
    /// file → (key id, trusted comment) of its authentic signature.
    comments: BTreeMap<String, (KeyId, TrustedComment)>,
}

fn check_signature(
    r: &mut VerifyReport,
    log: &mut SignerLog,
    dir: &Path,
    file: &str,
    digests: &Digests,
    content: Option<&[u8]>,
    trusted: &TrustedKeys,
) {
    let sig_name = format!("{file}{}", names::SIG_SUFFIX);
    let text = match fs::read_to_string(dir.join(&sig_name)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return r.fail(
                &sig_name,
                FailureKind::MissingFile,
                format!("{file} has no signature"),
            );
        }
        Err(e) => {
            return r.fail(
                &sig_name,
                FailureKind::BadSignature,
                format!("unreadable: {e}"),
            );
        }
    };
    let parsed = match ParsedSig::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            return r.fail(
                &sig_name,
                FailureKind::BadSignature,
                format!("{e} (truncated or edited?)"),
            );
        }
    };
    let Some(key) = trusted.get(parsed.key_id) else {
        let known: Vec<String> = trusted.keys().iter().map(|k| k.id.to_string()).collect();
        return r.fail(
            &sig_name,
            FailureKind::UntrustedKey,
            format!(
                "signed by key {}, which is not trusted (trusted: {})",
                parsed.key_id,
                known.join(", ")
            ),
        );
    };
    if let Err(e) = parsed.verify_comment(&key.verifying) {
        return r.fail(&sig_name, FailureKind::BadSignature, e.to_string());
    }
    let Some(comment) = TrustedComment::parse(&parsed.trusted_comment) else {
        return r.fail(
            &sig_name,
            FailureKind::BadSignature,
            format!(
                "trusted comment {:?} is not an xsc-release comment",
                parsed.trusted_comment
            ),
        );
    };
    if comment.file != file {
        return r.fail(
            &sig_name,
            FailureKind::SwappedSignature,
            format!(
                "signature is for {}, not {file} (signatures swapped?)",
                comment.file
            ),
        );
    }
    if comment.sha256 != digests.sha256_hex() {
        return r.fail(
            &sig_name,
            FailureKind::ChangedFile,
            format!(
                "signed sha256 is {}, the file's is {}",
                comment.sha256,
                digests.sha256_hex()
            ),
        );
    }
    if let Err(e) = parsed.verify_data(&key.verifying, &digests.blake2b) {
        return r.fail(&sig_name, FailureKind::BadSignature, e.to_string());
    }
    if let Some(data) = content
        && let Err(e) = crate_verify(&text, key, data)
    {
        return r.fail(
            &sig_name,
            FailureKind::BadSignature,
            format!("minisign crate rejects it: {e}"),
        );
    }
    let status = key.status.map_or_else(String::new, |s| format!(" ({s})"));
    r.ok(
        &sig_name,
        format!(
            "signed by {}{status}, version {} commit {}",
            key.id, comment.version, comment.commit
        ),
    );
    log.comments.insert(file.to_string(), (key.id, comment));
}

/// The minisign crate's verification of the same signature (independent implementation).
fn crate_verify(sig_text: &str, key: &super::keys::TrustedKey, data: &[u8]) -> Result<(), String> {
    let mut pk_bytes = b"Ed".to_vec();
    pk_bytes.extend_from_slice(&key.id.keynum());
    pk_bytes.extend_from_slice(key.verifying.as_bytes());
    let pk = minisign::PublicKey::from_bytes(&pk_bytes).map_err(|e| e.to_string())?;
    let sbox = minisign::SignatureBox::from_string(sig_text).map_err(|e| e.to_string())?;
    minisign::verify(&pk, &sbox, io::Cursor::new(data), true, false, false)
        .map_err(|e| e.to_string())
}

fn check_unlisted(
    r: &mut VerifyReport,
    dir: &Path,
    entries: &[SumEntry],
) -> Result<(), ReleaseError> {
    let mut allowed: BTreeSet<String> =
        [names::SUMS.to_string(), names::SUMS_SIG.to_string()].into();
    for e in entries {
        allowed.insert(e.name.clone());
        allowed.insert(format!("{}{}", e.name, names::SIG_SUFFIX));
    }
    // Directories are walked when a listed name lies below them (the package
    // repositories); any other directory is unlisted as a whole.
    let dirs: BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e.name.rsplit_once('/').map(|(d, _)| d))
        .flat_map(|d| {
            d.match_indices('/')
                .map(move |(i, _)| &d[..i])
                .chain(std::iter::once(d))
        })
        .collect();
    let mut extra: Vec<String> = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        for item in fs::read_dir(&here).map_err(ReleaseError::io("list", &here))? {
            let item = item.map_err(ReleaseError::io("list", &here))?;
            let base = item.file_name().to_string_lossy().into_owned();
            let name = if rel.is_empty() {
                base
            } else {
                format!("{rel}/{base}")
            };
            if item.file_type().is_ok_and(|t| t.is_dir()) && dirs.contains(name.as_str()) {
                stack.push(name);
            } else if !allowed.contains(&name) {
                extra.push(name);
            }
        }
    }
    extra.sort();
    for name in extra {
        r.fail(&name, FailureKind::UnlistedFile, "not listed in SHA256SUMS");
    }
    Ok(())
}

fn check_manifest(
    r: &mut VerifyReport,
    dir: &Path,
    entries: &[SumEntry],
    present: &BTreeMap<&str, Digests>,
    signers: &SignerLog,
    trusted: &TrustedKeys,
) {
    use FailureKind::{ManifestMismatch, MissingFile, ProvenanceMismatch};
    if !entries.iter().any(|e| e.name == names::MANIFEST) {
        return r.fail(
            names::MANIFEST,
            MissingFile,
            "manifest.json is not listed in SHA256SUMS",
        );
    }
    if !present.contains_key(names::MANIFEST) {
        return; // already reported missing
    }
    let manifest: Manifest = match fs::read(dir.join(names::MANIFEST))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            return r.fail(
                names::MANIFEST,
                ManifestMismatch,
                format!("cannot be parsed: {e}"),
            );
        }
    };
    let listed: BTreeMap<&str, &str> = entries
        .iter()
        .filter(|e| e.name != names::MANIFEST)
        .map(|e| (e.name.as_str(), e.sha256.as_str()))
        .collect();
    let in_manifest: BTreeMap<&str, &str> = manifest
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.sha256.as_str()))
        .collect();
    let mut problems = Vec::new();
    for (name, sha) in &in_manifest {
        match listed.get(name) {
            None => problems.push(format!("lists {name}, which SHA256SUMS lacks")),
            Some(s) if s != sha => {
                problems.push(format!("gives {name} sha256 {sha}, SHA256SUMS says {s}"));
            }
            Some(_) => {}
        }
    }
    for name in listed.keys().filter(|n| !in_manifest.contains_key(*n)) {
        problems.push(format!("does not list {name}"));
    }
    for (file, (key_id, comment)) in &signers.comments {
        if key_id.to_string() != manifest.key_id {
            problems.push(format!(
                "says key {} but {file} is signed by {key_id}",
                manifest.key_id
            ));
        }
        if comment.version != manifest.version || comment.commit != manifest.commit {
            problems.push(format!(
                "says version {} commit {}, the signature of {file} says version {} commit {}",
                manifest.version, manifest.commit, comment.version, comment.commit
            ));
        }
    }
    problems.dedup();
    if problems.is_empty() {
        r.ok(
            names::MANIFEST,
            format!(
                "consistent with SHA256SUMS ({} files), version {}, signed-by {:?}",
                in_manifest.len(),
                manifest.version,
                manifest.signed_by
            )
            .to_lowercase(),
        );
    } else {
        for p in problems {
            r.fail(names::MANIFEST, ManifestMismatch, p);
        }
    }

    // Provenance: signed by a trusted key, about exactly the manifest's artifacts.
    let prov = names::PROVENANCE;
    if !listed.contains_key(prov) {
        r.fail(prov, MissingFile, "provenance is not listed in SHA256SUMS");
    } else if present.contains_key(prov) {
        let opened = fs::read_to_string(dir.join(prov))
            .map_err(|e| provenance::OpenError::Invalid(e.to_string()))
            .and_then(|t| provenance::open(&t, trusted));
        match opened {
            Err(e @ provenance::OpenError::Untrusted(_)) => {
                r.fail(prov, FailureKind::UntrustedKey, e.to_string());
            }
            Err(e) => r.fail(prov, ProvenanceMismatch, e.to_string()),
            Ok((statement, key_id)) => {
                let mut want: Vec<(String, String)> = manifest
                    .artifacts()
                    .map(|a| (a.name.clone(), a.sha256.clone()))
                    .collect();
                want.sort();
                let got = provenance::subjects(&statement);
                if got != want {
                    r.fail(
                        prov,
                        ProvenanceMismatch,
                        format!("subjects {got:?} differ from the manifest's artifacts {want:?}"),
                    );
                } else if key_id.to_string() != manifest.key_id {
                    r.fail(
                        prov,
                        ProvenanceMismatch,
                        format!("signed by {key_id}, manifest says {}", manifest.key_id),
                    );
                } else {
                    r.ok(
                        prov,
                        format!(
                            "DSSE signature by {key_id}; {} subjects match the manifest",
                            got.len()
                        ),
                    );
                }
            }
        }
    }
    r.manifest = Some(manifest);
}
