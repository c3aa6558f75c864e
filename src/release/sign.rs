//! minisign signature files (`.minisig`) made and checked from a precomputed BLAKE2b-512
//! digest, and the trusted comment that ties a signature to one file of one release.
//!
//! Why not `minisign::sign`/`minisign::verify`: both hash the data themselves from a reader,
//! so a 2 GiB ISO would be read and hashed again after we already hashed it for
//! `SHA256SUMS`. A prehashed (`ED`) minisign signature is plain Ed25519 over
//! BLAKE2b-512(file), plus a "global" Ed25519 signature over `sig || trusted_comment`
//! (release-and-iso.md §2.1; the CLI accepts signatures made this way, and the tests below
//! check them against both the CLI and the crate). Legacy `Ed` signatures are refused.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};

use super::keys::{KeyId, ReleaseKey};

const PREHASHED: &[u8; 2] = b"ED";
const LEGACY: &[u8; 2] = b"Ed";
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";

/// What every signature of a release vouches for besides the bytes: which file, its SHA-256,
/// the version and the commit. Swapping two `.minisig` files is caught by `file:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TrustedComment {
    /// Unix time of signing.
    pub timestamp: u64,
    /// File name inside the release directory.
    pub file: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Release version (or candidate version).
    pub version: String,
    /// Git commit the release was built from.
    pub commit: String,
}

impl fmt::Display for TrustedComment {
    /// Tab-separated `key:value` pairs, the same shape as the CLI's own
    /// `timestamp:…\tfile:…` comment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timestamp:{}\tfile:{}\tsha256:{}\tversion:{}\tcommit:{}",
            self.timestamp, self.file, self.sha256, self.version, self.commit
        )
    }
}

impl TrustedComment {
    /// Parses our own comment format; `None` for anything else (a foreign signature).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut fields = std::collections::BTreeMap::new();
        for pair in text.split(['\t', ' ']).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once(':')?;
            fields.insert(k, v);
        }
        Some(TrustedComment {
            timestamp: fields.get("timestamp")?.parse().ok()?,
            file: (*fields.get("file")?).to_string(),
            sha256: (*fields.get("sha256")?).to_string(),
            version: (*fields.get("version")?).to_string(),
            commit: (*fields.get("commit")?).to_string(),
        })
    }
}

/// Makes the text of a prehashed `.minisig` for a file whose BLAKE2b-512 is `blake2b`.
pub fn minisig(key: &ReleaseKey, blake2b: &[u8; 64], trusted_comment: &str) -> String {
    debug_assert!(
        !trusted_comment.contains(['\n', '\r']),
        "callers validate comment fields"
    );
    let sig = key.sign_raw(blake2b);
    let mut line2 = Vec::with_capacity(74);
    line2.extend_from_slice(PREHASHED);
    line2.extend_from_slice(&key.id().keynum());
    line2.extend_from_slice(&sig);
    let mut global_msg = sig.to_vec();
    global_msg.extend_from_slice(trusted_comment.as_bytes());
    let global = key.sign_raw(&global_msg);
    format!(
        "{UNTRUSTED_PREFIX}signature from xsc-release key {}\n{}\n{TRUSTED_PREFIX}{trusted_comment}\n{}\n",
        key.id(),
        B64.encode(&line2),
        B64.encode(global)
    )
}

/// A parsed `.minisig`.
#[derive(Clone, Debug)]
pub(crate) struct ParsedSig {
    /// Id of the key that made it.
    pub key_id: KeyId,
    sig: [u8; 64],
    /// The trusted comment text (authentic only after [`ParsedSig::verify`]).
    pub trusted_comment: String,
    global: [u8; 64],
}

/// Why a signature file is not good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SigError {
    /// Not four well-formed lines (truncated, edited, not a minisig).
    #[error("malformed signature file: {0}")]
    Malformed(&'static str),
    /// A legacy (non-prehashed) signature.
    #[error("legacy (non-prehashed) signature; only prehashed `ED` signatures are accepted")]
    Legacy,
    /// The global signature does not cover this trusted comment.
    #[error("trusted comment signature does not verify")]
    Comment,
    /// The signature does not cover these bytes.
    #[error("signature does not match the file contents")]
    Data,
}

impl ParsedSig {
    /// Parses the four lines of a `.minisig`.
    pub(crate) fn parse(text: &str) -> Result<Self, SigError> {
        let mut lines = text.lines();
        let mut next = |what| lines.next().ok_or(SigError::Malformed(what));
        if !next("empty")?.starts_with(UNTRUSTED_PREFIX) {
            return Err(SigError::Malformed(
                "first line is not an untrusted comment",
            ));
        }
        let raw = B64
            .decode(next("signature line missing")?.trim())
            .map_err(|_| SigError::Malformed("signature is not base64"))?;
        let trusted_comment = next("trusted comment missing")?
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or(SigError::Malformed("third line is not a trusted comment"))?
            .to_string();
        let global = B64
            .decode(next("global signature missing")?.trim())
            .map_err(|_| SigError::Malformed("global signature is not base64"))?;
        if raw.len() != 74 {
            return Err(SigError::Malformed("signature has the wrong length"));
        }
        match &raw[..2] {
            alg if alg == PREHASHED => {}
            alg if alg == LEGACY => return Err(SigError::Legacy),
            _ => return Err(SigError::Malformed("unknown signature algorithm")),
        }
        Ok(ParsedSig {
            key_id: KeyId::from_keynum(&raw[2..10]).expect("slice is 8 bytes"),
            sig: raw[10..].try_into().expect("slice is 64 bytes"),
            trusted_comment,
            global: global
                .try_into()
                .map_err(|_| SigError::Malformed("global signature has the wrong length"))?,
        })
    }

    /// Checks the trusted comment only (cheap; needs no file contents).
    pub(crate) fn verify_comment(&self, key: &VerifyingKey) -> Result<(), SigError> {
        let mut msg = self.sig.to_vec();
        msg.extend_from_slice(self.trusted_comment.as_bytes());
        key.verify_strict(&msg, &Signature::from_bytes(&self.global))
            .map_err(|_| SigError::Comment)
    }

    /// Checks the data signature against the file's BLAKE2b-512.
    pub(crate) fn verify_data(
        &self,
        key: &VerifyingKey,
        blake2b: &[u8; 64],
    ) -> Result<(), SigError> {
        key.verify_strict(blake2b, &Signature::from_bytes(&self.sig))
            .map_err(|_| SigError::Data)
    }

    /// Both checks, comment first (as the CLI reports them); the tests' shorthand.
    #[cfg(test)]
    pub(crate) fn verify(&self, key: &VerifyingKey, blake2b: &[u8; 64]) -> Result<(), SigError> {
        self.verify_comment(key)?;
        self.verify_data(key, blake2b)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::release::checksums::{Digests, hash_file};
    use crate::release::keys::tests::given;
    use crate::release::keys::{
        self, PasswordSource, Protection, load_public_key, load_secret_key,
    };
    use crate::sys::process::{Cmd, run};

    pub(crate) fn sign_file(key: &ReleaseKey, path: &Path) -> String {
        let d = hash_file(path).unwrap();
        let tc = TrustedComment {
            timestamp: 1_700_000_000,
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
            sha256: d.sha256_hex(),
            version: "0.1.0".into(),
            commit: "abc123".into(),
        };
        minisig(key, &d.blake2b, &tc.to_string())
    }

    #[test]
    fn trusted_comment_round_trips() {
        let tc = TrustedComment {
            timestamp: 5,
            file: "xsc-kernel-bzImage".into(),
            sha256: "ab".repeat(32),
            version: "0.1.0".into(),
            commit: "abc123".into(),
        };
        assert_eq!(TrustedComment::parse(&tc.to_string()), Some(tc));
        assert_eq!(TrustedComment::parse("timestamp:1\tfile:x\thashed"), None);
    }

    #[test]
    fn own_signature_verifies_with_the_crate_and_fails_on_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let made = keys::generate(dir.path(), &Protection::Unencrypted).unwrap();
        let key = load_secret_key(&made.secret, &PasswordSource::Prompt).unwrap();
        let data = b"payload".repeat(1000);
        let d = Digests::of_bytes(&data);
        let text = minisig(&key, &d.blake2b, "timestamp:1\tfile:p");

        let pk = minisign::PublicKey::from_file(&made.public).unwrap();
        let sbox = minisign::SignatureBox::from_string(&text).unwrap();
        minisign::verify(&pk, &sbox, std::io::Cursor::new(&data), true, false, false).unwrap();

        let parsed = ParsedSig::parse(&text).unwrap();
        let vk = key.trusted().verifying;
        parsed.verify(&vk, &d.blake2b).unwrap();
        let mut other = data.clone();
        other[3] ^= 1;
        assert_eq!(
            parsed.verify(&vk, &Digests::of_bytes(&other).blake2b),
            Err(SigError::Data)
        );
        let forged = text.replace("file:p", "file:q");
        assert_eq!(
            ParsedSig::parse(&forged).unwrap().verify(&vk, &d.blake2b),
            Err(SigError::Comment)
        );
        let truncated = &text[..text.len() / 2];
        assert!(matches!(
            ParsedSig::parse(truncated),
            Err(SigError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn our_signature_verifies_with_the_minisign_cli() {
        let dir = tempfile::tempdir().unwrap();
        let made = keys::generate(dir.path(), &Protection::Password(given("pw-for-test"))).unwrap();
        let key = load_secret_key(&made.secret, &given("pw-for-test")).unwrap();
        let file = dir.path().join("xsc-kernel-bzImage");
        std::fs::write(&file, b"kernel bytes".repeat(100_000)).unwrap();
        std::fs::write(
            dir.path().join("xsc-kernel-bzImage.minisig"),
            sign_file(&key, &file),
        )
        .unwrap();
        let pubfile = made.public.to_string_lossy().into_owned();
        let filearg = file.to_string_lossy().into_owned();
        let out = run(
            &Cmd::new(["minisign", "-V", "-H", "-m", &filearg, "-p", &pubfile]),
            None,
        )
        .await
        .unwrap();
        assert!(
            out.tail
                .contains("Signature and comment signature verified"),
            "{}",
            out.tail
        );
        assert!(out.tail.contains("file:xsc-kernel-bzImage"), "{}", out.tail);
        // And with the key given inline (-P), as the release README tells users.
        run(
            &Cmd::new(["minisign", "-V", "-m", &filearg, "-P", &made.public_base64]),
            None,
        )
        .await
        .unwrap();
        // The CLI must reject it after one flipped byte, or the test above proves nothing.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[10] ^= 0x20;
        std::fs::write(&file, bytes).unwrap();
        assert!(
            run(
                &Cmd::new(["minisign", "-V", "-m", &filearg, "-p", &pubfile]),
                None
            )
            .await
            .is_err()
        );
    }

    /// CLI-made key with a password (1 GiB scrypt: ~4 s and ~1 GiB RAM; the only such test).
    #[tokio::test]
    async fn cli_made_key_and_cli_signature_work_with_ours() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = (dir.path().join("cli.key"), dir.path().join("cli.pub"));
        let made = format!(
            "printf 'clipw\\nclipw\\n' | minisign -G -p {} -s {}",
            pk.display(),
            sk.display()
        );
        run(&Cmd::new(["sh", "-c", &made]), None).await.unwrap();
        std::fs::set_permissions(&sk, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let file = dir.path().join("data.bin");
        std::fs::write(&file, b"cli data".repeat(5000)).unwrap();
        // CLI signs, we verify.
        let sign = format!(
            "printf 'clipw\\n' | minisign -S -s {} -m {}",
            sk.display(),
            file.display()
        );
        run(&Cmd::new(["sh", "-c", &sign]), None).await.unwrap();
        let trusted = load_public_key(&pk, None).unwrap();
        let cli_sig = ParsedSig::parse(
            &std::fs::read_to_string(dir.path().join("data.bin.minisig")).unwrap(),
        )
        .unwrap();
        assert_eq!(cli_sig.key_id, trusted.id);
        cli_sig
            .verify(&trusted.verifying, &hash_file(&file).unwrap().blake2b)
            .unwrap();
        // We sign with the CLI's key, the CLI verifies.
        let key = load_secret_key(&sk, &given("clipw")).unwrap();
        assert_eq!(key.id(), trusted.id);
        std::fs::write(dir.path().join("data.bin.minisig"), sign_file(&key, &file)).unwrap();
        run(
            &Cmd::new([
                "minisign",
                "-V",
                "-H",
                "-m",
                &file.to_string_lossy(),
                "-p",
                &pk.to_string_lossy(),
            ]),
            None,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn cli_unencrypted_key_gets_the_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = (dir.path().join("w.key"), dir.path().join("w.pub"));
        run(
            &Cmd::new([
                "minisign",
                "-G",
                "-W",
                "-p",
                &pk.to_string_lossy(),
                "-s",
                &sk.to_string_lossy(),
            ]),
            None,
        )
        .await
        .unwrap();
        std::fs::set_permissions(&sk, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let err = load_secret_key(&sk, &PasswordSource::Prompt).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                crate::release::error::ReleaseError::CliUnencryptedKey { .. }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("minisign -G -W") && msg.contains("xsc-release keygen --unencrypted"),
            "{msg}"
        );
        assert!(!msg.to_lowercase().contains("corrupt"), "{msg}");
    }

    #[tokio::test]
    async fn our_unencrypted_key_signs_with_the_cli() {
        let dir = tempfile::tempdir().unwrap();
        let made = keys::generate(dir.path(), &Protection::Unencrypted).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        run(
            &Cmd::new([
                "minisign",
                "-S",
                "-W",
                "-s",
                &made.secret.to_string_lossy(),
                "-m",
                &file.to_string_lossy(),
            ]),
            None,
        )
        .await
        .unwrap();
        let parsed =
            ParsedSig::parse(&std::fs::read_to_string(dir.path().join("f.minisig")).unwrap())
                .unwrap();
        let trusted = load_public_key(&made.public, None).unwrap();
        parsed
            .verify(&trusted.verifying, &hash_file(&file).unwrap().blake2b)
            .unwrap();
    }
}
