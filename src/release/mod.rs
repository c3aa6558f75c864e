//! The release half: minisign keys, one-pass hashing and signing, `SHA256SUMS`, manifest and
//! SLSA provenance, atomic never-overwriting publish, verification, and promotion of a
//! dev-signed candidate to a release. See docs/releasing.md.
//!
//! This module only re-exports; each file owns one concern.

pub(crate) mod checksums;
pub(crate) mod error;
pub(crate) mod keys;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod promote;
pub(crate) mod provenance;
pub(crate) mod publish;
pub(crate) mod remote;
pub(crate) mod sign;
pub(crate) mod upload;
pub(crate) mod verify;

#[cfg(test)]
mod tests;

pub(crate) use error::ReleaseError;
pub(crate) use keys::{PasswordSource, dev_key_paths, load_secret_key};
pub(crate) use lock::PublishLock;
pub(crate) use manifest::{InputDigest, InputKind, ReleaseInputs, SourceVersions, TestSummary};
pub(crate) use promote::{create_candidate, create_dev_candidate, git_commit};
