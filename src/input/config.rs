//! The project config, `xsc.toml` at the repository root: where the cache, outputs and
//! releases live, which Debian mirror and pinned sources to use, and default test settings.
//!
//! Found like cargo finds `Cargo.toml`: `--config`/`XSC_CONFIG` when given, else the first
//! `xsc.toml` in the working directory or one of its parents, so every command works from
//! any subdirectory of the clone. Every relative path in it resolves from the file's own
//! directory, never from the caller's working directory.
//!
//! Read strictly through [`crate::input::toml_strict`]: unknown keys are errors and every problem is
//! reported at once with `file:line: key`. docs/config.md documents each key; keep it true.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::input::toml_strict::{Doc, Problem, Problems, Tbl};

/// A source package pinned by version and content hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedSource {
    /// Debian source-carrying binary package, e.g. `linux-source-6.1`.
    pub package: String,
    /// Exact Debian version, e.g. `6.1.192-3`.
    pub version: String,
    /// sha256 of the tarball the package ships.
    pub sha256: String,
    /// Path of the tarball inside the package (or on the host once installed).
    pub tarball: PathBuf,
}

/// A distribution's install ISO the EL remaster starts from (`[sources.alma]`,
/// `[sources.rocky]`): a path (relative to the config file) or an http(s) URL, and its
/// sha256, checked before use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseIso {
    /// Path or URL.
    pub iso: String,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// The kernel profile whose RPMs go on the medium (`kernel-profile`, default `el`:
    /// what an EL9 install needs; `qemu` for the lean kernel, e.g. a remaster test).
    pub kernel_profile: String,
}

/// The kernel profile an EL install medium carries unless `kernel-profile` says otherwise.
pub(crate) const EL_KERNEL_PROFILE: &str = "el";

/// Where `[publish.<name>]` uploads a release or candidate directory. Credentials are never
/// here: S3 reads the `AWS_*` environment, rsync uses ssh's own (agent, `~/.ssh/config`,
/// `RSYNC_RSH`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishTarget {
    /// An S3-compatible bucket: `s3://<bucket>/<prefix>`.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix (no leading or trailing `/`; may be empty).
        prefix: String,
        /// Endpoint URL of an S3-compatible server; `None` = AWS.
        endpoint: Option<String>,
        /// Region; `None` = `AWS_REGION` or the client's default.
        region: Option<String>,
    },
    /// rsync over SSH: `[user@]host:/path`.
    Rsync {
        /// The rsync destination directory.
        destination: String,
    },
}

/// `[packages]`: the GPG key that signs the published package repositories (apt
/// `InRelease` and `Release.gpg`, `repodata/repomd.xml.asc`) and, with `sign-rpms`, the
/// RPMs. Only where the key is: the secret key itself is a file the user keeps (an export
/// of `gpg --export-secret-keys`), its passphrase comes from `XSC_GPG_PASSPHRASE_FILE`;
/// neither is ever written into xsc.toml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoSigning {
    /// `gpg-keyring`: the exported secret key (armored or binary), relative to the config
    /// file; imported into a throw-away GPG home for each signing.
    pub keyring: PathBuf,
    /// `gpg-fingerprint`: which key of the keyring signs; `None` = its only secret key.
    pub fingerprint: Option<String>,
    /// `sign-rpms`: also `rpmsign --addsign` the RPMs (default true).
    pub sign_rpms: bool,
}

/// Test defaults from `[test]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestDefaults {
    /// Parallel scenarios; `None` = fit cores and memory.
    pub jobs: Option<usize>,
    /// `auto`, `kvm` or `tcg`.
    pub accel: String,
    /// Boot clock under TCG (KVM gets a fifth of it).
    pub boot_timeout: Duration,
    /// Per guest program clock under TCG.
    pub test_timeout: Duration,
    /// No-output clock under TCG.
    pub silence_timeout: Duration,
}

/// The whole project config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from (or where it would be).
    pub file: PathBuf,
    /// Repository root (directory of the config file).
    pub root: PathBuf,
    /// Content-addressed build cache, shared across clones and CI runs.
    pub cache_dir: PathBuf,
    /// Run state, logs of runs: `out/`.
    pub out_dir: PathBuf,
    /// Where candidates and releases are published.
    pub publish_dir: PathBuf,
    /// Scenario files (`scenarios/`).
    pub scenarios_dir: PathBuf,
    /// Guest program sources (`guest-tests/`).
    pub guest_tests_dir: PathBuf,
    /// Debian mirror override; `None` = the host's apt sources.
    pub debian_mirror: Option<String>,
    /// Debian suite.
    pub debian_suite: String,
    /// The kernel source.
    pub linux: PinnedSource,
    /// The glibc source.
    pub glibc: PinnedSource,
    /// Kernel build profile used by `candidate` and the default scenarios.
    pub kernel_profile: String,
    /// `[sources.alma]`: the AlmaLinux 9 ISO `build alma` remasters; `None` = not configured.
    pub alma: Option<BaseIso>,
    /// `[sources.rocky]`: the same for Rocky Linux 9.
    pub rocky: Option<BaseIso>,
    /// Test defaults.
    pub test: TestDefaults,
    /// `[publish.<name>]` targets by name.
    pub publish: std::collections::BTreeMap<String, PublishTarget>,
    /// `[build] epoch`: the build time (seconds since 1970) when no git history of a
    /// stage's inputs decides it (a source tarball, a shallow clone); see `sys::epoch`.
    pub build_epoch: Option<i64>,
    /// `[packages]`: repository signing; `None` = the repositories are published unsigned.
    pub repo_signing: Option<RepoSigning>,
}

/// Default cache directory: `$XSC_CACHE_DIR`, else `$XDG_CACHE_HOME/xsc-release`, else
/// `~/.cache/xsc-release`. Outside the clone so that every clone and CI run on a machine
/// shares built kernels.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XSC_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("xsc-release");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/xsc-release")
}

/// The config file's name, looked for in the working directory and its parents.
pub(crate) const FILE_NAME: &str = "xsc.toml";

/// The nearest `xsc.toml` in `start` or one of its ancestors (like cargo and git).
pub(crate) fn find_upwards(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
}

/// The config file to read: `explicit` (`--config` or `XSC_CONFIG`) wins; otherwise the
/// nearest `xsc.toml` from `cwd` upwards. Not finding one is a config problem (exit 2)
/// that names where we looked.
pub(crate) fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, Problems> {
    if let Some(file) = explicit {
        return Ok(file.to_path_buf());
    }
    find_upwards(cwd).ok_or_else(|| {
        Problems(vec![Problem {
            file: cwd.join(FILE_NAME),
            line: None,
            key: String::new(),
            message: format!(
                "no {FILE_NAME} in {} or any parent directory (use --config or XSC_CONFIG)",
                cwd.display()
            ),
        }])
    })
}

impl Config {
    /// Finds the config ([`locate`] from the working directory) and loads it.
    pub(crate) fn discover(explicit: Option<&Path>) -> Result<Config, Problems> {
        // An unreadable cwd (deleted under us) still lets an explicit --config work.
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Config::load(&locate(explicit, &cwd)?)
    }

    /// Reads and validates `file`, reporting every problem.
    pub fn load(file: &Path) -> Result<Config, Problems> {
        // Absolute, so run directories and messages do not depend on the caller's cwd.
        let file = &std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let text = std::fs::read_to_string(file).map_err(|e| {
            Problems(vec![Problem {
                file: file.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read config: {e}"),
            }])
        })?;
        Config::parse(file, text)
    }

    /// Validates config text that came from `file`.
    pub fn parse(file: &Path, text: String) -> Result<Config, Problems> {
        let doc = Doc::parse(file, text).map_err(|p| Problems(vec![p]))?;
        let root_dir = file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let root_dir = if root_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            root_dir
        };
        let root = doc.root();
        doc.only_keys(
            &root,
            &[
                "paths", "debian", "sources", "kernel", "test", "build", "publish", "packages",
            ],
        );

        let resolve = |p: String| {
            let p = expand_home(&p);
            if p.is_absolute() { p } else { root_dir.join(p) }
        };
        let (mut cache_dir, mut out_dir, mut publish_dir) = (
            default_cache_dir(),
            root_dir.join("out"),
            root_dir.join("releases"),
        );
        let (mut scenarios_dir, mut guest_tests_dir) =
            (root_dir.join("scenarios"), root_dir.join("guest-tests"));
        if let Some(paths) = doc.table(&root, "paths") {
            doc.only_keys(
                &paths,
                &["cache", "out", "publish", "scenarios", "guest-tests"],
            );
            if let Some(p) = doc.str(&paths, "scenarios") {
                scenarios_dir = resolve(p);
            }
            if let Some(p) = doc.str(&paths, "guest-tests") {
                guest_tests_dir = resolve(p);
            }
            if let Some(p) = doc.str(&paths, "cache") {
                cache_dir = resolve(p);
            }
            if let Some(p) = doc.str(&paths, "out") {
                out_dir = resolve(p);
            }
            if let Some(p) = doc.str(&paths, "publish") {
                publish_dir = resolve(p);
            }
        }
        // The environment wins over the file so CI can point a run elsewhere.
        if let Some(dir) = std::env::var_os("XSC_CACHE_DIR") {
            cache_dir = PathBuf::from(dir);
        }

        let (mut debian_mirror, mut debian_suite) = (None, "bookworm".to_string());
        if let Some(deb) = doc.table(&root, "debian") {
            doc.only_keys(&deb, &["mirror", "suite"]);
            debian_mirror = doc.str(&deb, "mirror").filter(|m| !m.is_empty());
            if let Some(s) = doc.str(&deb, "suite") {
                debian_suite = s;
            }
        }

        let mut linux = None;
        let mut glibc = None;
        let (mut alma, mut rocky) = (None, None);
        match doc.table(&root, "sources") {
            Some(src) => {
                doc.only_keys(&src, &["linux", "glibc", "alma", "rocky"]);
                linux = pinned(&doc, &src, "linux");
                glibc = pinned(&doc, &src, "glibc");
                alma = base_iso(&doc, &src, "alma", &root_dir);
                rocky = base_iso(&doc, &src, "rocky", &root_dir);
            }
            None => doc.problem(None, "sources", "missing required table [sources]"),
        }

        let mut kernel_profile = "qemu".to_string();
        if let Some(k) = doc.table(&root, "kernel") {
            doc.only_keys(&k, &["profile"]);
            if let Some(p) = doc.str(&k, "profile") {
                if ["qemu", "debian"].contains(&p.as_str()) {
                    kernel_profile = p;
                } else {
                    doc.problem(
                        k.key_span("profile"),
                        "kernel.profile",
                        format!("unknown profile {p:?} (expected qemu or debian)"),
                    );
                }
            }
        }

        let mut test = TestDefaults {
            jobs: None,
            accel: "auto".into(),
            boot_timeout: Duration::from_secs(120),
            test_timeout: Duration::from_secs(300),
            silence_timeout: Duration::from_secs(120),
        };
        if let Some(t) = doc.table(&root, "test") {
            doc.only_keys(
                &t,
                &[
                    "jobs",
                    "accel",
                    "boot-timeout",
                    "test-timeout",
                    "silence-timeout",
                ],
            );
            if let Some(j) = doc.uint(&t, "jobs") {
                test.jobs = (j > 0).then(|| usize::try_from(j).unwrap_or(usize::MAX));
            }
            if let Some(a) = doc.str(&t, "accel") {
                if ["auto", "kvm", "tcg"].contains(&a.as_str()) {
                    test.accel = a;
                } else {
                    doc.problem(
                        t.key_span("accel"),
                        "test.accel",
                        format!("unknown accelerator {a:?} (expected auto, kvm or tcg)"),
                    );
                }
            }
            if let Some(d) = doc.duration(&t, "boot-timeout") {
                test.boot_timeout = d;
            }
            if let Some(d) = doc.duration(&t, "test-timeout") {
                test.test_timeout = d;
            }
            if let Some(d) = doc.duration(&t, "silence-timeout") {
                test.silence_timeout = d;
            }
        }

        let mut build_epoch = None;
        if let Some(b) = doc.table(&root, "build") {
            doc.only_keys(&b, &["epoch"]);
            // An i64 so it is SOURCE_DATE_EPOCH's type; a u64 beyond it is not a date.
            build_epoch = doc.uint(&b, "epoch").and_then(|e| match i64::try_from(e) {
                Ok(e) => Some(e),
                Err(_) => {
                    doc.problem(
                        b.key_span("epoch"),
                        "build.epoch",
                        "out of range (seconds since 1970-01-01)",
                    );
                    None
                }
            });
        }

        let mut publish = std::collections::BTreeMap::new();
        if let Some(p) = doc.table(&root, "publish") {
            for name in p.keys() {
                if let Some(target) = publish_target(&doc, &p, &name) {
                    publish.insert(name, target);
                }
            }
        }

        let mut repo_signing = None;
        if let Some(p) = doc.table(&root, "packages") {
            doc.only_keys(&p, &["gpg-keyring", "gpg-fingerprint", "sign-rpms"]);
            let keyring = doc.req_str(&p, "gpg-keyring");
            let fingerprint = doc.str(&p, "gpg-fingerprint").map(|f| f.replace(' ', ""));
            if let Some(f) = &fingerprint
                && (f.len() < 16 || !f.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                doc.problem(
                    p.key_span("gpg-fingerprint"),
                    "packages.gpg-fingerprint",
                    "not a key fingerprint or long key id (16 to 40 hex digits)",
                );
            }
            let sign_rpms = doc.bool(&p, "sign-rpms").unwrap_or(true);
            repo_signing = keyring.map(|k| RepoSigning {
                keyring: root_dir.join(expand_home(&k)),
                fingerprint,
                sign_rpms,
            });
        }

        let problems = doc.take_problems();
        match (linux, glibc) {
            (Some(linux), Some(glibc)) if problems.is_empty() => Ok(Config {
                file: file.to_path_buf(),
                root: root_dir,
                cache_dir,
                out_dir,
                publish_dir,
                scenarios_dir,
                guest_tests_dir,
                debian_mirror,
                debian_suite,
                linux,
                glibc,
                kernel_profile,
                alma,
                rocky,
                test,
                publish,
                build_epoch,
                repo_signing,
            }),
            _ => Err(Problems(problems)),
        }
    }

    /// Directory of the files of one scenario run: `out/runs/<run-id>/<scenario>/`.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.out_dir.join("runs").join(run_id)
    }

    /// Build logs: `logs/` in the clone, as the seed README promises.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
}

fn pinned(doc: &Doc, src: &Tbl<'_>, key: &str) -> Option<PinnedSource> {
    let Some(t) = doc.table(src, key) else {
        doc.problem(src.span(), &src.child(key), "missing required table");
        return None;
    };
    doc.only_keys(&t, &["package", "version", "sha256", "tarball"]);
    let package = doc.req_str(&t, "package");
    let version = doc.req_str(&t, "version");
    let sha256 = doc.req_str(&t, "sha256");
    let tarball = doc.req_str(&t, "tarball");
    // The tarball is where the package installs it (also its path inside the .deb), so it
    // is a filesystem path of the host, not one relative to the clone.
    if let Some(p) = &tarball {
        if !Path::new(p).is_absolute() {
            doc.problem(
                t.key_span("tarball"),
                &t.child("tarball"),
                "must be absolute (where the package installs the tarball, e.g. /usr/src/…)",
            );
        }
    }
    if let Some(h) = &sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            doc.problem(
                t.key_span("sha256"),
                &t.child("sha256"),
                "expected 64 hex digits",
            );
        }
    }
    Some(PinnedSource {
        package: package?,
        version: version?,
        sha256: sha256?.to_ascii_lowercase(),
        tarball: tarball?.into(),
    })
}

/// An optional `[sources.<key>]` base ISO: `iso` and `sha256`, both required when the
/// table is there; a relative path is resolved from the config's directory.
fn base_iso(doc: &Doc, src: &Tbl<'_>, key: &str, root_dir: &Path) -> Option<BaseIso> {
    let t = doc.table(src, key)?;
    doc.only_keys(&t, &["iso", "sha256", "kernel-profile"]);
    let kernel_profile = match doc.str(&t, "kernel-profile") {
        None => EL_KERNEL_PROFILE.to_string(),
        Some(p) if ["el", "qemu", "debian"].contains(&p.as_str()) => p,
        Some(p) => {
            doc.problem(
                t.key_span("kernel-profile"),
                &t.child("kernel-profile"),
                format!("unknown kernel profile {p:?} (expected el, qemu or debian)"),
            );
            return None;
        }
    };
    let iso = doc.req_str(&t, "iso");
    let sha256 = doc.req_str(&t, "sha256");
    if let Some(h) = &sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            doc.problem(
                t.key_span("sha256"),
                &t.child("sha256"),
                "expected 64 hex digits",
            );
            return None;
        }
    }
    let iso = iso?;
    let iso = if iso.contains("://") || Path::new(&iso).is_absolute() {
        iso
    } else {
        root_dir.join(expand_home(&iso)).display().to_string()
    };
    Some(BaseIso {
        iso,
        sha256: sha256?.to_ascii_lowercase(),
        kernel_profile,
    })
}

/// One `[publish.<name>]` table: `kind = "s3"` (bucket, prefix, endpoint, region) or
/// `kind = "rsync"` (destination).
fn publish_target(doc: &Doc, p: &Tbl<'_>, name: &str) -> Option<PublishTarget> {
    let t = doc.table(p, name)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        doc.problem(
            t.span(),
            t.path(),
            "target names use letters, digits, - and _",
        );
    }
    match doc.req_str(&t, "kind").as_deref() {
        Some("s3") => {
            doc.only_keys(&t, &["kind", "bucket", "prefix", "endpoint", "region"]);
            let bucket = doc.req_str(&t, "bucket");
            let prefix = doc.str(&t, "prefix").unwrap_or_default();
            let endpoint = doc.str(&t, "endpoint");
            if let Some(e) = &endpoint
                && !(e.starts_with("http://") || e.starts_with("https://"))
            {
                doc.problem(
                    t.key_span("endpoint"),
                    &t.child("endpoint"),
                    "expected an http:// or https:// URL",
                );
            }
            Some(PublishTarget::S3 {
                bucket: bucket?,
                prefix: prefix.trim_matches('/').to_string(),
                endpoint,
                region: doc.str(&t, "region"),
            })
        }
        Some("rsync") => {
            doc.only_keys(&t, &["kind", "destination"]);
            let destination = doc.req_str(&t, "destination")?;
            if !destination.contains(':') || destination.starts_with(':') {
                doc.problem(
                    t.key_span("destination"),
                    &t.child("destination"),
                    "expected [user@]host:/path (rsync over SSH)",
                );
            }
            Some(PublishTarget::Rsync { destination })
        }
        Some(other) => {
            doc.problem(
                t.key_span("kind"),
                &t.child("kind"),
                format!("unknown kind {other:?} (expected s3 or rsync)"),
            );
            None
        }
        None => None,
    }
}

fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from(p), |h| PathBuf::from(h).join(rest)),
        None => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &str = r#"
[sources.linux]
package = "linux-source-6.1"
version = "6.1.192-3"
sha256 = "cacdc3830989309d042083be3307969e55600ed7f908cf00df544c5ff50759a1"
tarball = "/usr/src/linux-source-6.1.tar.xz"
[sources.glibc]
package = "glibc-source"
version = "2.36-9+deb12u14"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
tarball = "/usr/src/glibc/glibc-2.36.tar.xz"
"#;

    #[test]
    fn repository_signing_names_a_key_file_and_never_holds_a_secret() {
        let cfg = Config::parse(Path::new("/r/xsc.toml"), SOURCES.to_string()).unwrap();
        assert_eq!(cfg.repo_signing, None);
        let text = format!(
            "{SOURCES}[packages]\ngpg-keyring = \"keys/repo.asc\"\n\
             gpg-fingerprint = \"8737 5BCB EB4E E6D9 DDD7 AB19 C9BD 50B5 1553 F656\"\n"
        );
        let s = Config::parse(Path::new("/r/xsc.toml"), text)
            .unwrap()
            .repo_signing
            .unwrap();
        assert_eq!(s.keyring, PathBuf::from("/r/keys/repo.asc"));
        assert_eq!(
            s.fingerprint.as_deref(),
            Some("87375BCBEB4EE6D9DDD7AB19C9BD50B51553F656")
        );
        assert!(s.sign_rpms);
        // A passphrase has no key here (it comes from XSC_GPG_PASSPHRASE_FILE), and a
        // fingerprint must be one.
        let text = format!(
            "{SOURCES}[packages]\ngpg-keyring = \"k\"\npassphrase = \"x\"\ngpg-fingerprint = \"me\"\n"
        );
        let err = Config::parse(Path::new("/r/xsc.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("passphrase"), "{err}");
        assert!(err.contains("packages.gpg-fingerprint"), "{err}");
        let err = Config::parse(Path::new("/r/xsc.toml"), format!("{SOURCES}[packages]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gpg-keyring"), "{err}");
    }

    #[test]
    fn base_isos_are_optional_and_strict() {
        let cfg = Config::parse(Path::new("/r/xsc.toml"), SOURCES.to_string()).unwrap();
        assert_eq!((cfg.alma, cfg.rocky), (None, None));
        let text = format!(
            "{SOURCES}[sources.alma]\niso = \"isos/alma.iso\"\nsha256 = \"{}\"\n",
            "A".repeat(64)
        );
        let cfg = Config::parse(Path::new("/r/xsc.toml"), text).unwrap();
        let alma = cfg.alma.unwrap();
        assert_eq!(alma.iso, "/r/isos/alma.iso");
        assert_eq!(alma.sha256, "a".repeat(64));
        assert_eq!(
            alma.kernel_profile, "el",
            "EL media carry the el kernel by default"
        );
        let text = format!(
            "{SOURCES}[sources.alma]\niso = \"a.iso\"\nsha256 = \"{}\"\nkernel-profile = \"qemu\"\n",
            "a".repeat(64)
        );
        let cfg = Config::parse(Path::new("/r/xsc.toml"), text).unwrap();
        assert_eq!(cfg.alma.unwrap().kernel_profile, "qemu");
        let text = format!(
            "{SOURCES}[sources.alma]\niso = \"a.iso\"\nsha256 = \"{}\"\nkernel-profile = \"arm\"\n",
            "a".repeat(64)
        );
        let err = Config::parse(Path::new("xsc.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sources.alma.kernel-profile: unknown kernel profile \"arm\""),
            "{err}"
        );
        let text = format!("{SOURCES}[sources.rocky]\niso = \"x.iso\"\nsha = \"1\"\n");
        let err = Config::parse(Path::new("xsc.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sources.rocky.sha: unknown key"), "{err}");
        assert!(err.contains("sources.rocky.sha256"), "{err}");
    }

    #[test]
    fn publish_targets_are_strict() {
        let text = format!(
            "{SOURCES}[publish.mirror]\nkind = \"s3\"\nbucket = \"b\"\nprefix = \"/x/y/\"\n\
             endpoint = \"http://127.0.0.1:9\"\n[publish.web]\nkind = \"rsync\"\n\
             destination = \"root@h:/srv/xsc\"\n"
        );
        let cfg = Config::parse(Path::new("/r/xsc.toml"), text).unwrap();
        assert_eq!(
            cfg.publish["mirror"],
            PublishTarget::S3 {
                bucket: "b".into(),
                prefix: "x/y".into(),
                endpoint: Some("http://127.0.0.1:9".into()),
                region: None
            }
        );
        assert_eq!(
            cfg.publish["web"],
            PublishTarget::Rsync {
                destination: "root@h:/srv/xsc".into()
            }
        );
        let text = format!(
            "{SOURCES}[publish.a]\nkind = \"ftp\"\n[publish.b]\nkind = \"s3\"\nsecret = \"k\"\n\
             [publish.c]\nkind = \"rsync\"\ndestination = \"/local\"\n"
        );
        let err = Config::parse(Path::new("xsc.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("publish.a.kind: unknown kind \"ftp\""),
            "{err}"
        );
        assert!(err.contains("publish.b.secret: unknown key"), "{err}");
        assert!(
            err.contains("publish.b.bucket: missing required key"),
            "{err}"
        );
        assert!(err.contains("publish.c.destination: expected"), "{err}");
    }

    #[test]
    fn the_repository_config_is_valid() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("xsc.toml");
        let cfg = Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.linux.package, "linux-source-6.1");
        assert_eq!(cfg.kernel_profile, "qemu");
        assert!(cfg.out_dir.ends_with("out"));
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = format!(
            "{SOURCES}\n[test]\naccel = \"hvf\"\njobz = 2\nboot-timeout = \"fast\"\n[paths]\ncahce = \"/x\"\n"
        );
        let err = Config::parse(Path::new("xsc.toml"), text).unwrap_err();
        let shown: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("xsc.toml:18: paths.cahce: unknown key")),
            "{shown:#?}"
        );
        assert!(shown.iter().any(|s| s.contains("test.jobz: unknown key")));
        assert!(
            shown
                .iter()
                .any(|s| s.contains("test.accel: unknown accelerator \"hvf\""))
        );
        assert!(
            shown
                .iter()
                .any(|s| s.contains("test.boot-timeout: invalid duration"))
        );
    }

    #[test]
    fn missing_pins_are_errors() {
        let err = Config::parse(
            Path::new("xsc.toml"),
            "[sources.linux]\npackage = \"x\"\n".into(),
        )
        .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("sources.linux.version: missing required key"),
            "{shown}"
        );
        assert!(
            shown.contains("sources.glibc: missing required table"),
            "{shown}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let text = format!("{SOURCES}\n[paths]\nout = \"build/out\"\npublish = \"/srv/rel\"\n");
        let cfg = Config::parse(Path::new("/repo/xsc.toml"), text).unwrap();
        assert_eq!(cfg.out_dir, Path::new("/repo/build/out"));
        assert_eq!(cfg.publish_dir, Path::new("/srv/rel"));
        // Every path key, also the defaults and the ones left relative by `./`.
        let text = format!(
            "{SOURCES}\n[paths]\nscenarios = \"./s\"\nguest-tests = \"g\"\ncache = \"c\"\n"
        );
        let cfg = Config::parse(Path::new("/repo/sub/xsc.toml"), text).unwrap();
        assert_eq!(cfg.scenarios_dir, Path::new("/repo/sub/./s"));
        assert_eq!(cfg.guest_tests_dir, Path::new("/repo/sub/g"));
        if std::env::var_os("XSC_CACHE_DIR").is_none() {
            assert_eq!(cfg.cache_dir, Path::new("/repo/sub/c"));
        }
        assert_eq!(cfg.out_dir, Path::new("/repo/sub/out"));
        assert_eq!(cfg.publish_dir, Path::new("/repo/sub/releases"));
    }

    #[test]
    fn the_build_epoch_is_a_strict_number() {
        let cfg = Config::parse(Path::new("/repo/xsc.toml"), SOURCES.to_string()).unwrap();
        assert_eq!(cfg.build_epoch, None);
        let text = format!("{SOURCES}\n[build]\nepoch = 1700000000\n");
        let cfg = Config::parse(Path::new("/repo/xsc.toml"), text).unwrap();
        assert_eq!(cfg.build_epoch, Some(1_700_000_000));
        let text = format!("{SOURCES}\n[build]\nepoch = \"yesterday\"\nepcoh = 1\n");
        let err = Config::parse(Path::new("/repo/xsc.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("build.epoch"), "{err}");
        assert!(err.contains("build.epcoh: unknown key"), "{err}");
        let text = format!("{SOURCES}\n[build]\nepoch = -5\n");
        assert!(Config::parse(Path::new("/repo/xsc.toml"), text).is_err());
    }

    #[test]
    fn a_relative_tarball_is_a_problem() {
        let text = SOURCES.replace("\"/usr/src/linux-source-6.1.tar.xz\"", "\"linux.tar.xz\"");
        let err = Config::parse(Path::new("/repo/xsc.toml"), text).unwrap_err();
        assert!(
            err.to_string()
                .contains("sources.linux.tarball: must be absolute"),
            "{err}"
        );
    }

    #[test]
    fn the_config_is_found_in_the_nearest_ancestor() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        // Nothing anywhere below the temp dir's own ancestors (which hold no xsc.toml).
        let outer = root.path().join(FILE_NAME);
        std::fs::write(&outer, "").unwrap();
        assert_eq!(find_upwards(&deep), Some(outer.clone()));
        assert_eq!(locate(None, &deep).unwrap(), outer);
        // A nearer one wins, the directory itself included.
        let inner = root.path().join("a/b").join(FILE_NAME);
        std::fs::write(&inner, "").unwrap();
        assert_eq!(locate(None, &deep).unwrap(), inner);
        assert_eq!(locate(None, &root.path().join("a/b")).unwrap(), inner);
        // A directory named xsc.toml is not a config.
        std::fs::create_dir(deep.join(FILE_NAME)).unwrap();
        assert_eq!(locate(None, &deep).unwrap(), inner);
        // --config / XSC_CONFIG win, even when it does not exist (load says so then).
        assert_eq!(
            locate(Some(Path::new("/elsewhere/x.toml")), &deep).unwrap(),
            Path::new("/elsewhere/x.toml")
        );
    }

    #[test]
    fn no_config_anywhere_names_where_it_looked() {
        let root = tempfile::tempdir().unwrap();
        // Only meaningful when no ancestor of the temp dir has one (true on CI and here).
        if find_upwards(root.path()).is_some() {
            return;
        }
        let err = locate(None, root.path()).unwrap_err().to_string();
        assert!(err.contains("no xsc.toml in"), "{err}");
        assert!(err.contains("--config or XSC_CONFIG"), "{err}");
    }
}
