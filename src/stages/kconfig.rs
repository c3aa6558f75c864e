//! Kernel build profiles and configuring a tree: a base config (`tinyconfig`, `defconfig`,
//! a file, the running kernel's or Debian's) plus the fragments in
//! `patches/kernel/configs/`, merged with the kernel's own `merge_config.sh -m`, then
//! `make olddefconfig`, then every requested option verified (see `fragment`).

use std::path::{Path, PathBuf};

use super::error::BuildError;
use super::make::BuildEnv;
use crate::input::config::Config;
use crate::sys::cache::sha256_file;
use crate::sys::process::{self, Cmd};

/// Where the starting `.config` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConfigBase {
    /// `make tinyconfig`.
    Tinyconfig,
    /// Debian's own config: the running kernel's `/boot/config-*` if it is the same
    /// major.minor as the source, else from the pinned-version `linux-config-*` package.
    Debian,
}

/// A named recipe for the kernel config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KernelProfile {
    /// `qemu` or `debian`.
    pub name: String,
    /// The base config.
    pub base: ConfigBase,
    /// Fragment file names under `patches/kernel/configs/`, in merge order.
    pub fragments: Vec<String>,
    /// What the resulting kernel is for (recorded in the stage facts).
    pub purpose: &'static str,
}

/// The profiles `--profile` accepts.
pub(crate) const PROFILES: &[&str] = &["qemu", "debian", "el"];

impl KernelProfile {
    /// The profile called `name`.
    pub(crate) fn named(name: &str) -> Result<KernelProfile, BuildError> {
        let (base, fragments, purpose) = match name {
            "qemu" => (
                ConfigBase::Tinyconfig,
                vec!["qemu.config", "xsc.config"],
                "lean, VM-only: tinyconfig + virtio/serial for QEMU; not for bare metal or a distro install",
            ),
            "debian" => (
                ConfigBase::Debian,
                vec!["xsc.config"],
                "Debian's own amd64 config + XSC: for the Debian ISO; build time not measured here, expect ~1-2 h on 2 cores",
            ),
            // The lean base grown by what an EL9 userland needs to install and boot from a
            // virtio disk: a profile of its own, so the gates keep booting the lean kernel.
            "el" => (
                ConfigBase::Tinyconfig,
                vec!["qemu.config", "el.config", "xsc.config"],
                "EL9 (AlmaLinux, Rocky) installs: the lean base + systemd, cgroups v2/BPF, XFS, SELinux, modules; built outside CI (docs/el-iso.md)",
            ),
            _ => {
                return Err(BuildError::UnknownProfile {
                    name: name.to_string(),
                    known: PROFILES.iter().map(|p| (*p).to_string()).collect(),
                });
            }
        };
        Ok(KernelProfile {
            name: name.to_string(),
            base,
            fragments: fragments.into_iter().map(str::to_string).collect(),
            purpose,
        })
    }

    /// Absolute paths of the fragments in `patches_dir/configs/`.
    pub(crate) fn fragment_paths(&self, patches_dir: &Path) -> Vec<PathBuf> {
        self.fragments
            .iter()
            .map(|f| patches_dir.join("configs").join(f))
            .collect()
    }
}

/// `/boot/config-<release>` of the running kernel, read from /proc (no `uname` needed).
pub(crate) fn running_config() -> Option<(String, PathBuf)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()?
        .trim()
        .to_string();
    let path = PathBuf::from(format!("/boot/config-{release}"));
    Some((release, path))
}

/// `6.1` from `linux-source-6.1`.
fn series_of(package: &str) -> &str {
    package.rsplit('-').next().unwrap_or(package)
}

/// How the Debian base is obtained on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DebianBase {
    /// The running kernel is the same series: use its config.
    Running(PathBuf),
    /// Fetch `linux-config-<series>=<version>` (same source version as the pin).
    Package {
        /// e.g. `linux-config-6.1`.
        package: String,
        /// The pinned version.
        version: String,
    },
}

/// Decides where Debian's config comes from (pure: the running release is passed in).
pub(crate) fn debian_base(cfg: &Config, running: Option<(String, PathBuf)>) -> DebianBase {
    let series = series_of(&cfg.linux.package);
    match running {
        Some((release, path)) if release.starts_with(&format!("{series}.")) && path.is_file() => {
            DebianBase::Running(path)
        }
        _ => DebianBase::Package {
            package: format!("linux-config-{series}"),
            version: cfg.linux.version.clone(),
        },
    }
}

/// What identifies the base in the cache key.
pub(crate) fn base_identity(cfg: &Config, base: &ConfigBase) -> Result<String, BuildError> {
    Ok(match base {
        ConfigBase::Tinyconfig => "tinyconfig".into(),
        ConfigBase::Debian => match debian_base(cfg, running_config()) {
            DebianBase::Running(p) => format!(
                "running:{}",
                sha256_file(&p).map_err(|source| input(&p, source))?
            ),
            DebianBase::Package { package, version } => format!("package:{package}={version}"),
        },
    })
}

fn input(path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Input {
        what: "base config",
        path: path.to_path_buf(),
        source,
    }
}

/// `scripts/kconfig/merge_config.sh -m .config <fragments…>` in `tree`: merge only, the
/// `olddefconfig` that resolves dependencies is run next, by [`olddefconfig_cmd`].
pub(crate) fn merge_config_cmd(tree: &Path, fragments: &[PathBuf]) -> Cmd {
    let mut argv: Vec<std::ffi::OsString> = vec![
        "scripts/kconfig/merge_config.sh".into(),
        "-m".into(),
        ".config".into(),
    ];
    argv.extend(fragments.iter().map(|f| f.as_os_str().to_owned()));
    Cmd::new(argv).cwd(tree)
}

/// `make olddefconfig`.
pub(crate) fn olddefconfig_cmd(tree: &Path, env: &BuildEnv) -> Cmd {
    env.apply(Cmd::new(["make", "olddefconfig"]).cwd(tree))
}

/// `make tinyconfig` / `make defconfig`.
pub(crate) fn base_target_cmd(tree: &Path, target: &str, env: &BuildEnv) -> Cmd {
    env.apply(Cmd::new(["make", target]).cwd(tree))
}

/// `scripts/config --file .config --set-str SYSTEM_TRUSTED_KEYS "" …`: Debian's config names
/// `debian/certs/*.pem`, which only exist inside Debian's packaging tree.
pub(crate) fn debian_fixup_cmd(tree: &Path) -> Cmd {
    Cmd::new([
        "scripts/config",
        "--file",
        ".config",
        "--set-str",
        "SYSTEM_TRUSTED_KEYS",
        "",
        "--set-str",
        "SYSTEM_REVOCATION_KEYS",
        "",
    ])
    .cwd(tree)
}

/// `xz -dkf <file>`: decompress beside the original.
pub(crate) fn unxz_cmd(file: &Path) -> Cmd {
    Cmd::new(["xz".as_ref(), "-dkf".as_ref(), file.as_os_str()])
}

/// Writes `.config` in `tree` from the profile: base, merge, olddefconfig.
pub(crate) async fn configure(
    cfg: &Config,
    profile: &KernelProfile,
    tree: &Path,
    fragments: &[PathBuf],
    env: &BuildEnv,
    downloads: &Path,
    log: &Path,
) -> Result<(), BuildError> {
    let dot = tree.join(".config");
    let copy_base = |from: &Path| {
        std::fs::copy(from, &dot)
            .map(drop)
            .map_err(|source| input(from, source))
    };
    match &profile.base {
        ConfigBase::Tinyconfig => {
            process::run(&base_target_cmd(tree, "tinyconfig", env), Some(log))
                .await
                .map_err(BuildError::step("make tinyconfig".to_string()))?;
        }
        ConfigBase::Debian => {
            match debian_base(cfg, running_config()) {
                DebianBase::Running(p) => copy_base(&p)?,
                DebianBase::Package { package, version } => {
                    let root =
                        super::source::fetch_package(&package, &version, downloads, log).await?;
                    let xz = root.join(format!("usr/src/{package}/config.amd64_none_amd64.xz"));
                    process::run(&unxz_cmd(&xz), Some(log))
                        .await
                        .map_err(BuildError::step("xz -d"))?;
                    copy_base(&xz.with_extension(""))?;
                }
            }
            process::run(&debian_fixup_cmd(tree), Some(log))
                .await
                .map_err(BuildError::step("scripts/config"))?;
        }
    }
    process::run(&merge_config_cmd(tree, fragments), Some(log))
        .await
        .map_err(BuildError::step("merge_config.sh"))?;
    process::run(&olddefconfig_cmd(tree, env), Some(log))
        .await
        .map_err(BuildError::step("make olddefconfig"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_name_their_base_and_fragments() {
        let q = KernelProfile::named("qemu").unwrap();
        assert_eq!(q.base, ConfigBase::Tinyconfig);
        assert_eq!(q.fragments, ["qemu.config", "xsc.config"]);
        assert!(q.purpose.contains("VM-only"));
        assert_eq!(
            q.fragment_paths(Path::new("/r/patches/kernel")),
            [
                PathBuf::from("/r/patches/kernel/configs/qemu.config"),
                PathBuf::from("/r/patches/kernel/configs/xsc.config")
            ]
        );
        let d = KernelProfile::named("debian").unwrap();
        assert_eq!(
            (d.base, d.fragments),
            (ConfigBase::Debian, vec!["xsc.config".to_string()])
        );
        let el = KernelProfile::named("el").unwrap();
        assert_eq!(el.base, ConfigBase::Tinyconfig);
        // el.config comes after qemu.config, so its IPv6 line wins over qemu's trim.
        assert_eq!(el.fragments, ["qemu.config", "el.config", "xsc.config"]);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("patches/kernel");
        assert!(el.fragment_paths(&root).iter().all(|p| p.is_file()));
        let err = KernelProfile::named("arm").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown kernel profile \"arm\" (expected one of: qemu, debian, el)"
        );
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BadInput);
    }

    #[test]
    fn merge_config_merges_only() {
        let cmd = merge_config_cmd(
            Path::new("/w/linux"),
            &[
                PathBuf::from("/p/configs/qemu.config"),
                PathBuf::from("/p/configs/xsc.config"),
            ],
        );
        assert_eq!(
            cmd.to_string(),
            "(cd /w/linux && scripts/kconfig/merge_config.sh -m .config /p/configs/qemu.config /p/configs/xsc.config)"
        );
        let env = BuildEnv::new(0, None);
        let old = olddefconfig_cmd(Path::new("/w/linux"), &env);
        assert_eq!(
            old.argv,
            ["make", "olddefconfig"].map(std::ffi::OsString::from)
        );
        assert!(
            old.env
                .iter()
                .any(|(k, v)| k == "KBUILD_BUILD_USER" && v == "xsc")
        );
        assert_eq!(
            debian_fixup_cmd(Path::new("/w")).to_string(),
            "(cd /w && scripts/config --file .config --set-str SYSTEM_TRUSTED_KEYS '' --set-str SYSTEM_REVOCATION_KEYS '')"
        );
    }

    #[test]
    fn debian_base_prefers_a_running_6_1_config() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = super::super::source::tests::test_config(dir.path());
        let boot = dir.path().join("config-6.1.0-40-amd64");
        std::fs::write(&boot, "CONFIG_X=y\n").unwrap();
        assert_eq!(
            debian_base(&cfg, Some(("6.1.0-40-amd64".into(), boot.clone()))),
            DebianBase::Running(boot)
        );
        let pkg = DebianBase::Package {
            package: "linux-config-6.1".into(),
            version: "6.1.192-3".into(),
        };
        assert_eq!(
            debian_base(
                &cfg,
                Some(("6.18.44".into(), dir.path().join("config-6.18.44")))
            ),
            pkg
        );
        assert_eq!(
            debian_base(&cfg, Some(("6.10.1".into(), dir.path().join("x")))),
            pkg
        );
        assert_eq!(debian_base(&cfg, None), pkg);
    }
}
