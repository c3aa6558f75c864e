//! The release half: minisign keys, one-pass hashing and signing, `SHA256SUMS`, manifest and
//! SLSA provenance, atomic never-overwriting publish, verification, and promotion of a
//! dev-signed candidate to a release. See docs/releasing.md.
//!
//! This module only re-exports; each file owns one concern.

pub mod checksums;
pub mod error;
pub mod keys;
pub mod lock;
pub mod manifest;
pub mod promote;
pub mod provenance;
pub mod publish;
pub mod sign;
pub mod verify;

#[cfg(test)]
pub mod tests;

pub use checksums::{Digests, SumEntry, hash_file, hash_stream, parse_sums, render_sums};
pub use error::{ReleaseError, is_disk_full};
pub use keys::{
    GeneratedKey, KeyId, KeyStatus, Keyring, KeyringEntry, PASSWORD_FILE_ENV, PasswordSource,
    Protection, ReleaseKey, TrustedKey, TrustedKeys, dev_key, dev_key_paths, generate,
    load_public_key, load_secret_key, public_key_from_base64,
};
pub use lock::PublishLock;
pub use manifest::{
    CandidateRef, FileEntry, FileRole, InputDigest, InputKind, Manifest, ReleaseInputs, SignedBy,
    SourceVersions, TestSummary, names,
};
pub use promote::{
    PromoteOptions, Promoted, candidate_id, create_candidate, create_dev_candidate, find_candidate,
    git_commit, promote as promote_candidate, validate_version,
};
pub use provenance::{Envelope, EnvelopeSignature};
pub use publish::{Published, Release, publish};
pub use sign::{ParsedSig, SigError, TrustedComment, minisig};
pub use verify::{Check, FailureKind, Outcome, VerifyReport, verify_release};
