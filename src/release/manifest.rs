//! What goes into a release: [`ReleaseInputs`] (filled by the pipeline) and `manifest.json`
//! (written into every candidate and release, signed like every other file).
//!
//! The manifest carries everything needed to rebuild the inputs of a promote from a
//! candidate directory alone, so `promote` never has to trust anything outside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checksums::hash_file;
use super::error::ReleaseError;

/// Manifest format version; bumped on incompatible changes.
pub(crate) const MANIFEST_SCHEMA: u32 = 1;

/// Fixed file names inside a release directory.
pub(crate) mod names {
    /// Checksum list.
    pub(crate) const SUMS: &str = "SHA256SUMS";
    /// Signature of the checksum list.
    pub(crate) const SUMS_SIG: &str = "SHA256SUMS.minisig";
    /// The manifest.
    pub(crate) const MANIFEST: &str = "manifest.json";
    /// in-toto/SLSA provenance in a DSSE envelope.
    pub(crate) const PROVENANCE: &str = "provenance.intoto.jsonl";
    /// How to check the release by hand.
    pub(crate) const README: &str = "README";
    /// The test report.
    pub(crate) const JUNIT: &str = "junit.xml";
    /// The signer's public key (a convenience; verification never trusts it).
    pub(crate) const PUBKEY: &str = "minisign.pub";
    /// Suffix of signature files.
    pub(crate) const SIG_SUFFIX: &str = ".minisig";

    /// Names artifacts may not take.
    pub(crate) const RESERVED: [&str; 7] =
        [SUMS, SUMS_SIG, MANIFEST, PROVENANCE, README, JUNIT, PUBKEY];
}

/// Who signed a candidate or release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SignedBy {
    /// The per-machine development key: a candidate, not a release.
    Dev,
    /// A project release key (listed in `releases/keys/keys.json`).
    Release,
}

/// Kind of a build input whose digest is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum InputKind {
    /// An upstream source tarball or tree.
    Source,
    /// One patch of a series.
    Patch,
    /// A whole patch series file.
    PatchSeries,
    /// A kernel or build configuration.
    Config,
    /// A Debian package used in the image.
    Deb,
    /// A compiler or other tool.
    Toolchain,
    /// Anything else.
    Other,
}

/// A build input and its digest (provenance `resolvedDependencies`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct InputDigest {
    /// What kind of input.
    pub kind: InputKind,
    /// Name (file name, package name…).
    pub name: String,
    /// Where it came from (URL, `pkg:deb/…` purl), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

impl InputDigest {
    /// Hashes a file into an input record named after the file.
    pub(crate) fn from_file(
        kind: InputKind,
        path: &Path,
        uri: Option<String>,
    ) -> Result<Self, ReleaseError> {
        let digests = hash_file(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ReleaseError::MissingInput {
                    path: path.to_path_buf(),
                }
            } else {
                ReleaseError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(InputDigest {
            kind,
            name,
            uri,
            sha256: digests.sha256_hex(),
        })
    }
}

/// Upstream versions the release is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct SourceVersions {
    /// Linux kernel version (e.g. `6.1.192`).
    pub kernel: String,
    /// glibc version (e.g. `2.36`).
    pub glibc: String,
    /// Debian suite of the userland (e.g. `bookworm`).
    pub debian_suite: String,
}

/// Test results of the run that produced the candidate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct TestSummary {
    /// Cases that passed (flaky ones included).
    pub passed: u32,
    /// Cases that failed.
    pub failed: u32,
    /// Cases skipped.
    pub skipped: u32,
}

/// Everything the pipeline hands over to make a candidate.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReleaseInputs {
    /// Version of the product (`X.Y.Z` for releases; anything tidy for candidates).
    pub version: String,
    /// Full git commit id the artifacts were built from.
    pub commit: String,
    /// Files to publish (kernel, ISOs…); the directory gets their base names.
    pub artifacts: Vec<PathBuf>,
    /// Files published under a relative path (the package repositories: `apt/InRelease`,
    /// `rpm/repodata/repomd.xml`…), listed and signed like the others.
    pub artifact_paths: Vec<(String, PathBuf)>,
    /// JUnit report of the test run, copied in as `junit.xml`.
    pub junit: Option<PathBuf>,
    /// Upstream versions.
    pub sources: SourceVersions,
    /// Digests of every input: sources, patches, series, configs, .debs, toolchain.
    pub inputs: Vec<InputDigest>,
    /// Toolchain versions by tool (`gcc`, `rustc`, `qemu`…).
    pub toolchain: BTreeMap<String, String>,
    /// Test counts.
    pub tests: TestSummary,
    /// Cases that passed only on a rerun.
    pub flaky: Vec<String>,
    /// Bench figures (`scenario/figure`) that regressed and were published anyway
    /// (`candidate --allow-regression`).
    pub allowed_regressions: Vec<String>,
    /// Kernel/build profile name.
    pub profile: String,
    /// `SOURCE_DATE_EPOCH` of the build, when reproducible.
    pub source_date_epoch: Option<u64>,
    /// Provenance builder id (`runDetails.builder.id`); a default names this tool.
    pub builder_id: Option<String>,
    /// Deliverables left out of this release, each with why (an EL install ISO whose
    /// base ISO is not configured: its gate was not applicable).
    pub not_built: BTreeMap<String, String>,
    /// How the package repositories (`apt/`, `rpm/`) are signed, in words (`GPG-signed by
    /// <fingerprint> …` or `unsigned …`); `None` when the release has none.
    pub repository_signing: Option<String>,
}

/// Role of a file in a release directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FileRole {
    /// A product file (kernel image, ISO…).
    Artifact,
    /// The test report.
    Junit,
    /// The provenance envelope.
    Provenance,
    /// The human instructions.
    Readme,
    /// The signer's public key.
    Pubkey,
}

/// A file listed in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct FileEntry {
    /// File name in the release directory.
    pub name: String,
    /// What it is.
    pub role: FileRole,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// Where a promoted release came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct CandidateRef {
    /// Candidate id (its directory name).
    pub id: String,
    /// Key that signed the candidate.
    pub key_id: String,
    /// SHA-256 of the candidate's `manifest.json`.
    pub manifest_sha256: String,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct Manifest {
    /// [`MANIFEST_SCHEMA`].
    pub schema: u32,
    /// Version.
    pub version: String,
    /// Git commit.
    pub commit: String,
    /// Kernel/build profile.
    pub profile: String,
    /// Dev-signed candidate or release.
    pub signed_by: SignedBy,
    /// Id of the key that signed every file.
    pub key_id: String,
    /// Signing time, RFC 3339 UTC.
    pub created: String,
    /// `SOURCE_DATE_EPOCH` of the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
    /// The candidate this release was promoted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<CandidateRef>,
    /// Upstream versions.
    pub sources: SourceVersions,
    /// Toolchain versions.
    pub toolchain: BTreeMap<String, String>,
    /// Input digests.
    pub inputs: Vec<InputDigest>,
    /// Test counts.
    pub tests: TestSummary,
    /// Flaky test names.
    pub flaky: Vec<String>,
    /// What this release leaves out and why (`alma` → "the AlmaLinux 9 base ISO is not
    /// configured: …"); absent when everything was built.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_built: BTreeMap<String, String>,
    /// How the package repositories are signed (GPG key fingerprint, or unsigned);
    /// absent when the release carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_signing: Option<String>,
    /// Bench figures that regressed past their threshold, published by
    /// `candidate --allow-regression`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_regressions: Vec<String>,
    /// Provenance builder id.
    pub builder_id: String,
    /// Every file of the directory except `manifest.json`, `SHA256SUMS` and signatures.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Pretty JSON with a final newline (diffable, and `cat` leaves the prompt alone).
    pub(crate) fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("manifest serialises");
        text.push('\n');
        text
    }

    /// Names and hashes of the artifacts.
    pub(crate) fn artifacts(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().filter(|f| f.role == FileRole::Artifact)
    }

    /// Rebuilds the pipeline inputs from a candidate directory holding this manifest.
    pub(crate) fn to_inputs(&self, dir: &Path) -> ReleaseInputs {
        ReleaseInputs {
            version: self.version.clone(),
            commit: self.commit.clone(),
            artifacts: self
                .artifacts()
                .filter(|f| !f.name.contains('/'))
                .map(|f| dir.join(&f.name))
                .collect(),
            artifact_paths: self
                .artifacts()
                .filter(|f| f.name.contains('/'))
                .map(|f| (f.name.clone(), dir.join(&f.name)))
                .collect(),
            junit: self
                .files
                .iter()
                .find(|f| f.role == FileRole::Junit)
                .map(|f| dir.join(&f.name)),
            sources: self.sources.clone(),
            inputs: self.inputs.clone(),
            toolchain: self.toolchain.clone(),
            tests: self.tests.clone(),
            flaky: self.flaky.clone(),
            allowed_regressions: self.allowed_regressions.clone(),
            profile: self.profile.clone(),
            source_date_epoch: self.source_date_epoch,
            builder_id: Some(self.builder_id.clone()),
            not_built: self.not_built.clone(),
            repository_signing: self.repository_signing.clone(),
        }
    }
}
