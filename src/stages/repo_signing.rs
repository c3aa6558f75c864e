//! Signing of the published package repositories: `apt/` (the `.deb`s, `Packages`,
//! `Release`) and `rpm/` (the RPMs and `repodata/`), copied out of the deb- and
//! rpm-packages stage entries and, when `[packages] gpg-keyring` is configured, signed with
//! GPG: apt `InRelease` (clear-signed `Release`) and `Release.gpg`,
//! `repodata/repomd.xml.asc`, the RPMs with `rpmsign` (unless `sign-rpms = false`; then
//! createrepo_c indexes the signed RPMs again, since their checksums changed), and the
//! public key beside each (`apt/xsc-archive-keyring.asc` for apt's `signed-by`,
//! `rpm/RPM-GPG-KEY-xsc` for dnf's `gpgkey`).
//!
//! The key is imported into a throw-away GPG home per signing, never the user's keyring;
//! its gpg-agent is stopped and the home removed afterwards. Signing is not a cached stage:
//! the key is a secret the shared cache must not hold, and a signature carries its time.
//! Command lines are pure functions below, tested as data.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::BuildError;
use super::rpm_package;
use crate::input::config::RepoSigning;
use crate::sys::process::{self, Cmd};

/// The apt repository's directory in a release and below `packages/`.
pub(crate) const APT_DIR: &str = "apt";
/// The RPM repository's directory in a release and below `packages/`.
pub(crate) const RPM_DIR: &str = "rpm";
/// The public key in the apt repository (apt's `signed-by` reads an armored `.asc`).
pub(crate) const APT_KEY: &str = "xsc-archive-keyring.asc";
/// The public key in the RPM repository (EL's naming, for `gpgkey=` and `rpm --import`).
pub(crate) const RPM_KEY: &str = "RPM-GPG-KEY-xsc";
/// The environment variable naming a file with the key's passphrase (none: no passphrase).
pub(crate) const PASSPHRASE_ENV: &str = "XSC_GPG_PASSPHRASE_FILE";
/// Host tools of signing, with their Debian packages.
pub(crate) const SIGNING_TOOLS: &[(&str, &str)] = &[
    ("gpg", "gnupg"),
    ("gpgconf", "gpgconf"),
    ("rpmsign", "rpm"),
    ("createrepo_c", "createrepo-c"),
];

/// How the repositories were published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Signing {
    /// No `[packages] gpg-keyring`: the metadata carries no signature.
    Unsigned,
    /// Signed by the key with this fingerprint.
    Signed {
        /// The signing key's fingerprint.
        fingerprint: String,
        /// Whether the RPMs themselves carry a signature too.
        rpms: bool,
    },
}

impl Signing {
    /// One phrase for the commands' output.
    pub(crate) fn describe(&self) -> String {
        match self {
            Signing::Unsigned => {
                "unsigned (no [packages] gpg-keyring in xsc.toml: apt needs trusted=yes, dnf gpgcheck=0)"
                    .into()
            }
            Signing::Signed { fingerprint, rpms } => format!(
                "GPG-signed by {fingerprint} (InRelease, Release.gpg, repomd.xml.asc{})",
                if *rpms { ", the RPMs" } else { "" }
            ),
        }
    }
}

/// The key that signs: where `[packages]` says it is, and its passphrase file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key<'a> {
    /// `[packages]`.
    pub config: &'a RepoSigning,
    /// The file holding the passphrase; `None`: the key has none.
    pub passphrase: Option<&'a Path>,
}

/// Where the passphrase comes from: a file named by `XSC_GPG_PASSPHRASE_FILE`, if set.
pub(crate) fn passphrase_file() -> Option<PathBuf> {
    std::env::var_os(PASSPHRASE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `gpg --batch --homedir HOME` with the passphrase (loopback pinentry: no terminal, no
/// dialog) and the rest.
fn gpg(home: &Path, passphrase: Option<&Path>, rest: &[OsString]) -> Cmd {
    let mut argv: Vec<OsString> = vec![
        "gpg".into(),
        "--batch".into(),
        "--no-tty".into(),
        "--homedir".into(),
        home.into(),
    ];
    if let Some(p) = passphrase {
        argv.extend([
            "--pinentry-mode".into(),
            "loopback".into(),
            "--passphrase-file".into(),
            p.into(),
        ]);
    }
    argv.extend(rest.iter().cloned());
    Cmd::new(argv).deadline(Duration::from_secs(120))
}

/// Imports the exported secret key into the throw-away home.
pub(crate) fn import_cmd(home: &Path, passphrase: Option<&Path>, keyring: &Path) -> Cmd {
    gpg(home, passphrase, &["--import".into(), keyring.into()])
}

/// Lists the secret keys (`--with-colons`; [`secret_fingerprints`] reads it).
pub(crate) fn list_cmd(home: &Path) -> Cmd {
    gpg(
        home,
        None,
        &["--with-colons".into(), "--list-secret-keys".into()],
    )
}

/// `InRelease`: the clear-signed `Release`.
pub(crate) fn clearsign_cmd(
    home: &Path,
    passphrase: Option<&Path>,
    id: &str,
    input: &Path,
    out: &Path,
) -> Cmd {
    sign_cmd(home, passphrase, id, &["--clearsign"], input, out)
}

/// An armored detached signature (`Release.gpg`, `repomd.xml.asc`).
pub(crate) fn detach_sign_cmd(
    home: &Path,
    passphrase: Option<&Path>,
    id: &str,
    input: &Path,
    out: &Path,
) -> Cmd {
    sign_cmd(
        home,
        passphrase,
        id,
        &["--armor", "--detach-sign"],
        input,
        out,
    )
}

/// A signature by key `id` of `input` into `out`, in the form `how` asks for (SHA-512: apt
/// refuses SHA-1 signatures).
fn sign_cmd(
    home: &Path,
    passphrase: Option<&Path>,
    id: &str,
    how: &[&str],
    input: &Path,
    out: &Path,
) -> Cmd {
    let mut args: Vec<OsString> = vec![
        "--local-user".into(),
        id.into(),
        "--digest-algo".into(),
        "SHA512".into(),
    ];
    args.extend(how.iter().map(|h| (*h).into()));
    args.extend(["--output".into(), out.into(), input.into()]);
    gpg(home, passphrase, &args)
}

/// The armored public key on stdout.
pub(crate) fn export_cmd(home: &Path, id: &str) -> Cmd {
    gpg(
        home,
        None,
        &["--armor".into(), "--export".into(), id.into()],
    )
}

/// `rpmsign --addsign` with the throw-away home's key. `__gpg` is named because Debian's
/// rpm defaults to `/usr/bin/gpg2`, which Debian does not ship (measured); the extra
/// arguments are rpm's hook for the loopback passphrase.
pub(crate) fn rpmsign_cmd(
    home: &Path,
    gpg_bin: &Path,
    passphrase: Option<&Path>,
    id: &str,
    rpms: &[PathBuf],
) -> Cmd {
    let mut argv: Vec<OsString> = vec!["rpmsign".into(), "--addsign".into()];
    let mut define = |k: &str, v: String| {
        argv.push("--define".into());
        argv.push(format!("{k} {v}").into());
    };
    define("_gpg_name", id.to_string());
    define("_gpg_path", home.display().to_string());
    define("__gpg", gpg_bin.display().to_string());
    define("_gpg_digest_algo", "sha512".into());
    if let Some(p) = passphrase {
        define(
            "_gpg_sign_cmd_extra_args",
            format!(
                "--batch --pinentry-mode loopback --passphrase-file {}",
                p.display()
            ),
        );
    }
    argv.extend(rpms.iter().map(|p| p.as_os_str().to_os_string()));
    Cmd::new(argv).deadline(Duration::from_secs(300))
}

/// Stops the throw-away home's gpg-agent (gpg starts one for the first secret-key
/// operation; it would outlive us otherwise).
pub(crate) fn kill_agent_cmd(home: &Path) -> Cmd {
    Cmd::new([
        OsString::from("gpgconf"),
        "--homedir".into(),
        home.into(),
        "--kill".into(),
        "gpg-agent".into(),
    ])
    .deadline(Duration::from_secs(30))
}

/// The fingerprints of the primary secret keys in `gpg --with-colons --list-secret-keys`
/// (the `fpr` line right after each `sec` line; subkeys' `ssb` are not signing choices).
pub(crate) fn secret_fingerprints(colons: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_sec = false;
    for line in colons.lines() {
        let f: Vec<&str> = line.split(':').collect();
        match f.first() {
            Some(&"sec") => after_sec = true,
            Some(&"fpr") if after_sec => {
                if let Some(fpr) = f.get(9) {
                    out.push((*fpr).to_string());
                }
                after_sec = false;
            }
            Some(&"ssb") => after_sec = false,
            _ => {}
        }
    }
    out
}

/// Which key signs: the configured fingerprint (or long key id, the fingerprint's tail)
/// if the keyring has it, else the keyring's only secret key.
pub(crate) fn choose_key(
    have: &[String],
    wanted: Option<&str>,
    keyring: &Path,
) -> Result<String, BuildError> {
    let bad = |reason: String| BuildError::SigningKey {
        path: keyring.to_path_buf(),
        reason,
    };
    match wanted {
        Some(w) => have
            .iter()
            .find(|f| f.to_ascii_uppercase().ends_with(&w.to_ascii_uppercase()))
            .cloned()
            .ok_or_else(|| {
                bad(format!(
                    "[packages] gpg-fingerprint {w} is not a secret key of it (it has: {})",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                ))
            }),
        None => match have {
            [one] => Ok(one.clone()),
            [] => Err(bad(
                "it holds no secret key (export one with gpg --export-secret-keys)".into(),
            )),
            many => Err(bad(format!(
                "it holds {} secret keys ({}): name one with [packages] gpg-fingerprint",
                many.len(),
                many.join(", ")
            ))),
        },
    }
}

/// A throw-away GPG home with the configured key imported. [`GpgHome::close`] stops its
/// agent and removes it. A short path below the temp dir: gpg-agent's socket path must fit
/// a `sockaddr_un`.
pub(crate) struct GpgHome {
    dir: PathBuf,
    passphrase: Option<PathBuf>,
    /// The signing key's fingerprint.
    pub fingerprint: String,
}

impl GpgHome {
    /// Imports `key`.
    pub(crate) async fn import(key: Key<'_>, log: &Path) -> Result<GpgHome, BuildError> {
        let signing = key.config;
        let bad = |reason: String| BuildError::SigningKey {
            path: signing.keyring.clone(),
            reason,
        };
        if !signing.keyring.is_file() {
            return Err(bad(
                "[packages] gpg-keyring: no such file (export the key with gpg --export-secret-keys)"
                    .into(),
            ));
        }
        let passphrase = key.passphrase.map(Path::to_path_buf);
        if let Some(p) = &passphrase
            && !p.is_file()
        {
            return Err(bad(format!(
                "{PASSPHRASE_ENV} names {}, which is not a file",
                p.display()
            )));
        }
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xsc-gpg-{}-{n}", std::process::id()));
        // Left by a crashed run whose pid we now have: nobody else uses it.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(BuildError::io("failed to create", &dir))?;
        let mut home = GpgHome {
            dir,
            passphrase,
            fingerprint: String::new(),
        };
        let r = home.import_key(signing, log).await;
        if r.is_err() {
            home.stop_agent().await;
        }
        r.map(|()| home)
    }

    async fn import_key(&mut self, signing: &RepoSigning, log: &Path) -> Result<(), BuildError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dir.clone();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(BuildError::io("failed to chmod", &dir))?;
        let pass = self.passphrase.as_deref();
        run(
            &import_cmd(&dir, pass, &signing.keyring),
            "gpg --import [packages] gpg-keyring",
            log,
        )
        .await?;
        let out = process::run(&list_cmd(&dir), None)
            .await
            .map_err(BuildError::step("gpg --list-secret-keys"))?;
        self.fingerprint = choose_key(
            &secret_fingerprints(&out.stdout),
            signing.fingerprint.as_deref(),
            &signing.keyring,
        )?;
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    /// The armored public key.
    async fn public_key(&self) -> Result<String, BuildError> {
        let out = process::run(&export_cmd(self.path(), &self.fingerprint), None)
            .await
            .map_err(BuildError::step("gpg --export"))?;
        Ok(out.stdout)
    }

    async fn stop_agent(&self) {
        // Best effort: an agent that never started has nothing to stop.
        let _ = process::run(&kill_agent_cmd(self.path()), None).await;
    }

    /// Stops the agent; the directory goes with the value.
    pub(crate) async fn close(self) {
        self.stop_agent().await;
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Signs the apt repository in `apt`: `InRelease`, `Release.gpg`, the public key.
pub(crate) async fn sign_apt(home: &GpgHome, apt: &Path, log: &Path) -> Result<(), BuildError> {
    let (dir, pass, id) = (home.path(), home.passphrase.as_deref(), &home.fingerprint);
    let release = apt.join("Release");
    let cmd = clearsign_cmd(dir, pass, id, &release, &apt.join("InRelease"));
    run(&cmd, "gpg --clearsign Release", log).await?;
    let cmd = detach_sign_cmd(dir, pass, id, &release, &apt.join("Release.gpg"));
    run(&cmd, "gpg --detach-sign Release", log).await?;
    write(&apt.join(APT_KEY), home.public_key().await?.as_bytes())
}

/// Signs the RPM repository in `rpm`: the RPMs (when asked; then the repodata is made
/// again, since their checksums changed), `repomd.xml.asc`, the public key.
pub(crate) async fn sign_rpm(
    home: &GpgHome,
    rpm: &Path,
    sign_rpms: bool,
    sde: i64,
    log: &Path,
) -> Result<(), BuildError> {
    let (dir, pass, id) = (home.path(), home.passphrase.as_deref(), &home.fingerprint);
    if sign_rpms {
        let rpms = files_with(rpm, "rpm")?;
        let gpg_bin = process::which("gpg").unwrap_or_else(|| PathBuf::from("/usr/bin/gpg"));
        run(&rpmsign_cmd(dir, &gpg_bin, pass, id, &rpms), "rpmsign", log).await?;
        let repodata = rpm.join("repodata");
        std::fs::remove_dir_all(&repodata)
            .map_err(BuildError::io("failed to remove", &repodata))?;
        run(&rpm_package::createrepo_cmd(rpm, sde), "createrepo_c", log).await?;
    }
    let repomd = rpm.join("repodata/repomd.xml");
    let cmd = detach_sign_cmd(dir, pass, id, &repomd, &rpm.join("repodata/repomd.xml.asc"));
    run(&cmd, "gpg --detach-sign repomd.xml", log).await?;
    write(&rpm.join(RPM_KEY), home.public_key().await?.as_bytes())
}

/// `publish` with the project's `[packages]` key, if one is configured (its passphrase from
/// the file the environment names); none: unsigned.
pub(crate) async fn publish_configured(
    signing: Option<&RepoSigning>,
    debs: &Path,
    rpms: &Path,
    apt: &Path,
    rpm: &Path,
    sde: i64,
    log: &Path,
) -> Result<Signing, BuildError> {
    let pass = signing.and_then(|_| passphrase_file());
    let key = signing.map(|config| Key {
        config,
        passphrase: pass.as_deref(),
    });
    publish(debs, rpms, apt, rpm, key, sde, log).await
}

/// The two repositories: the stage entries `debs` and `rpms` copied to `apt` and `rpm`
/// (real copies: rpmsign rewrites the RPMs, and a hard link would change the cache entry),
/// signed when `signing` is given.
pub(crate) async fn publish(
    debs: &Path,
    rpms: &Path,
    apt: &Path,
    rpm: &Path,
    key: Option<Key<'_>>,
    sde: i64,
    log: &Path,
) -> Result<Signing, BuildError> {
    copy_entry(debs, apt)?;
    copy_entry(rpms, rpm)?;
    let Some(key) = key else {
        return Ok(Signing::Unsigned);
    };
    let s = key.config;
    crate::stages::tools::check_tools(SIGNING_TOOLS)?;
    let home = GpgHome::import(key, log).await?;
    let r = async {
        sign_apt(&home, apt, log).await?;
        sign_rpm(&home, rpm, s.sign_rpms, sde, log).await
    }
    .await;
    let fingerprint = home.fingerprint.clone();
    home.close().await;
    r?;
    Ok(Signing::Signed {
        fingerprint,
        rpms: s.sign_rpms,
    })
}

/// The RPM repository of an EL install medium: the stage entry `rpms` copied to `out`
/// and signed like the published one when a key is given (the kickstarts' `%post` then
/// makes the installed system check against `RPM-GPG-KEY-xsc`); unsigned, the entry as is.
pub(crate) async fn medium_repo(
    rpms: &Path,
    out: &Path,
    key: Option<Key<'_>>,
    sde: i64,
    log: &Path,
) -> Result<Signing, BuildError> {
    copy_entry(rpms, out)?;
    let Some(key) = key else {
        return Ok(Signing::Unsigned);
    };
    crate::stages::tools::check_tools(SIGNING_TOOLS)?;
    let home = GpgHome::import(key, log).await?;
    let r = sign_rpm(&home, out, key.config.sign_rpms, sde, log).await;
    let fingerprint = home.fingerprint.clone();
    home.close().await;
    r?;
    Ok(Signing::Signed {
        fingerprint,
        rpms: key.config.sign_rpms,
    })
}

/// Every file below `dir` as `(<top>/<relative path>, path)`: a repository's entries for
/// a release's `artifact_paths`.
pub(crate) fn release_paths(top: &str, dir: &Path) -> Result<Vec<(String, PathBuf)>, BuildError> {
    Ok(crate::sys::cache::walk_sorted(dir)
        .map_err(BuildError::io("cannot read", dir))?
        .into_iter()
        .map(|rel| (format!("{top}/{}", rel.to_string_lossy()), dir.join(rel)))
        .collect())
}

fn files_with(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, BuildError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(BuildError::io("cannot read", dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    Ok(out)
}

/// Copies the files of a stage entry (not its bookkeeping) into a fresh `to`.
fn copy_entry(from: &Path, to: &Path) -> Result<(), BuildError> {
    let _ = std::fs::remove_dir_all(to);
    for rel in crate::sys::cache::walk_sorted(from).map_err(BuildError::io("cannot read", from))? {
        let name = rel.to_string_lossy();
        if name == "entry.json" || name == "build.log" {
            continue;
        }
        let dst = to.join(&rel);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(BuildError::io("failed to create", p))?;
        }
        std::fs::copy(from.join(&rel), &dst).map_err(BuildError::io("failed to copy", &dst))?;
    }
    Ok(())
}

async fn run(cmd: &Cmd, what: &str, log: &Path) -> Result<(), BuildError> {
    process::run(cmd, Some(log))
        .await
        .map(|_| ())
        .map_err(BuildError::step(what.to_string()))
}

fn write(path: &Path, data: &[u8]) -> Result<(), BuildError> {
    std::fs::write(path, data).map_err(BuildError::io("failed to write", path))
}

#[cfg(test)]
// The tests check the signatures with gpg, gpgv, apt, rpm and dnf themselves (only sys
// spawns in the product; clippy.toml).
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::stages::package_set::fixture;
    use crate::stages::{deb_package, rpm_package};
    use std::process::Command;

    fn out_text(o: &std::process::Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    /// Runs `script` with `sh -c`; returns (success, output).
    fn sh(script: &str, env: &[(&str, &Path)]) -> (bool, String) {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().expect("sh");
        (o.status.success(), out_text(&o))
    }

    #[test]
    fn command_lines_are_data() {
        let (h, p) = (Path::new("/g"), Path::new("/s/pass"));
        assert_eq!(
            clearsign_cmd(
                h,
                None,
                "ABCD",
                Path::new("/a/Release"),
                Path::new("/a/InRelease")
            )
            .to_string(),
            "gpg --batch --no-tty --homedir /g --local-user ABCD --digest-algo SHA512 \
             --clearsign --output /a/InRelease /a/Release"
        );
        assert_eq!(
            detach_sign_cmd(
                h,
                Some(p),
                "ABCD",
                Path::new("/r.xml"),
                Path::new("/r.xml.asc")
            )
            .to_string(),
            "gpg --batch --no-tty --homedir /g --pinentry-mode loopback --passphrase-file \
             /s/pass --local-user ABCD --digest-algo SHA512 --armor --detach-sign --output \
             /r.xml.asc /r.xml"
        );
        let r = rpmsign_cmd(
            h,
            Path::new("/usr/bin/gpg"),
            Some(p),
            "ABCD",
            &[PathBuf::from("/r/a.rpm")],
        )
        .to_string();
        assert_eq!(
            r,
            "rpmsign --addsign --define '_gpg_name ABCD' --define '_gpg_path /g' \
             --define '__gpg /usr/bin/gpg' --define '_gpg_digest_algo sha512' \
             --define '_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback \
             --passphrase-file /s/pass' /r/a.rpm"
        );
        assert_eq!(
            kill_agent_cmd(h).to_string(),
            "gpgconf --homedir /g --kill gpg-agent"
        );
    }

    #[test]
    fn the_signing_key_is_the_configured_or_the_only_one() {
        let colons = "sec:u:255:22:A177F8332FAD2472:1796523421:::u:::scSC:::+::ed25519:::0:\n\
                      fpr:::::::::1095B2B73B421A0292618C27A177F8332FAD2472:\n\
                      ssb:u:255:18:1111111111111111:1796523421::::::e:::+::cv25519::\n\
                      fpr:::::::::22222222222222222222222222221111111111111111:\n\
                      sec:u:3072:1:C9BD50B51553F656:1796523421:::u:::scSC:::+:::::0:\n\
                      fpr:::::::::87375BCBEB4EE6D9DDD7AB19C9BD50B51553F656:\n";
        let have = secret_fingerprints(colons);
        assert_eq!(
            have,
            [
                "1095B2B73B421A0292618C27A177F8332FAD2472",
                "87375BCBEB4EE6D9DDD7AB19C9BD50B51553F656"
            ]
        );
        let k = Path::new("/k.asc");
        assert_eq!(
            choose_key(&have, Some("c9bd50b51553f656"), k).unwrap(),
            have[1]
        );
        let err = choose_key(&have, None, k).unwrap_err().to_string();
        assert!(
            err.contains("2 secret keys") && err.contains("gpg-fingerprint"),
            "{err}"
        );
        let err = choose_key(&have, Some("DEADBEEFDEADBEEF"), k)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a secret key of it"), "{err}");
        assert_eq!(choose_key(&have[..1], None, k).unwrap(), have[0]);
        assert!(choose_key(&[], None, k).is_err());
    }

    /// A scratch apt: its own state, cache and sources below `dir`, the host's methods;
    /// as root it fetches without dropping to `_apt` (the temp dir is private).
    fn scratch_apt(dir: &Path) -> PathBuf {
        for d in [
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/apt.conf.d",
            "etc/trusted.gpg.d",
            "etc/keyrings",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("state/status"), "").unwrap();
        let d = dir.display();
        let conf = dir.join("apt.conf");
        std::fs::write(
            &conf,
            format!(
                "Dir::State \"{d}/state\";\nDir::State::status \"{d}/state/status\";\n\
                 Dir::Cache \"{d}/cache\";\nDir::Etc \"{d}/etc\";\n\
                 Dir::Etc::sourcelist \"/dev/null\";\nDir::Etc::sourceparts \"{d}/etc/sources.list.d\";\n\
                 Dir::Etc::trusted \"/dev/null\";\nDir::Etc::trustedparts \"{d}/etc/trusted.gpg.d\";\n\
                 Dir::Etc::preferencesparts \"{d}/etc/preferences.d\";\nDir::Etc::parts \"{d}/etc/apt.conf.d\";\n\
                 Debug::NoLocking \"true\";\nAPT::Sandbox::User \"root\";\nAPT::Architecture \"amd64\";\n"
            ),
        )
        .unwrap();
        conf
    }

    /// A throw-away key made as the tests' own (RSA: what EL9's rpm verifies), protected
    /// by a passphrase so the loopback path is the one exercised; returns the exported
    /// secret key and the passphrase file.
    fn make_key(dir: &Path) -> (PathBuf, PathBuf, String) {
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let pass = dir.join("pass");
        std::fs::write(&pass, "correct horse\n").unwrap();
        let g = |args: &[&str]| {
            let o = Command::new("gpg")
                .args(["--batch", "--no-tty", "--homedir"])
                .arg(&home)
                .args(["--pinentry-mode", "loopback", "--passphrase-file"])
                .arg(&pass)
                .args(args)
                .output()
                .expect("gpg (gnupg in .ci/packages)");
            assert!(o.status.success(), "gpg {args:?}: {}", out_text(&o));
            String::from_utf8_lossy(&o.stdout).to_string()
        };
        g(&[
            "--quick-gen-key",
            "XSC repository test <t@example.org>",
            "rsa2048",
            "sign",
            "never",
        ]);
        let fpr = secret_fingerprints(&g(&["--with-colons", "--list-secret-keys"]))[0].clone();
        let key = dir.join("secret.asc");
        let armored = g(&["--armor", "--export-secret-keys", &fpr]);
        std::fs::write(&key, armored).unwrap();
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&home)
            .args(["--kill", "gpg-agent"])
            .status();
        (key, pass, fpr)
    }

    /// The fixture packages' two stage-entry-shaped repositories below `dir`.
    async fn entries(dir: &Path) -> (PathBuf, PathBuf, i64) {
        let inputs = fixture::inputs(&dir.join("in"));
        let sde = inputs.epoch.secs;
        let log = dir.join("build.log");
        let (debs, rpms) = (dir.join("debs"), dir.join("rpms"));
        let plans = deb_package::plans(&inputs).unwrap();
        deb_package::build_debs(&plans, sde, &dir.join("wd"), &debs, &log)
            .await
            .unwrap();
        deb_package::apt_repo(&debs, sde, &log).await.unwrap();
        let plans = rpm_package::plans(&inputs).unwrap();
        rpm_package::build_rpms(&plans, sde, &dir.join("wr"), &rpms, &log)
            .await
            .unwrap();
        run(
            &rpm_package::createrepo_cmd(&rpms, sde),
            "createrepo_c",
            &log,
        )
        .await
        .unwrap();
        (debs, rpms, sde)
    }

    /// The README's install lines for `distro` (`Debian 12`, `EL9`): the `sh` block after
    /// the paragraph naming it in "Installing XSC on an existing machine".
    fn readme_lines(distro: &str) -> Vec<String> {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        let section = readme
            .split("### Installing XSC on an existing machine")
            .nth(1)
            .expect("README has the install section");
        let after = section
            .split(&format!("{distro} machine"))
            .nth(1)
            .unwrap_or_else(|| panic!("README names a {distro} machine"));
        let block = after
            .split("```sh\n")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        block.lines().map(str::to_string).collect()
    }

    /// `line` with each `(from, to)` replaced; every `from` must occur, so a README whose
    /// lines changed shape fails here instead of testing something else.
    fn adapt(line: &str, subs: &[(&str, String)]) -> String {
        let mut out = line.to_string();
        for (from, to) in subs {
            assert!(out.contains(from), "README line {line:?} has no {from:?}");
            out = out.replace(from, to);
        }
        out
    }

    /// The whole path on the fixture packages with a throw-away key: the signed apt
    /// repository passes `gpgv` and `apt-get update` (the README's lines, with the host
    /// and /etc pointed into a scratch apt), a tampered `InRelease` is refused; the RPMs
    /// verify with `rpm -K` against the key (and not without it); dnf installs (download
    /// only, scratch root) through the README's `.repo` with `gpgcheck` and
    /// `repo_gpgcheck`, and refuses a repository whose `repomd.xml` was changed. Without a
    /// key: unsigned, and said so; a missing keyring is bad input. One test, so the fixture
    /// packages are built once.
    #[tokio::test]
    async fn signed_repositories_pass_gpgv_apt_rpm_and_dnf_and_tampering_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let (key, pass, fpr) = make_key(dir);
        let (debs, rpms, sde) = entries(dir).await;
        let release = dir.join("release");
        let (apt, rpm) = (release.join(APT_DIR), release.join(RPM_DIR));
        let signing = RepoSigning {
            keyring: key.clone(),
            fingerprint: Some(fpr[24..].to_string()),
            sign_rpms: true,
        };
        let key = Key {
            config: &signing,
            passphrase: Some(&pass),
        };
        let log = dir.join("signing.log");
        let got = publish(&debs, &rpms, &apt, &rpm, Some(key), sde, &log).await;
        let got = got.unwrap_or_else(|e| {
            panic!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        assert_eq!(
            got,
            Signing::Signed {
                fingerprint: fpr.clone(),
                rpms: true
            }
        );
        // `sign-rpms = false`, as an install medium's copy: the metadata signed, the RPMs
        // as built (digests only).
        let only_md = RepoSigning {
            sign_rpms: false,
            ..signing.clone()
        };
        let medium = dir.join("medium");
        let key = Key {
            config: &only_md,
            passphrase: Some(&pass),
        };
        let got = medium_repo(&rpms, &medium, Some(key), sde, &log)
            .await
            .unwrap();
        assert_eq!(
            got,
            Signing::Signed {
                fingerprint: fpr.clone(),
                rpms: false
            }
        );
        assert!(medium.join("repodata/repomd.xml.asc").is_file() && medium.join(RPM_KEY).is_file());
        let (ok, k) = sh(&format!("rpm -K {}/*.rpm", medium.display()), &[]);
        assert!(ok && k.matches("digests OK").count() == 3, "{k}");
        {
            // No key configured: the repositories as the stages made them, and that is said.
            let (apt, rpm) = (dir.join("o/apt"), dir.join("o/rpm"));
            let log = dir.join("log");
            let got = publish(&debs, &rpms, &apt, &rpm, None, sde, &log)
                .await
                .unwrap();
            assert_eq!(got, Signing::Unsigned);
            assert!(got.describe().starts_with("unsigned"));
            assert!(apt.join("Release").is_file() && !apt.join("InRelease").exists());
            assert!(rpm.join("repodata/repomd.xml").is_file());
            assert!(!rpm.join("repodata/repomd.xml.asc").exists());
            assert!(!apt.join("entry.json").exists() && !apt.join("build.log").exists());
            // The kickstarts' %post on an unsigned medium: no key, and the .repo says so.
            let sysroot = dir.join("sysroot");
            let (ok, o) = sh(&ks_post("alma/alma9-xsc.ks", &rpm, &sysroot), &[]);
            assert!(ok, "{o}");
            let text = std::fs::read_to_string(sysroot.join("etc/yum.repos.d/xsc.repo")).unwrap();
            assert!(
                text.contains(
                    "baseurl=file:///var/lib/xsc/rpm\nenabled=1\ngpgcheck=0\nrepo_gpgcheck=0\n"
                ),
                "{text}"
            );
            assert!(
                sysroot
                    .join("var/lib/xsc/rpm/repodata/repomd.xml")
                    .is_file()
            );
            assert!(!sysroot.join("etc/pki/rpm-gpg/RPM-GPG-KEY-xsc").exists());
            // A keyring that does not exist is bad input naming the file.
            let s = RepoSigning {
                keyring: dir.join("missing.asc"),
                fingerprint: None,
                sign_rpms: true,
            };
            let key = Key {
                config: &s,
                passphrase: None,
            };
            let err = publish(&debs, &rpms, &apt, &rpm, Some(key), sde, &log)
                .await
                .unwrap_err();
            assert!(matches!(err, BuildError::SigningKey { .. }), "{err}");
            assert!(err.to_string().contains("missing.asc"), "{err}");
        }
        // The entries are untouched (copies were signed).
        let (ok, k) = sh(&format!("rpm -K {}/*.rpm", rpms.display()), &[]);
        assert!(ok && k.matches("digests OK").count() == 3, "{k}");

        // gpgv with the published key alone.
        let keyring = dir.join("pub.gpg");
        let (ok, o) = sh(
            &format!(
                "gpg --dearmor < {} > {}",
                apt.join(APT_KEY).display(),
                keyring.display()
            ),
            &[],
        );
        assert!(ok, "{o}");
        let gpgv = |args: &str| sh(&format!("gpgv --keyring {} {args}", keyring.display()), &[]);
        let (ok, o) = gpgv(&apt.join("InRelease").display().to_string());
        assert!(ok, "{o}");
        let (ok, o) = gpgv(&format!(
            "{} {}",
            apt.join("Release.gpg").display(),
            apt.join("Release").display()
        ));
        assert!(ok, "{o}");
        let repodata = rpm.join("repodata");
        let (ok, o) = gpgv(&format!(
            "{} {}",
            repodata.join("repomd.xml.asc").display(),
            repodata.join("repomd.xml").display()
        ));
        assert!(ok, "{o}");

        // Debian 12: the README's two lines against the release directory.
        let scratch = dir.join("apt");
        let conf = scratch_apt(&scratch);
        let url = format!("file://{}", release.display());
        let lines = readme_lines("Debian 12");
        assert_eq!(lines.len(), 2, "{lines:?}");
        let host = ("https://YOUR-HOST/xsc", url.clone());
        let sudo = ("sudo ", String::new());
        let etc = ("/etc/apt/", format!("{}/etc/", scratch.display()));
        let first = adapt(&lines[0], &[host.clone(), sudo.clone(), etc]);
        // Only fetch: dpkg would install into this host.
        let install = ("install -y", "install -y --download-only".to_string());
        let second = adapt(&lines[1], &[sudo.clone(), install]);
        let (ok, o) = sh(&first, &[("APT_CONFIG", &conf)]);
        assert!(ok, "{first}: {o}");
        let (ok, o) = sh(&second, &[("APT_CONFIG", &conf)]);
        assert!(ok, "{}: {o}", lines[1]);
        assert!(o.contains("InRelease"), "{o}");
        for p in ["linux-image-xsc", "xsc-glibc", "xsc-tests"] {
            assert!(o.contains(p), "{p}: {o}");
        }
        // A changed InRelease (its date rewritten) is refused by apt and gpgv.
        let bad = dir.join("tampered");
        std::fs::create_dir_all(&bad).unwrap();
        let (ok, o) = sh(
            &format!(
                "cp -r {} {}/ && sed -i 's/^Date: .*/Date: Thu, 01 Jan 2099 00:00:00 UTC/' {}/apt/InRelease",
                apt.display(),
                bad.display(),
                bad.display()
            ),
            &[],
        );
        assert!(ok, "{o}");
        let (ok, o) = gpgv(&bad.join("apt/InRelease").display().to_string());
        assert!(!ok && o.contains("BAD signature"), "{o}");
        let list = std::fs::read_dir(scratch.join("etc/sources.list.d"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(&list).unwrap();
        std::fs::write(
            &list,
            text.replace(&url, &format!("file://{}", bad.display())),
        )
        .unwrap();
        let (ok, o) = sh("apt-get update", &[("APT_CONFIG", &conf)]);
        assert!(!ok && o.contains("BADSIG"), "{o}");

        // The RPMs: signed, verified with the key, not without it.
        let signed_rpms = files_with(&rpm, "rpm").unwrap();
        let names: Vec<String> = signed_rpms
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let (_, o) = sh(&format!("rpm -K {}", names.join(" ")), &[]);
        assert_eq!(o.matches("SIGNATURES NOT OK").count(), 3, "{o}");
        let db = dir.join("rpmdb");
        let (ok, o) = sh(
            &format!(
                "rpm --dbpath {} --import {} && rpm --dbpath {} -K {}",
                db.display(),
                rpm.join(RPM_KEY).display(),
                db.display(),
                names.join(" ")
            ),
            &[],
        );
        assert!(ok && o.matches("digests signatures OK").count() == 3, "{o}");

        // EL9: the README's two lines, dnf in a scratch root. The kernel RPM requires what
        // an EL9 base has (kernel-install, dracut, systemd-udev): a stand-in repository.
        let base = dir.join("el9-base");
        el9_stand_in(dir, &base);
        let lines = readme_lines("EL9");
        assert_eq!(lines.len(), 2, "{lines:?}");
        let repos = dir.join("yum.repos.d");
        std::fs::create_dir_all(&repos).unwrap();
        let dnf = |root: &str| {
            format!(
                "dnf --installroot={dir}/{root} --releasever=9 --setopt=reposdir={repos} \
                 --setopt=cachedir={dir}/{root}-cache --repofrompath=el9,file://{base} \
                 --setopt=el9.gpgcheck=0",
                dir = dir.display(),
                repos = repos.display(),
                base = base.display()
            )
        };
        let first = adapt(
            &lines[0],
            &[
                host,
                sudo.clone(),
                ("/etc/yum.repos.d/", format!("{}/", repos.display())),
            ],
        );
        let second = |root: &str| {
            adapt(
                &lines[1],
                &[
                    sudo.clone(),
                    (" && reboot", String::new()),
                    (
                        "dnf install -y",
                        format!("{} install -y --downloadonly", dnf(root)),
                    ),
                ],
            )
        };
        let (ok, o) = sh(&first, &[]);
        assert!(ok, "{first}: {o}");
        let (ok, o) = sh(&second("root"), &[]);
        assert!(ok, "{}: {o}", second("root"));
        assert!(
            o.contains("Complete!") && o.contains("Importing GPG key"),
            "{o}"
        );
        // The kickstarts' %post on a medium carrying this repository: the installed
        // system's .repo checks packages and metadata against the key it copied.
        for ks in ["alma/alma9-xsc.ks", "rocky/rocky9-xsc.ks"] {
            let sysroot = dir.join(format!("sysroot-{}", &ks[..4]));
            let (ok, o) = sh(&ks_post(ks, &rpm, &sysroot), &[]);
            assert!(ok, "{ks} %post: {o}");
            let repo_file = sysroot.join("etc/yum.repos.d/xsc.repo");
            let text = std::fs::read_to_string(&repo_file).unwrap();
            assert!(
                text.contains(
                    "gpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-xsc\n"
                ),
                "{text}"
            );
            // dnf on this host: the installed system's paths below the scratch sysroot.
            let here = format!("file://{}/", sysroot.display());
            std::fs::write(&repo_file, text.replace("file:///", &here)).unwrap();
            let (ok, o) = sh(
                &format!(
                    "dnf --installroot={s}/dnf --releasever=9 --setopt=reposdir={s}/etc/yum.repos.d \
                     --setopt=cachedir={s}/cache install -y --downloadonly xsc-tests",
                    s = sysroot.display()
                ),
                &[],
            );
            assert!(ok && o.contains("Importing GPG key"), "{ks}: {o}");
        }
        // A changed repomd.xml: dnf refuses the repository.
        let (ok, o) = sh(
            &format!(
                "sed -i 's#<revision>#<revision>9#' {}",
                repodata.join("repomd.xml").display()
            ),
            &[],
        );
        assert!(ok, "{o}");
        let (ok, o) = sh(&second("root2"), &[]);
        assert!(
            !ok && o.contains("repomd.xml GPG signature verification error"),
            "{o}"
        );
    }

    /// The kickstart's `%post --nochroot` block with the medium and the installed system's
    /// root pointed at `medium` and `sysroot`.
    fn ks_post(ks: &str, medium: &Path, sysroot: &Path) -> String {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("recipes")
                .join(ks),
        )
        .unwrap();
        let body = text
            .split("%post --nochroot --erroronfail\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{ks} has a %post --nochroot"))
            .split("%end")
            .next()
            .unwrap();
        adapt(
            body,
            &[
                (
                    "medium=/run/install/repo/xsc\n",
                    format!("medium={}\n", medium.display()),
                ),
                (
                    "sysroot=/mnt/sysroot\n",
                    format!("sysroot={}\n", sysroot.display()),
                ),
            ],
        )
    }

    /// A repository with one package providing what the XSC kernel RPM requires of an EL9
    /// system, so dnf can resolve it in a scratch root.
    fn el9_stand_in(dir: &Path, repo: &Path) {
        let top = dir.join("stand-in");
        std::fs::create_dir_all(&top).unwrap();
        let spec = top.join("el9-base.spec");
        std::fs::write(
            &spec,
            "Name: el9-base\nVersion: 1\nRelease: 1\nSummary: stand-in\nLicense: MIT\n\
             BuildArch: x86_64\nProvides: dracut\nProvides: systemd-udev\nProvides: /bin/sh\n\
             %description\nWhat the XSC kernel RPM requires of EL9, for a scratch root.\n\
             %install\nmkdir -p %{buildroot}/usr/bin\n: > %{buildroot}/usr/bin/kernel-install\n\
             %files\n/usr/bin/kernel-install\n",
        )
        .unwrap();
        let (ok, o) = sh(
            &format!(
                "rpmbuild -bb --define '_topdir {t}' {s} && mkdir -p {r} && cp {t}/RPMS/x86_64/*.rpm {r}/ \
                 && createrepo_c --no-database {r}",
                t = top.display(),
                s = spec.display(),
                r = repo.display()
            ),
            &[],
        );
        assert!(ok, "{o}");
    }
}
