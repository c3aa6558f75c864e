//! Where the kernel source comes from, proving it is the pinned one, and unpacking a
//! pristine copy of it.
//!
//! Three kinds: the pinned Debian `linux-source-6.1` tarball (installed at the pinned path,
//! or fetched with `apt-get download` into `<cache>/downloads` and taken out of the .deb
//! with `dpkg-deb -x`), a tarball path or URL with a required sha256, or a local pristine
//! tree. Not owned here: applying patches (`quilt`) or configuring (`kconfig`).

use std::path::{Path, PathBuf};

use super::error::BuildError;
use crate::input::config::{Config, PinnedSource};
use crate::sys::cache::{KeyBuilder, sha256_file};
use crate::sys::process::{self, Cmd};

/// The kernel source a build uses, as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// `[sources.linux]` of xsc.toml.
    Pinned,
    /// A tarball path or http(s)/file URL, with its required sha256.
    Tarball {
        /// Path or URL.
        location: String,
        /// Expected hex sha256.
        sha256: String,
    },
    /// A local pristine tree (no quilt state), copied before patching.
    Tree(PathBuf),
}

impl SourceSpec {
    /// From `--source` and `--sha256`: a directory is a tree; anything else is a tarball
    /// and needs `--sha256` (exit 2 otherwise).
    pub fn from_args(source: Option<&str>, sha256: Option<&str>) -> Result<SourceSpec, BuildError> {
        let Some(location) = source else {
            return match sha256 {
                Some(_) => Err(BuildError::BadSource {
                    source_arg: String::new(),
                    reason: "--sha256 needs --source (the pinned source's hash lives in xsc.toml)"
                        .into(),
                }),
                None => Ok(SourceSpec::Pinned),
            };
        };
        let bad = |reason: &str| BuildError::BadSource {
            source_arg: location.to_string(),
            reason: reason.to_string(),
        };
        let is_url = ["http://", "https://", "file://"]
            .iter()
            .any(|s| location.starts_with(s));
        if !is_url && Path::new(location).is_dir() {
            if sha256.is_some() {
                return Err(bad("--sha256 applies to tarballs, not to a source tree"));
            }
            return Ok(SourceSpec::Tree(PathBuf::from(location)));
        }
        if !is_url && !Path::new(location).is_file() {
            return Err(bad("no such file or directory"));
        }
        let sha =
            sha256.ok_or_else(|| bad("a tarball needs --sha256 <hex> (run sha256sum on it)"))?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("--sha256 must be 64 hex digits"));
        }
        Ok(SourceSpec::Tarball {
            location: location.to_string(),
            sha256: sha.to_ascii_lowercase(),
        })
    }

    /// What identifies the source's content in the cache key, without reading a tarball:
    /// the pinned or given sha256 (checked before it is unpacked), or a tree's file listing.
    pub fn identity(&self, cfg: &Config) -> Result<String, BuildError> {
        match self {
            SourceSpec::Pinned => Ok(format!("sha256:{}", cfg.linux.sha256)),
            SourceSpec::Tarball { sha256, .. } => Ok(format!("sha256:{sha256}")),
            SourceSpec::Tree(dir) => Ok(format!("tree:{}", tree_fingerprint(dir)?)),
        }
    }
}

/// A digest over every file's path, size and mtime below `dir` (`.git` skipped). Hashing
/// the content of ~80k kernel files on every run would cost more than the build it saves.
pub(crate) fn tree_fingerprint(dir: &Path) -> Result<String, BuildError> {
    let files =
        crate::sys::cache::walk_sorted(dir).map_err(BuildError::io("failed to list", dir))?;
    let mut key = KeyBuilder::new();
    for rel in files.iter().filter(|r| !r.starts_with(".git")) {
        let meta = std::fs::symlink_metadata(dir.join(rel))
            .map_err(BuildError::io("failed to stat", dir.join(rel)))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        key.str(
            &rel.to_string_lossy(),
            &format!("{} {}", meta.len(), mtime.map_or(0, |d| d.as_nanos())),
        );
    }
    Ok(key.finish())
}

/// `apt-get download <package>=<version>` in `dir`.
pub(crate) fn apt_download_cmd(package: &str, version: &str, dir: &Path) -> Cmd {
    Cmd::new([
        "apt-get".to_string(),
        "download".to_string(),
        format!("{package}={version}"),
    ])
    .cwd(dir)
}

/// `dpkg-deb -x <deb> <dir>`: unpack a package's files without installing it.
pub(crate) fn dpkg_extract_cmd(deb: &Path, dir: &Path) -> Cmd {
    Cmd::new([
        "dpkg-deb".as_ref(),
        "-x".as_ref(),
        deb.as_os_str(),
        dir.as_os_str(),
    ])
}

/// `dpkg-query -W -f=${Version} <package>`: the installed version, for the drift message.
pub(crate) fn dpkg_version_cmd(package: &str) -> Cmd {
    Cmd::new(["dpkg-query", "-W", "-f=${Version}", package])
}

/// `tar -xf <tarball> -C <dest> --strip-components=<n>`; tar picks the decompressor.
pub(crate) fn untar_cmd(tarball: &Path, dest: &Path, strip: u32) -> Cmd {
    Cmd::new([
        "tar".into(),
        "-xf".into(),
        tarball.as_os_str().to_owned(),
        "-C".into(),
        dest.as_os_str().to_owned(),
        format!("--strip-components={strip}").into(),
    ])
}

/// `curl -fsSL -o <out> <url>`.
pub(crate) fn curl_cmd(url: &str, out: &Path) -> Cmd {
    Cmd::new([
        "curl".as_ref(),
        "-fsSL".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        url.as_ref(),
    ])
}

/// `cp -a <tree>/. <dest>`.
pub(crate) fn copy_tree_cmd(tree: &Path, dest: &Path) -> Cmd {
    Cmd::new([
        "cp".as_ref(),
        "-a".as_ref(),
        tree.join(".").as_os_str(),
        dest.as_os_str(),
    ])
}

/// Copies the directory `from` into `to` (created) with [`copy_tree_cmd`]: the one tree
/// copier of the stages (kernel headers and runtime into glibc's entry, the runtime into
/// the ISO's root filesystem).
pub(crate) async fn copy_dir(from: &Path, to: &Path, log: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(BuildError::io("failed to create", to))?;
    process::run(&copy_tree_cmd(from, to), Some(log))
        .await
        .map(|_| ())
        .map_err(BuildError::step(format!("copy {}", from.display())))
}

/// A source ready to unpack, with its verified identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// A tarball whose sha256 was checked.
    Tarball(PathBuf),
    /// A pristine tree to copy.
    Tree(PathBuf),
}

/// Finds (fetching if needed) and verifies the source. Drift is [`BuildError::SourceDrift`]
/// with the exact replacement line for xsc.toml.
pub(crate) async fn resolve(
    cfg: &Config,
    spec: &SourceSpec,
    downloads: &Path,
    log: &Path,
) -> Result<Resolved, BuildError> {
    match spec {
        SourceSpec::Pinned => resolve_pinned(cfg, &cfg.linux, "linux", downloads, log).await,
        SourceSpec::Tarball { location, sha256 } => {
            let tarball = if let Some(path) = location.strip_prefix("file://") {
                PathBuf::from(path)
            } else if location.starts_with("http://") || location.starts_with("https://") {
                let dir = downloads.join(sha256);
                std::fs::create_dir_all(&dir).map_err(BuildError::io("failed to create", &dir))?;
                let name = location
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("linux.tar");
                let out = dir.join(name);
                if sha256_file(&out).ok().as_deref() != Some(sha256.as_str()) {
                    process::run(&curl_cmd(location, &out), Some(log))
                        .await
                        .map_err(BuildError::step("download"))?;
                }
                out
            } else {
                PathBuf::from(location)
            };
            let actual =
                sha256_file(&tarball).map_err(BuildError::io("failed to read", &tarball))?;
            if &actual != sha256 {
                return Err(BuildError::SourceDrift {
                    path: tarball,
                    expected: sha256.clone(),
                    actual: actual.clone(),
                    pinned_in: "--sha256".into(),
                    update: format!("--sha256 {actual}"),
                });
            }
            Ok(Resolved::Tarball(tarball))
        }
        SourceSpec::Tree(dir) => {
            if !dir.join("Makefile").is_file() || !dir.join("Kconfig").is_file() {
                return Err(BuildError::BadSource {
                    source_arg: dir.display().to_string(),
                    reason: "not a kernel source tree (no Makefile and Kconfig at its top)".into(),
                });
            }
            let applied =
                std::fs::read_to_string(dir.join(".pc/applied-patches")).unwrap_or_default();
            if !applied.trim().is_empty() {
                return Err(BuildError::BadSource {
                    source_arg: dir.display().to_string(),
                    reason: "it has quilt patches applied; pass a pristine tree (quilt pop -a)"
                        .into(),
                });
            }
            Ok(Resolved::Tree(dir.clone()))
        }
    }
}

/// The pinned tarball of `[sources.<section>]`: the installed one at its path, else fetched
/// with `apt-get download`; its sha256 must match the pin (drift names the xsc.toml lines to
/// change). Shared by the kernel and glibc stages.
pub(crate) async fn resolve_pinned(
    cfg: &Config,
    pin: &PinnedSource,
    section: &str,
    downloads: &Path,
    log: &Path,
) -> Result<Resolved, BuildError> {
    let (tarball, installed) = if pin.tarball.is_file() {
        (pin.tarball.clone(), true)
    } else {
        (fetch_pinned(pin, downloads, log).await?, false)
    };
    let actual = sha256_file(&tarball).map_err(BuildError::io("failed to read", &tarball))?;
    if actual != pin.sha256 {
        let version = if installed {
            installed_version(&pin.package).await
        } else {
            None
        };
        return Err(BuildError::SourceDrift {
            path: tarball,
            expected: pin.sha256.clone(),
            actual: actual.clone(),
            pinned_in: format!("{} [sources.{section}]", cfg.file.display()),
            update: pin_update(pin, &actual, version.as_deref()),
        });
    }
    Ok(Resolved::Tarball(tarball))
}

/// The xsc.toml lines that would make the pin match what was found.
pub(crate) fn pin_update(
    pin: &PinnedSource,
    actual_sha: &str,
    installed_version: Option<&str>,
) -> String {
    let mut lines = Vec::new();
    if let Some(v) = installed_version.filter(|v| *v != pin.version) {
        lines.push(format!("version = \"{v}\""));
    }
    lines.push(format!("sha256 = \"{actual_sha}\""));
    lines.join("\n  ")
}

async fn installed_version(package: &str) -> Option<String> {
    let out = process::run(&dpkg_version_cmd(package), None).await.ok()?;
    Some(out.stdout.trim().to_string()).filter(|v| !v.is_empty())
}

/// Downloads `<package>=<version>` into `<downloads>/<package>_<version>/` (once) and
/// extracts it; returns the tarball at the pinned path inside the extracted files.
pub(crate) async fn fetch_pinned(
    pin: &PinnedSource,
    downloads: &Path,
    log: &Path,
) -> Result<PathBuf, BuildError> {
    let files = fetch_package(&pin.package, &pin.version, downloads, log).await?;
    let inside = files.join(pin.tarball.strip_prefix("/").unwrap_or(&pin.tarball));
    if !inside.is_file() {
        return Err(BuildError::BadSource {
            source_arg: format!("{}={}", pin.package, pin.version),
            reason: format!("the package has no {}", pin.tarball.display()),
        });
    }
    Ok(inside)
}

/// `apt-get download` + `dpkg-deb -x` of one package version; returns the extracted root.
pub(crate) async fn fetch_package(
    package: &str,
    version: &str,
    downloads: &Path,
    log: &Path,
) -> Result<PathBuf, BuildError> {
    super::tools::check_tools(super::tools::FETCH_TOOLS)?;
    let dir = downloads.join(format!("{package}_{version}"));
    let root = dir.join("root");
    if root.join(".complete").exists() {
        return Ok(root);
    }
    std::fs::create_dir_all(&dir).map_err(BuildError::io("failed to create", &dir))?;
    let deb = match find_deb(&dir) {
        Some(deb) => deb,
        None => {
            process::run(&apt_download_cmd(package, version, &dir), Some(log))
                .await
                .map_err(BuildError::step(format!(
                    "apt-get download {package}={version}"
                )))?;
            find_deb(&dir).ok_or_else(|| BuildError::BadSource {
                source_arg: format!("{package}={version}"),
                reason: "apt-get download left no .deb".into(),
            })?
        }
    };
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(BuildError::io("failed to remove", &root))?;
    }
    std::fs::create_dir_all(&root).map_err(BuildError::io("failed to create", &root))?;
    process::run(&dpkg_extract_cmd(&deb, &root), Some(log))
        .await
        .map_err(BuildError::step("dpkg-deb -x"))?;
    std::fs::write(root.join(".complete"), "").map_err(BuildError::io("failed to write", &root))?;
    Ok(root)
}

fn find_deb(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
}

/// Unpacks (or copies) a pristine source into the empty directory `dest`.
pub(crate) async fn unpack(source: &Resolved, dest: &Path, log: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(dest).map_err(BuildError::io("failed to create", dest))?;
    match source {
        // Kernel tarballs have exactly one top directory (`linux-source-6.1/`, `linux-6.1/`).
        Resolved::Tarball(t) => {
            process::run(&untar_cmd(t, dest, 1), Some(log))
                .await
                .map_err(BuildError::step("unpack kernel source"))?;
        }
        Resolved::Tree(t) => {
            process::run(&copy_tree_cmd(t, dest), Some(log))
                .await
                .map_err(BuildError::step("copy kernel source"))?;
        }
    }
    if !dest.join("Makefile").is_file() {
        return Err(BuildError::BadSource {
            source_arg: format!("{source:?}"),
            reason: "unpacked, but there is no Makefile at the top (not a kernel tarball?)".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SHA: &str = "cacdc3830989309d042083be3307969e55600ed7f908cf00df544c5ff50759a1";

    fn pin() -> PinnedSource {
        PinnedSource {
            package: "linux-source-6.1".into(),
            version: "6.1.192-3".into(),
            sha256: SHA.into(),
            tarball: "/usr/src/linux-source-6.1.tar.xz".into(),
        }
    }

    #[test]
    fn command_lines_are_data() {
        assert_eq!(
            apt_download_cmd("linux-source-6.1", "6.1.192-3", Path::new("/c/downloads/x"))
                .to_string(),
            "(cd /c/downloads/x && apt-get download linux-source-6.1=6.1.192-3)"
        );
        assert_eq!(
            dpkg_extract_cmd(Path::new("/d/l.deb"), Path::new("/d/root")).to_string(),
            "dpkg-deb -x /d/l.deb /d/root"
        );
        assert_eq!(
            untar_cmd(
                Path::new("/usr/src/linux-source-6.1.tar.xz"),
                Path::new("/w/linux"),
                1
            )
            .to_string(),
            "tar -xf /usr/src/linux-source-6.1.tar.xz -C /w/linux --strip-components=1"
        );
        assert_eq!(
            dpkg_version_cmd("linux-source-6.1").to_string(),
            "dpkg-query -W '-f=${Version}' linux-source-6.1"
        );
        assert_eq!(
            copy_tree_cmd(Path::new("/src/l"), Path::new("/w")).to_string(),
            "cp -a /src/l/. /w"
        );
    }

    #[test]
    fn args_pick_the_kind_and_demand_a_hash_for_tarballs() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("linux.tar.xz");
        std::fs::write(&tar, "x").unwrap();
        assert_eq!(
            SourceSpec::from_args(None, None).unwrap(),
            SourceSpec::Pinned
        );
        assert_eq!(
            SourceSpec::from_args(Some(dir.path().to_str().unwrap()), None).unwrap(),
            SourceSpec::Tree(dir.path().to_path_buf())
        );
        let err = SourceSpec::from_args(Some(tar.to_str().unwrap()), None).unwrap_err();
        assert!(err.to_string().contains("needs --sha256"), "{err}");
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BadInput);
        let ok =
            SourceSpec::from_args(Some(tar.to_str().unwrap()), Some(&SHA.to_uppercase())).unwrap();
        assert_eq!(
            ok,
            SourceSpec::Tarball {
                location: tar.to_string_lossy().into(),
                sha256: SHA.into()
            }
        );
        assert!(SourceSpec::from_args(Some("https://x/linux.tar.xz"), Some("abc")).is_err());
        assert!(SourceSpec::from_args(Some("/no/such/linux.tar.xz"), Some(SHA)).is_err());
        assert!(SourceSpec::from_args(None, Some(SHA)).is_err());
    }

    #[test]
    fn the_update_line_is_exact() {
        assert_eq!(pin_update(&pin(), "ab12", None), "sha256 = \"ab12\"");
        assert_eq!(
            pin_update(&pin(), "ab12", Some("6.1.192-3")),
            "sha256 = \"ab12\""
        );
        assert_eq!(
            pin_update(&pin(), "ab12", Some("6.1.200-1")),
            "version = \"6.1.200-1\"\n  sha256 = \"ab12\""
        );
    }

    #[tokio::test]
    async fn a_drifted_tarball_fails_with_the_new_pin_line() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("linux.tar");
        std::fs::write(&tar, "not the pinned source").unwrap();
        let actual = sha256_file(&tar).unwrap();
        let spec = SourceSpec::Tarball {
            location: tar.to_string_lossy().into(),
            sha256: SHA.into(),
        };
        let cfg = test_config(dir.path());
        let err = resolve(&cfg, &spec, dir.path(), &dir.path().join("log"))
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BadInput);
        assert!(
            err.to_string().contains(&format!("--sha256 {actual}")),
            "{err}"
        );

        let mut cfg = test_config(dir.path());
        cfg.linux.tarball = tar.clone();
        let err = resolve(
            &cfg,
            &SourceSpec::Pinned,
            dir.path(),
            &dir.path().join("log"),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("sha256 = \"{actual}\"")), "{text}");
        assert!(
            text.contains("[sources.linux]") && text.contains(SHA),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_tarball_unpacks_without_its_top_directory() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("linux-source-6.1");
        std::fs::create_dir_all(&top).unwrap();
        std::fs::write(top.join("Makefile"), "all:\n").unwrap();
        let tar = dir.path().join("src.tar.gz");
        let pack =
            Cmd::new(["tar", "-czf", tar.to_str().unwrap(), "linux-source-6.1"]).cwd(dir.path());
        process::run(&pack, None).await.unwrap();
        let dest = dir.path().join("w/linux");
        unpack(&Resolved::Tarball(tar), &dest, &dir.path().join("log"))
            .await
            .unwrap();
        assert!(dest.join("Makefile").is_file());
    }

    pub(crate) fn test_config(root: &Path) -> Config {
        let text = format!(
            "[paths]\ncache = \"{}\"\n[sources.linux]\npackage = \"linux-source-6.1\"\nversion = \"6.1.192-3\"\n\
             sha256 = \"{SHA}\"\ntarball = \"{}\"\n[sources.glibc]\npackage = \"g\"\nversion = \"1\"\n\
             sha256 = \"{SHA}\"\ntarball = \"/g.tar.xz\"\n",
            root.join("cache").display(),
            root.join("no-such-linux.tar.xz").display()
        );
        let mut cfg = Config::parse(&root.join("xsc.toml"), text).unwrap();
        // XSC_CACHE_DIR (set in CI) must not send fake kernels into the real cache.
        cfg.cache_dir = root.join("cache");
        cfg
    }
}
