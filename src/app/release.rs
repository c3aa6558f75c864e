//! The `keygen`, `verify` and `promote` sub-commands: clap arguments and the functions that
//! run them and print their user-facing output on stdout. main.rs wires them in and turns
//! the returned [`ExitCode`] or [`ReleaseError::exit_code`] into the process status.
//!
//! Hashing and key derivation block, so they run on tokio's blocking pool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::exit_code::ExitCode;
use crate::input::config::PublishTarget;
use crate::release::error::ReleaseError;
use crate::release::keys::{self, PasswordSource, Protection, TrustedKeys};
use crate::release::manifest::{Manifest, SignedBy, names};
use crate::release::promote::{self, PromoteOptions};
use crate::release::remote::Remote;
use crate::release::upload;
use crate::release::verify::verify_release;

/// `xsc-release keygen`: make a minisign key pair.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Directory to write `xsc-release-<ID>.key` (mode 0600) and `xsc-release-<ID>.pub` into.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Do not encrypt the secret key. It is then protected only by its file mode.
    /// Without this, the password comes from the file named by XSC_SIGNING_PASSWORD_FILE
    /// or from a prompt on the terminal.
    #[arg(long)]
    pub unencrypted: bool,
}

/// `xsc-release verify`: check a release directory.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("trust").required(true).multiple(true).args(["pubkey", "keyring"])))]
pub struct VerifyArgs {
    /// The release or candidate directory: a path, or a published `s3://bucket/path` or
    /// `https://host/path` (a directory, or a root whose `latest` names one).
    pub dir: PathBuf,
    /// A minisign public key file to trust.
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// A keys.json keyring (e.g. releases/keys/keys.json); every key in it is trusted.
    #[arg(long)]
    pub keyring: Option<PathBuf>,
}

/// `xsc-release promote`: re-sign a verified candidate as release X.Y.Z.
#[derive(Debug, Clone, clap::Args)]
pub struct PromoteArgs {
    /// Candidate id (a directory under the candidates root) or path to a candidate directory.
    pub candidate_id: String,
    /// Release version, X.Y.Z.
    #[arg(long)]
    pub version: String,
    /// The release secret key (mode 0600; password from XSC_SIGNING_PASSWORD_FILE or prompt).
    #[arg(long)]
    pub key: PathBuf,
    /// Promote even if some tests only passed on a rerun.
    #[arg(long)]
    pub allow_flaky: bool,
    /// Where X.Y.Z/ is created (default: the configured publish root).
    #[arg(long)]
    pub publish_root: Option<PathBuf>,
    /// A keys.json: its keys are trusted for the candidate too, and the release key must be
    /// listed there as current.
    #[arg(long)]
    pub keyring: Option<PathBuf>,
    /// Then upload the release to this `[publish.<name>]` target of xsc.toml.
    #[arg(long, value_name = "NAME")]
    pub publish: Option<String>,
}

/// `xsc-release publish`: upload a local release or candidate directory to a target.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The release or candidate directory (e.g. releases/1.0.0 or releases/candidates/<id>).
    pub dir: PathBuf,
    /// The `[publish.<name>]` target of xsc.toml.
    #[arg(long, value_name = "NAME")]
    pub to: String,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReleaseError> + Send + 'static,
) -> Result<T, ReleaseError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ReleaseError::Internal("release worker panicked"))?
}

/// Runs `keygen`.
pub(crate) async fn keygen(args: KeygenArgs) -> Result<ExitCode, ReleaseError> {
    let protection = if args.unencrypted {
        Protection::Unencrypted
    } else {
        Protection::Password(PasswordSource::from_env())
    };
    let unencrypted = args.unencrypted;
    let key = blocking(move || keys::generate(&args.out, &protection)).await?;
    println!("generated key {}", key.id);
    println!(
        "  secret key: {} (mode 0600{})",
        key.secret.display(),
        if unencrypted {
            ", NOT encrypted"
        } else {
            ", encrypted"
        }
    );
    println!("  public key: {}", key.public.display());
    println!("  public key for `minisign -P`: {}", key.public_base64);
    println!("To make it a project release key, see releases/keys/README.md.");
    Ok(ExitCode::Success)
}

/// Runs `verify`; prints the report. Exit 0 when the release verifies, 1 when not.
pub(crate) async fn verify(args: VerifyArgs) -> Result<ExitCode, ReleaseError> {
    let given = args.dir.to_string_lossy().into_owned();
    if given.contains("://") {
        return verify_url(&given, args).await;
    }
    let report = blocking(move || {
        let trusted = trusted_keys(args.pubkey.as_deref(), args.keyring.as_deref())?;
        verify_release(&args.dir, &trusted)
    })
    .await?;
    print!("{}", report.render());
    Ok(report.exit_code())
}

/// `verify` of a published URL: the directory is fetched into a private temporary
/// directory and checked like a local one.
async fn verify_url(url: &str, args: VerifyArgs) -> Result<ExitCode, ReleaseError> {
    let trusted = trusted_keys(args.pubkey.as_deref(), args.keyring.as_deref())?;
    let remote = Remote::for_url(url)?;
    // A new directory only this user can read (create, not create_dir_all: a directory of
    // that name made by someone else beforehand is an error, never reused).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = std::env::temp_dir().join(format!("xsc-verify-{}-{nanos}", std::process::id()));
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&tmp)
        .map_err(ReleaseError::io("create directory", &tmp))?;
    let fetched = upload::fetch(&remote, "", &tmp).await;
    let result = match fetched {
        Ok(dir) => {
            let (local, shown) = (tmp.clone(), remote.url_of(&dir));
            blocking(move || {
                let mut report = verify_release(&local, &trusted)?;
                report.dir = PathBuf::from(shown);
                Ok(report)
            })
            .await
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let report = result?;
    print!("{}", report.render());
    Ok(report.exit_code())
}

/// Uploads the local release or candidate directory `dir` to target `name` and prints where.
/// `scratch` holds fetched files while it runs; the rsync children log to `scratch` + `.log`,
/// which stays.
pub(crate) async fn publish_to(
    targets: &BTreeMap<String, PublishTarget>,
    name: &str,
    dir: &Path,
    scratch: &Path,
) -> Result<ExitCode, ReleaseError> {
    let target = find_target(targets, name)?;
    let manifest_path = dir.join(names::MANIFEST);
    let bytes = std::fs::read(&manifest_path).map_err(ReleaseError::io("read", &manifest_path))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|source| ReleaseError::ManifestParse {
            path: manifest_path.clone(),
            source,
        })?;
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A candidate is anything not signed by a release key: it goes under candidates/.
    let candidate = manifest.signed_by != SignedBy::Release;
    let (rel, latest) = upload::remote_paths(&dir_name, candidate);
    let log = scratch.with_extension("log");
    let remote = Remote::for_target(target, &log)?;
    println!(
        "publish: uploading {} to {}",
        dir.display(),
        remote.url_of(&rel)
    );
    let done = upload::upload(&remote, dir, &rel, &latest, scratch)
        .await
        .inspect_err(|_| {
            println!(
                "publish: interrupted; readers still see the previous {latest}. Resume with: \
                 xsc-release publish {} --to {name}",
                dir.display()
            );
        })?;
    println!(
        "published {} ({} files sent, {} already there); {} names it",
        done.url, done.sent, done.kept, done.latest
    );
    Ok(ExitCode::Success)
}

/// The `[publish.<name>]` target, or a bad-input error listing the configured ones.
pub(crate) fn find_target<'a>(
    targets: &'a BTreeMap<String, PublishTarget>,
    name: &str,
) -> Result<&'a PublishTarget, ReleaseError> {
    targets
        .get(name)
        .ok_or_else(|| ReleaseError::UnknownTarget {
            name: name.to_string(),
            known: if targets.is_empty() {
                "none".into()
            } else {
                targets.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })
}

/// The keys a `verify` trusts.
pub(crate) fn trusted_keys(
    pubkey: Option<&Path>,
    keyring: Option<&Path>,
) -> Result<TrustedKeys, ReleaseError> {
    let mut trusted = TrustedKeys::default();
    if let Some(p) = pubkey {
        trusted.extend(TrustedKeys::from_pubkey_file(p)?);
    }
    if let Some(k) = keyring {
        trusted.extend(TrustedKeys::from_keyring(k)?);
    }
    if trusted.is_empty() {
        return Err(ReleaseError::NoTrustedKey);
    }
    Ok(trusted)
}

/// Runs `promote`. The candidate is trusted if signed by this machine's dev key
/// (`<cache_dir>/keys/dev.pub`) or by a key in `--keyring`.
pub(crate) async fn promote(
    args: PromoteArgs,
    publish_root: &Path,
    candidates_root: &Path,
    cache_dir: &Path,
    targets: &BTreeMap<String, PublishTarget>,
    out_dir: &Path,
) -> Result<ExitCode, ReleaseError> {
    // A wrong target name is bad input before anything is signed.
    if let Some(name) = &args.publish {
        find_target(targets, name)?;
    }
    let publish = args.publish.clone();
    let publish_root = args
        .publish_root
        .clone()
        .unwrap_or_else(|| publish_root.to_path_buf());
    let candidates_root = candidates_root.to_path_buf();
    let cache_dir = cache_dir.to_path_buf();
    let promoted = blocking(move || {
        let candidate = promote::find_candidate(&candidates_root, &args.candidate_id)?;
        let (_, dev_pub) = keys::dev_key_paths(&cache_dir);
        let mut trusted = TrustedKeys::default();
        let mut dev_key_id = None;
        if dev_pub.exists() {
            let dev = keys::load_public_key(&dev_pub, None)?;
            dev_key_id = Some(dev.id);
            trusted.extend(TrustedKeys::new(vec![dev]));
        }
        if let Some(ring) = &args.keyring {
            trusted.extend(TrustedKeys::from_keyring(ring)?);
        }
        if trusted.is_empty() {
            return Err(ReleaseError::NoTrustedKey);
        }
        // Load (and unlock) the key first: a refusal should come before minutes of hashing.
        let key = keys::load_secret_key(&args.key, &PasswordSource::from_env())?;
        let opts = PromoteOptions {
            publish_root: &publish_root,
            trusted: &trusted,
            allow_flaky: args.allow_flaky,
            dev_key_id,
            keyring: args.keyring.as_deref(),
        };
        promote::promote(&candidate, &args.version, &key, &opts)
    })
    .await?;
    let p = &promoted.published;
    println!(
        "candidate verified ({} checks)",
        promoted.candidate_report.checks.len()
    );
    println!("released {} at {}", p.name, p.dir.display());
    println!("  signed by key {} (signed-by: release)", p.key_id);
    println!(
        "  check it with: xsc-release verify {} --keyring releases/keys/keys.json",
        p.dir.display()
    );
    match publish {
        Some(name) => {
            let scratch = out_dir.join(format!("publish-{}", std::process::id()));
            let code = publish_to(targets, &name, &p.dir, &scratch).await;
            let _ = std::fs::remove_dir_all(&scratch);
            code
        }
        None => Ok(ExitCode::Success),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::release::manifest::ReleaseInputs;
    use crate::release::promote::create_dev_candidate;

    #[derive(Debug, clap::Parser)]
    enum Cli {
        Keygen(KeygenArgs),
        Verify(VerifyArgs),
        Promote(PromoteArgs),
    }

    #[test]
    fn arguments_parse_and_verify_needs_a_key() {
        let err = Cli::try_parse_from(["x", "verify", "dir"]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let Cli::Verify(v) =
            Cli::try_parse_from(["x", "verify", "d", "--keyring", "k.json"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (v.dir, v.keyring, v.pubkey),
            ("d".into(), Some("k.json".into()), None)
        );
        let Cli::Keygen(k) = Cli::try_parse_from(["x", "keygen"]).unwrap() else {
            panic!()
        };
        assert_eq!((k.out, k.unencrypted), (PathBuf::from("."), false));
        let Cli::Promote(p) = Cli::try_parse_from([
            "x",
            "promote",
            "c1",
            "--version",
            "1.0.0",
            "--key",
            "r.key",
            "--allow-flaky",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(p.allow_flaky && p.publish_root.is_none() && p.candidate_id == "c1");
        assert!(Cli::try_parse_from(["x", "promote", "c1", "--key", "r.key"]).is_err());
    }

    #[tokio::test]
    async fn keygen_verify_promote_through_the_command_functions() {
        let tmp = tempfile::tempdir().unwrap();
        let (cache, cands, pubroot) = (
            tmp.path().join("cache"),
            tmp.path().join("cands"),
            tmp.path().join("pub"),
        );
        let code = keygen(KeygenArgs {
            out: tmp.path().join("keys"),
            unencrypted: true,
        })
        .await
        .unwrap();
        assert_eq!(code, ExitCode::Success);
        let key = std::fs::read_dir(tmp.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "key"))
            .unwrap();
        let pubkey = key.with_extension("pub");

        let art = tmp.path().join("xsc-kernel-bzImage");
        std::fs::write(&art, b"kernel").unwrap();
        let inputs = ReleaseInputs {
            version: "0.2.0".into(),
            commit: "abcdef1".into(),
            artifacts: vec![art],
            ..ReleaseInputs::default()
        };
        let cand = create_dev_candidate(&inputs, &cache, &cands).unwrap();
        let (_, dev_pub) = keys::dev_key_paths(&cache);
        let verify_with = |pubkey: &Path| VerifyArgs {
            dir: cand.dir.clone(),
            pubkey: Some(pubkey.into()),
            keyring: None,
        };
        assert_eq!(
            verify(verify_with(&dev_pub)).await.unwrap(),
            ExitCode::Success
        );
        assert_eq!(
            verify(verify_with(&pubkey)).await.unwrap(),
            ExitCode::ProductFailed
        );
        let err = verify(verify_with(&tmp.path().join("nope.pub")))
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::BadInput);

        let args = PromoteArgs {
            candidate_id: cand.name.clone(),
            version: "0.2.0".into(),
            key: key.clone(),
            allow_flaky: false,
            publish_root: None,
            keyring: None,
            publish: None,
        };
        assert_eq!(
            promote(
                args.clone(),
                &pubroot,
                &cands,
                &cache,
                &BTreeMap::new(),
                &cache
            )
            .await
            .unwrap(),
            ExitCode::Success
        );
        let release = VerifyArgs {
            dir: pubroot.join("0.2.0"),
            pubkey: Some(pubkey),
            keyring: None,
        };
        assert_eq!(verify(release).await.unwrap(), ExitCode::Success);
        let err = promote(
            args.clone(),
            &pubroot,
            &cands,
            &cache,
            &BTreeMap::new(),
            &cache,
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::ReleaseRefused, "{err}");
        let missing = PromoteArgs {
            candidate_id: "nope".into(),
            version: "0.2.1".into(),
            ..args
        };
        let err = promote(missing, &pubroot, &cands, &cache, &BTreeMap::new(), &cache)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ReleaseError::CandidateNotFound { .. }),
            "{err}"
        );
    }
}
