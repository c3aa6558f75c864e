//! Signing keys: generating minisign key pairs, loading secret keys safely (permissions,
//! passwords, the CLI `-W` zero-checksum trap), the per-machine development key, and the
//! public keys a verifier trusts (`--pubkey` or `releases/keys/keys.json`).
//!
//! Key *files* are read and written with the minisign crate, so they stay interoperable with
//! the `minisign` CLI. Signing itself uses the Ed25519 seed through ed25519-dalek (see
//! sign.rs for why). Secret material never reaches a log, an error or `Debug` output.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::ReleaseError;

/// Environment variable naming a file that holds the signing key's password.
pub(crate) const PASSWORD_FILE_ENV: &str = "XSC_SIGNING_PASSWORD_FILE";

/// Layout of a decoded minisign secret key (release-and-iso.md §2.1); 158 bytes.
const SK_LEN: usize = 158;
const SK_KDF: std::ops::Range<usize> = 2..4;
const SK_KEYNUM: std::ops::Range<usize> = 54..62;
const SK_SEED: std::ops::Range<usize> = 62..94;
const SK_PK: std::ops::Range<usize> = 94..126;
const SK_CHK: std::ops::Range<usize> = 126..158;

/// A minisign key id: 8 bytes, shown as the CLI shows it (hex of the little-endian u64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// From the raw 8-byte key number as stored in key and signature files.
    pub fn from_keynum(keynum: &[u8]) -> Option<Self> {
        Some(KeyId(keynum.try_into().ok()?))
    }

    /// The raw key number.
    pub fn keynum(&self) -> [u8; 8] {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 16 {
            return Err(format!("key id {s:?} is not 16 hex digits"));
        }
        let n = u64::from_str_radix(s, 16).map_err(|_| format!("key id {s:?} is not hex"))?;
        Ok(KeyId(n.to_le_bytes()))
    }
}

/// A decrypted signing key. `Debug` shows only the id.
pub struct ReleaseKey {
    id: KeyId,
    signing: SigningKey,
    public: minisign::PublicKey,
}

impl fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleaseKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ReleaseKey {
    /// The minisign key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The public half, for verifying what this key signed.
    pub fn trusted(&self) -> TrustedKey {
        TrustedKey {
            id: self.id,
            verifying: self.signing.verifying_key(),
            status: None,
            origin: "signing key".into(),
        }
    }

    /// The public key file text (`untrusted comment: …\nRW…\n`), what `minisign -p` reads.
    pub fn public_key_file(&self) -> String {
        self.public
            .to_box()
            .map(|b| b.into_string())
            .expect("boxing a valid public key cannot fail")
    }

    /// The one-line public key (`RW…`), what `minisign -P` takes.
    pub fn public_key_base64(&self) -> String {
        self.public.to_base64()
    }

    /// Plain Ed25519 over `message` (minisign signs the BLAKE2b digest this way).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Builds the key from a decrypted minisign secret key, checking that the seed really
    /// derives the public key stored beside it.
    fn from_minisign(sk: &minisign::SecretKey, path: &Path) -> Result<Self, ReleaseError> {
        let bytes = Zeroizing::new(sk.to_bytes());
        let malformed = |reason: &str| ReleaseError::KeyMalformed {
            path: path.to_path_buf(),
            kind: "secret",
            reason: reason.to_string(),
        };
        if bytes.len() != SK_LEN {
            return Err(malformed("wrong length"));
        }
        let seed: Zeroizing<[u8; 32]> =
            Zeroizing::new(bytes[SK_SEED].try_into().expect("range is 32 bytes"));
        let signing = SigningKey::from_bytes(&seed);
        if signing.verifying_key().as_bytes()[..] != bytes[SK_PK] {
            return Err(malformed("public half does not match the secret half"));
        }
        let public =
            minisign::PublicKey::from_secret_key(sk).map_err(|source| ReleaseError::Minisign {
                context: "derive public key",
                source,
            })?;
        let id = KeyId::from_keynum(&bytes[SK_KEYNUM]).expect("range is 8 bytes");
        Ok(ReleaseKey {
            id,
            signing,
            public,
        })
    }
}

/// Where a password comes from. Passwords never come from argv.
#[derive(Clone)]
pub enum PasswordSource {
    /// A file (`XSC_SIGNING_PASSWORD_FILE`); one trailing newline is ignored.
    File(PathBuf),
    /// A no-echo prompt on the controlling terminal.
    Prompt,
    /// Already known (tests, callers with their own secret store).
    Given(Zeroizing<String>),
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::File(p) => write!(f, "File({})", p.display()),
            PasswordSource::Prompt => write!(f, "Prompt"),
            PasswordSource::Given(_) => write!(f, "Given(<redacted>)"),
        }
    }
}

impl PasswordSource {
    /// `XSC_SIGNING_PASSWORD_FILE` when set, else the terminal prompt.
    pub fn from_env() -> Self {
        match std::env::var_os(PASSWORD_FILE_ENV) {
            Some(path) if !path.is_empty() => PasswordSource::File(path.into()),
            _ => PasswordSource::Prompt,
        }
    }

    /// Gets the password; `confirm` asks twice at a prompt (new keys).
    fn read(&self, what: &str, confirm: bool) -> Result<Zeroizing<String>, ReleaseError> {
        let password = match self {
            PasswordSource::Given(p) => p.clone(),
            PasswordSource::File(path) => {
                let mut text = Zeroizing::new(String::new());
                File::open(path)
                    .and_then(|mut f| f.read_to_string(&mut text))
                    .map_err(|source| ReleaseError::PasswordFile {
                        path: path.clone(),
                        source,
                    })?;
                let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                Zeroizing::new(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string())
            }
            PasswordSource::Prompt => {
                // rpassword reads /dev/tty; without a terminal it would fail obscurely or hang.
                if !std::io::stdin().is_terminal() {
                    return Err(ReleaseError::NoPassword {
                        what: what.to_string(),
                    });
                }
                let prompt = |p: &str| {
                    rpassword::prompt_password(p)
                        .map(Zeroizing::new)
                        .map_err(|_| ReleaseError::NoPassword {
                            what: what.to_string(),
                        })
                };
                let first = prompt(&format!("Password for {what}: "))?;
                if confirm && *prompt("Password (again): ")? != *first {
                    return Err(ReleaseError::PasswordMismatch);
                }
                first
            }
        };
        if password.is_empty() {
            return Err(ReleaseError::EmptyPassword);
        }
        Ok(password)
    }
}

/// How a new secret key is protected.
#[derive(Debug, Clone)]
pub enum Protection {
    /// scrypt-encrypted with this password (the crate's 32 MiB parameters).
    Password(PasswordSource),
    /// Not encrypted, on explicit request (`--unencrypted`, the dev key).
    Unencrypted,
}

/// Files written by [`generate`].
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The new key's id.
    pub id: KeyId,
    /// The secret key file (mode 0600).
    pub secret: PathBuf,
    /// The public key file.
    pub public: PathBuf,
    /// The public key as one line (`RW…`).
    pub public_base64: String,
}

/// Generates a key pair as `<dir>/xsc-release-<ID>.key` (0600) and `.pub`; never overwrites.
pub fn generate(dir: &Path, protection: &Protection) -> Result<GeneratedKey, ReleaseError> {
    let (pair, comment) = match protection {
        Protection::Password(source) => {
            let password = source.read("the new key", true)?;
            let pair = minisign::KeyPair::generate_encrypted_keypair(Some(password.to_string()))
                .map_err(|source| ReleaseError::Minisign {
                    context: "generate key pair",
                    source,
                })?;
            (pair, "minisign encrypted secret key")
        }
        Protection::Unencrypted => {
            let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(|source| {
                ReleaseError::Minisign {
                    context: "generate key pair",
                    source,
                }
            })?;
            (pair, "minisign unencrypted secret key")
        }
    };
    let id = KeyId::from_keynum(pair.pk.keynum()).expect("minisign key numbers are 8 bytes");
    fs::create_dir_all(dir).map_err(ReleaseError::io("create directory", dir))?;
    let secret = dir.join(format!("xsc-release-{id}.key"));
    let public = dir.join(format!("xsc-release-{id}.pub"));
    let sk_text = Zeroizing::new(
        pair.sk
            .to_box(Some(comment))
            .map_err(|source| ReleaseError::Minisign {
                context: "encode secret key",
                source,
            })?
            .into_string(),
    );
    let pk_text = pair
        .pk
        .to_box()
        .map_err(|source| ReleaseError::Minisign {
            context: "encode public key",
            source,
        })?
        .into_string();
    write_new(&secret, sk_text.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, pk_text.as_bytes(), 0o644) {
        let _ = fs::remove_file(&secret);
        return Err(e);
    }
    sync_dir(dir)?;
    Ok(GeneratedKey {
        id,
        secret,
        public,
        public_base64: pair.pk.to_base64(),
    })
}

/// Creates `path` with `mode` from the start (O_EXCL, so never over an existing file) and
/// fsyncs it; a half-written file is removed.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), ReleaseError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                ReleaseError::KeyExists {
                    path: path.to_path_buf(),
                }
            } else {
                ReleaseError::Io {
                    action: "create",
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    if let Err(source) = file.write_all(data).and_then(|()| file.sync_all()) {
        let _ = fs::remove_file(path);
        return Err(ReleaseError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), ReleaseError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ReleaseError::io("fsync directory", dir))
}

/// Loads a secret key for signing. Refuses (exit 5) a file that group or others can read;
/// asks `password` only when the key is encrypted.
pub fn load_secret_key(path: &Path, password: &PasswordSource) -> Result<ReleaseKey, ReleaseError> {
    let unreadable = |source| ReleaseError::KeyUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    // fstat the open file, not the path, so a swap between check and read is not possible.
    let mode = file.metadata().map_err(unreadable)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ReleaseError::UnsafeKeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(unreadable)?;
    let malformed = |reason: &str| ReleaseError::KeyMalformed {
        path: path.to_path_buf(),
        kind: "secret",
        reason: reason.to_string(),
    };
    let mut lines = text.lines();
    let comment = lines.next().unwrap_or_default();
    if !comment.starts_with("untrusted comment: ") {
        return Err(malformed("first line is not an untrusted comment"));
    }
    let encoded = lines
        .next()
        .ok_or_else(|| malformed("second line missing"))?;
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| malformed("second line is not base64"))?,
    );
    if raw.len() != SK_LEN || &raw[..2] != b"Ed" {
        return Err(malformed("not an Ed25519 secret key"));
    }
    let encrypted = raw[SK_KDF] != [0, 0];
    if !encrypted && raw[SK_CHK].iter().all(|&b| b == 0) {
        return Err(ReleaseError::CliUnencryptedKey {
            path: path.to_path_buf(),
        });
    }
    let sk_box =
        minisign::SecretKeyBox::from_string(&text).map_err(|e| malformed(&e.to_string()))?;
    let sk = if encrypted {
        let pw = password.read(&format!("secret key {}", path.display()), false)?;
        sk_box
            .into_secret_key(Some(pw.to_string()))
            .map_err(|e| match e.kind() {
                minisign::ErrorKind::Verify => ReleaseError::WrongPassword {
                    path: path.to_path_buf(),
                },
                _ => malformed(&e.to_string()),
            })?
    } else {
        sk_box
            .into_unencrypted_secret_key()
            .map_err(|e| malformed(&e.to_string()))?
    };
    ReleaseKey::from_minisign(&sk, path)
}

/// Status of a key in `keys.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStatus {
    /// Signs new releases.
    Current,
    /// Announced; will sign releases after the rotation.
    Next,
    /// Signed older releases; still verifies them, signs nothing new.
    Retired,
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyStatus::Current => "current",
            KeyStatus::Next => "next",
            KeyStatus::Retired => "retired",
        })
    }
}

/// `releases/keys/keys.json`: the project's public keys and their rotation state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Keyring {
    /// Every key, current first by convention.
    pub keys: Vec<KeyringEntry>,
}

/// One key in `keys.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyringEntry {
    /// Key id as minisign prints it (16 hex digits).
    pub id: String,
    /// When the key was made (RFC 3339 date).
    pub created: String,
    /// Rotation state.
    pub status: KeyStatus,
    /// File name of the `.pub`, relative to the keyring's directory.
    pub pubkey: String,
}

/// A public key the verifier trusts, with where that trust came from.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    /// Key id.
    pub id: KeyId,
    /// The Ed25519 public key.
    pub verifying: VerifyingKey,
    /// Rotation state, when it came from a keyring.
    pub status: Option<KeyStatus>,
    /// The file it came from, for messages.
    pub origin: String,
}

/// The set of keys a verification accepts.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrustedKeys(Vec<TrustedKey>);

impl TrustedKeys {
    /// Trusts exactly the keys given.
    pub(crate) fn new(keys: Vec<TrustedKey>) -> Self {
        TrustedKeys(keys)
    }

    /// The key with this id, if trusted.
    pub(crate) fn get(&self, id: KeyId) -> Option<&TrustedKey> {
        self.0.iter().find(|k| k.id == id)
    }

    /// True when no key is trusted.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All keys.
    pub(crate) fn keys(&self) -> &[TrustedKey] {
        &self.0
    }

    /// Adds keys (duplicates by id are ignored).
    pub(crate) fn extend(&mut self, other: TrustedKeys) {
        for key in other.0 {
            if self.get(key.id).is_none() {
                self.0.push(key);
            }
        }
    }

    /// Trusts one minisign public key file.
    pub(crate) fn from_pubkey_file(path: &Path) -> Result<Self, ReleaseError> {
        Ok(TrustedKeys(vec![load_public_key(path, None)?]))
    }

    /// Trusts every key in a `keys.json` (any status: retired keys still verify the
    /// releases they signed; the report shows the status).
    pub(crate) fn from_keyring(path: &Path) -> Result<Self, ReleaseError> {
        let (ring, dir) = read_keyring(path)?;
        if ring.keys.is_empty() {
            return Err(ReleaseError::Keyring {
                path: path.to_path_buf(),
                reason: "it lists no keys yet (see releases/keys/README.md)".into(),
            });
        }
        let mut keys = Vec::new();
        for entry in &ring.keys {
            let bad = |reason: String| ReleaseError::Keyring {
                path: path.to_path_buf(),
                reason,
            };
            let id: KeyId = entry.id.parse().map_err(bad)?;
            if entry.pubkey.contains('/') {
                return Err(bad(format!(
                    "pubkey {:?} must be a file name beside keys.json",
                    entry.pubkey
                )));
            }
            let key = load_public_key(&dir.join(&entry.pubkey), Some(entry.status))?;
            if key.id != id {
                return Err(bad(format!(
                    "{} holds key {}, not {id}",
                    entry.pubkey, key.id
                )));
            }
            keys.push(key);
        }
        Ok(TrustedKeys(keys))
    }
}

/// Reads and parses `keys.json`, returning it and its directory.
pub(crate) fn read_keyring(path: &Path) -> Result<(Keyring, PathBuf), ReleaseError> {
    let text = fs::read_to_string(path).map_err(|e| ReleaseError::Keyring {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let ring: Keyring = serde_json::from_str(&text).map_err(|e| ReleaseError::Keyring {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok((ring, dir))
}

/// Loads a minisign public key file (`minisign.pub` format).
pub(crate) fn load_public_key(
    path: &Path,
    status: Option<KeyStatus>,
) -> Result<TrustedKey, ReleaseError> {
    let text = fs::read_to_string(path).map_err(|source| ReleaseError::KeyUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let malformed = |reason: String| ReleaseError::KeyMalformed {
        path: path.to_path_buf(),
        kind: "public",
        reason,
    };
    let pk = minisign::PublicKey::from_box(
        minisign::PublicKeyBox::from_string(&text).map_err(|e| malformed(e.to_string()))?,
    )
    .map_err(|e| malformed(e.to_string()))?;
    trusted_from_minisign(&pk, status, path.display().to_string()).map_err(malformed)
}

fn trusted_from_minisign(
    pk: &minisign::PublicKey,
    status: Option<KeyStatus>,
    origin: String,
) -> Result<TrustedKey, String> {
    // to_bytes() = "Ed" || keynum[8] || pk[32].
    let bytes = pk.to_bytes();
    let raw: [u8; 32] = bytes
        .get(10..42)
        .and_then(|b| b.try_into().ok())
        .ok_or("short public key")?;
    let verifying =
        VerifyingKey::from_bytes(&raw).map_err(|_| "not a valid Ed25519 point".to_string())?;
    let id = KeyId::from_keynum(pk.keynum()).ok_or("bad key number")?;
    Ok(TrustedKey {
        id,
        verifying,
        status,
        origin,
    })
}

/// The development key's files under a cache directory.
pub fn dev_key_paths(cache_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = cache_dir.join("keys");
    (dir.join("dev.key"), dir.join("dev.pub"))
}

/// The machine's development key: created unencrypted on first use as `<cache>/keys/dev.key`
/// (0600, directory 0700) plus `dev.pub`. Candidates signed with it say `signed-by: dev`.
pub(crate) fn dev_key(cache_dir: &Path) -> Result<ReleaseKey, ReleaseError> {
    let (key_path, pub_path) = dev_key_paths(cache_dir);
    let dir = key_path.parent().expect("dev key path has a parent");
    if !key_path.exists() {
        fs::create_dir_all(dir).map_err(ReleaseError::io("create directory", dir))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        // Write under a private name, then hard-link into place: link(2) never replaces, so
        // two first uses racing end with one complete key, never a half-written one.
        let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(|source| {
            ReleaseError::Minisign {
                context: "generate key pair",
                source,
            }
        })?;
        let text = Zeroizing::new(
            pair.sk
                .to_box(Some(
                    "minisign unencrypted secret key (xsc-release development key)",
                ))
                .map_err(|source| ReleaseError::Minisign {
                    context: "encode secret key",
                    source,
                })?
                .into_string(),
        );
        let tmp = dir.join(format!(".dev.key.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        write_new(&tmp, text.as_bytes(), 0o600)?;
        let linked = fs::hard_link(&tmp, &key_path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => sync_dir(dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(ReleaseError::Io {
                    action: "create",
                    path: key_path,
                    source,
                });
            }
        }
    }
    let key = load_secret_key(&key_path, &PasswordSource::Prompt)?;
    // dev.pub is derived data: rewrite it when missing or stale (atomically, by rename).
    let pub_text = key.public_key_file();
    if fs::read_to_string(&pub_path).ok().as_deref() != Some(pub_text.as_str()) {
        crate::sys::atomic_file::write_mode(&pub_path, pub_text.as_bytes(), 0o644)
            .map_err(ReleaseError::io("write", &pub_path))?;
    }
    Ok(key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::exit_code::ExitCode;

    pub(crate) fn given(pw: &str) -> PasswordSource {
        PasswordSource::Given(Zeroizing::new(pw.to_string()))
    }

    #[test]
    fn key_id_prints_like_the_cli() {
        // From release-and-iso.md: keynum bytes 04 0F D9 DF 23 97 77 9B print as 9B779723DFD90F04.
        let id = KeyId::from_keynum(&[0x04, 0x0F, 0xD9, 0xDF, 0x23, 0x97, 0x77, 0x9B]).unwrap();
        assert_eq!(id.to_string(), "9B779723DFD90F04");
        assert_eq!("9B779723DFD90F04".parse::<KeyId>().unwrap(), id);
        assert!("9B77".parse::<KeyId>().is_err());
    }

    #[test]
    fn generated_keys_are_0600_never_overwritten_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate(dir.path(), &Protection::Password(given("hunter22"))).unwrap();
        let mode = fs::metadata(&key.secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            fs::read_to_string(&key.public)
                .unwrap()
                .contains(&key.id.to_string())
        );
        let loaded = load_secret_key(&key.secret, &given("hunter22")).unwrap();
        assert_eq!(loaded.id(), key.id);
        assert_eq!(loaded.public_key_base64(), key.public_base64);
        assert!(
            !format!("{loaded:?}").contains(&key.public_base64),
            "Debug leaks key material"
        );

        let err = load_secret_key(&key.secret, &given("wrong")).unwrap_err();
        assert!(matches!(err, ReleaseError::WrongPassword { .. }), "{err}");
        assert_eq!(err.exit_code(), ExitCode::BadInput);

        // Same id cannot happen twice, so provoke the refusal through write_new directly.
        let err = write_new(&key.secret, b"x", 0o600).unwrap_err();
        assert!(matches!(err, ReleaseError::KeyExists { .. }), "{err}");
        assert_eq!(err.exit_code(), ExitCode::ReleaseRefused);
        assert!(
            load_secret_key(&key.secret, &given("hunter22")).is_ok(),
            "key was clobbered"
        );
    }

    #[test]
    fn unsafe_permissions_are_refused_with_exit_5() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate(dir.path(), &Protection::Unencrypted).unwrap();
        assert!(load_secret_key(&key.secret, &PasswordSource::Prompt).is_ok());
        for mode in [0o640, 0o604, 0o644] {
            fs::set_permissions(&key.secret, fs::Permissions::from_mode(mode)).unwrap();
            let err = load_secret_key(&key.secret, &PasswordSource::Prompt).unwrap_err();
            assert!(
                matches!(err, ReleaseError::UnsafeKeyPermissions { .. }),
                "{err}"
            );
            assert_eq!(err.exit_code(), ExitCode::ReleaseRefused);
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn empty_and_file_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let err = generate(dir.path(), &Protection::Password(given(""))).unwrap_err();
        assert!(matches!(err, ReleaseError::EmptyPassword), "{err}");
        let pwfile = dir.path().join("pw");
        fs::write(&pwfile, "s3cret\n").unwrap();
        let key = generate(
            dir.path(),
            &Protection::Password(PasswordSource::File(pwfile.clone())),
        )
        .unwrap();
        // The trailing newline is not part of the password.
        assert!(load_secret_key(&key.secret, &given("s3cret")).is_ok());
        let err = load_secret_key(
            &key.secret,
            &PasswordSource::File(dir.path().join("missing")),
        )
        .unwrap_err();
        assert!(matches!(err, ReleaseError::PasswordFile { .. }), "{err}");
    }

    #[test]
    fn dev_key_is_created_once_and_reused() {
        let cache = tempfile::tempdir().unwrap();
        let first = dev_key(cache.path()).unwrap();
        let second = dev_key(cache.path()).unwrap();
        assert_eq!(first.id(), second.id());
        let (key_path, pub_path) = dev_key_paths(cache.path());
        assert_eq!(
            fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let public = load_public_key(&pub_path, None).unwrap();
        assert_eq!(public.id, first.id());
    }

    #[test]
    fn keyring_loads_keys_and_checks_ids() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate(dir.path(), &Protection::Unencrypted).unwrap();
        let b = generate(dir.path(), &Protection::Unencrypted).unwrap();
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        let ring = Keyring {
            keys: vec![
                KeyringEntry {
                    id: a.id.to_string(),
                    created: "2026-01-01".into(),
                    status: KeyStatus::Current,
                    pubkey: name(&a.public),
                },
                KeyringEntry {
                    id: b.id.to_string(),
                    created: "2026-06-01".into(),
                    status: KeyStatus::Next,
                    pubkey: name(&b.public),
                },
            ],
        };
        let path = dir.path().join("keys.json");
        fs::write(&path, serde_json::to_string_pretty(&ring).unwrap()).unwrap();
        let trusted = TrustedKeys::from_keyring(&path).unwrap();
        assert_eq!(trusted.get(a.id).unwrap().status, Some(KeyStatus::Current));
        assert_eq!(trusted.get(b.id).unwrap().status, Some(KeyStatus::Next));

        let mut wrong = ring.clone();
        wrong.keys[0].pubkey = name(&b.public);
        fs::write(&path, serde_json::to_string(&wrong).unwrap()).unwrap();
        let err = TrustedKeys::from_keyring(&path).unwrap_err();
        assert!(matches!(err, ReleaseError::Keyring { .. }), "{err}");

        fs::write(&path, r#"{"keys": []}"#).unwrap();
        let err = TrustedKeys::from_keyring(&path).unwrap_err();
        assert!(err.to_string().contains("lists no keys"), "{err}");
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BadInput);
    }

    #[test]
    fn the_shipped_keyring_parses() {
        let ring: Keyring =
            serde_json::from_str(include_str!("../../releases/keys/keys.json")).unwrap();
        for entry in ring.keys {
            entry.id.parse::<KeyId>().unwrap();
        }
    }
}
