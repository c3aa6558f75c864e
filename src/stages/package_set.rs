//! The three XSC packages independent of their format: what goes into `xsc-kernel`
//! (`linux-image-xsc` / `kernel`), `xsc-glibc` and `xsc-tests`, gathered from the kernel and
//! glibc stages' cache entries and the compiled guest programs, and written as file trees
//! that `deb_package.rs` and `rpm_package.rs` hand to dpkg-deb and rpmbuild.
//!
//! The kernel is packaged from the kernel stage's entry (bzImage, System.map, config), not
//! with `make bindeb-pkg`/`binrpm-pkg` from the kept tree: the gates boot exactly these bytes,
//! so what they test is what is shipped, packaging takes seconds instead of a second kbuild
//! run, and the kept tree (which `patches edit` and other builds change) is never read.
//!
//! Every tree is written with explicit modes and every mtime set to the packages'
//! SOURCE_DATE_EPOCH, so the same inputs give the same tree, and so the same package bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::BuildError;
use super::glibc::{self, GlibcBuildOptions};
use super::kernel::{self, KernelBuildOptions};
use super::progress::stderr_progress;
use super::stage::{Cancel, Policy, repo_root};
use crate::guest::initramfs::{PlanEntry, plan_text};
use crate::guest::programs;
use crate::input::config::Config;
use crate::input::scenario::Libc;
use crate::sys::cache::{Cache, KeyBuilder};
use crate::sys::epoch::Epoch;

/// The kernel profile packaged: the one the gates boot (lean, `CONFIG_MODULES=n`).
pub(crate) const KERNEL_PROFILE: &str = "qemu";
/// Where the XSC glibc lives on an installed system (as on the Debian ISO).
pub(crate) const GLIBC_PREFIX: &str = "opt/xsc-glibc";
/// Where the test programs, `xsc-init` and the plan live on an installed system.
pub(crate) const TESTS_DIR: &str = "usr/lib/xsc";
/// The self-test unit's name (Debian 12 and EL9 both run systemd).
pub(crate) const UNIT: &str = "xsc-selftest.service";
/// Per-program clock of the self-test, enforced by xsc-init.
pub(crate) const SELFTEST_TIMEOUT: Duration = Duration::from_secs(240);
/// The guest programs `xsc-tests` ships, with the C library each is linked against
/// statically, and whether the self-test runs it.
pub(crate) const PROGRAMS: &[(&str, &str, Libc, bool)] = &[
    ("xsc_ring_test", "xsc_ring_test.c", Libc::Host, true),
    ("xsc_glibc_test", "xsc_glibc_test.c", Libc::Xsc, true),
    ("xsc_ring_bench", "xsc_ring_bench.c", Libc::Host, false),
];
/// Upstream version of `xsc-tests` (the programs have no release of their own).
pub(crate) const TESTS_VERSION: &str = "1.0";
/// Upstream version of the packaged glibc.
pub(crate) const GLIBC_VERSION: &str = "2.36";

/// Everything the packages are made of, gathered from the stages.
#[derive(Clone, Debug)]
pub(crate) struct PackageInputs {
    /// `bzImage` of the kernel stage.
    pub bzimage: PathBuf,
    /// `System.map`.
    pub system_map: PathBuf,
    /// The kernel's `.config`.
    pub config: PathBuf,
    /// `make kernelrelease` (`6.1.192`).
    pub release: String,
    /// The kernel stage's key.
    pub kernel_key: String,
    /// The kernel's `modules_install` root (`lib/modules/<release>/` below it) when its
    /// profile builds modules (`el`); `None` for the lean `qemu` kernel.
    pub modules: Option<PathBuf>,
    /// `lib64/` parent of the stripped XSC glibc runtime.
    pub glibc_runtime: PathBuf,
    /// The glibc stage's key.
    pub glibc_key: String,
    /// `xsc-init` (PID 1 of the test initramfs; the self-test's plan runner).
    pub init: PathBuf,
    /// Compiled programs: name → binary.
    pub programs: Vec<(String, PathBuf)>,
    /// `recipes/debian/xsc-run.sh`.
    pub xsc_run: PathBuf,
    /// `recipes/debian/xsc-selftest.sh`.
    pub selftest: PathBuf,
    /// SOURCE_DATE_EPOCH of the packages.
    pub epoch: Epoch,
}

impl PackageInputs {
    /// The Debian/RPM version suffix shared by the three packages: `+xsc<epoch>` grows with
    /// every commit touching the inputs, so a newer build upgrades an older one.
    pub(crate) fn build_tag(&self) -> String {
        format!("xsc{}", self.epoch.secs)
    }

    /// Adds everything that decides the packages' content to `key` (the format's own
    /// recipe and tool version are added by the format).
    pub(crate) fn key(&self, key: &mut KeyBuilder) -> Result<(), BuildError> {
        key.str("kernel", &self.kernel_key)
            .str("kernel.release", &self.release)
            .str("glibc", &self.glibc_key)
            .str("sde", &self.epoch.secs.to_string());
        let mut files = vec![
            ("init", &self.init),
            ("xsc-run", &self.xsc_run),
            ("selftest", &self.selftest),
        ];
        for (name, bin) in &self.programs {
            files.push((name.as_str(), bin));
        }
        for (label, path) in files {
            key.file(&format!("file/{label}"), path)
                .map_err(BuildError::io("cannot read", path))?;
        }
        // Only a kernel with modules adds them, so the lean kernel's keys stay as they were.
        if let Some(root) = &self.modules {
            for item in module_items(root, &self.release)? {
                if let Content::File(from) = &item.content {
                    key.file(&format!("module/{}", item.path), from)
                        .map_err(BuildError::io("cannot read", from))?;
                }
            }
        }
        Ok(())
    }
}

/// What the packages' SOURCE_DATE_EPOCH is derived from: the kernel and glibc series, the
/// guest programs and the recipes the packages carry.
pub(crate) fn epoch_inputs(cfg: &Config) -> Vec<PathBuf> {
    let root = repo_root(cfg);
    vec![
        kernel::patches_dir(cfg),
        root.join("patches/glibc"),
        std::path::absolute(&cfg.guest_tests_dir).unwrap_or_else(|_| cfg.guest_tests_dir.clone()),
        root.join("recipes/debian"),
        root.join("recipes/packages"),
    ]
}

/// The kernel and glibc (through their stages: cached, or built now under their lock) and
/// the compiled guest programs.
pub(crate) async fn gather(
    cfg: &Config,
    policy: Policy,
    cancel: &Cancel,
) -> Result<PackageInputs, BuildError> {
    gather_profile(cfg, KERNEL_PROFILE, policy, cancel).await
}

/// [`gather`] with the kernel of `profile` (`build kernel --profile el --rpm`).
pub(crate) async fn gather_profile(
    cfg: &Config,
    profile: &str,
    policy: Policy,
    cancel: &Cancel,
) -> Result<PackageInputs, BuildError> {
    let o = KernelBuildOptions {
        profile: Some(profile.into()),
        ..KernelBuildOptions::default()
    };
    let k = kernel::ensure_kernel(cfg, &o, policy, cancel, &mut stderr_progress("kernel")).await?;
    let g = glibc::ensure_glibc(
        cfg,
        &GlibcBuildOptions::default(),
        policy,
        cancel,
        &mut stderr_progress("glibc"),
    )
    .await?;
    let cache = Cache::new(&cfg.cache_dir);
    let sysroot = g.program_sysroot();
    let compile = |rel: &str, libc: Libc| {
        let (cache, gt, rel) = (cache.clone(), cfg.guest_tests_dir.clone(), rel.to_string());
        let sysroot = (libc == Libc::Xsc).then(|| sysroot.clone());
        async move {
            programs::compile(&cache, &gt, Path::new(&rel), sysroot.as_ref())
                .await
                .map_err(|e| BuildError::GuestProgram {
                    program: rel.clone(),
                    message: crate::error::chain(&e),
                })
        }
    };
    let init = compile(programs::INIT_SOURCE, Libc::Host).await?;
    let mut bins = Vec::new();
    for (name, src, libc, _) in PROGRAMS {
        bins.push(((*name).to_string(), compile(src, *libc).await?));
    }
    let recipes = repo_root(cfg).join("recipes/debian");
    Ok(PackageInputs {
        bzimage: k.bzimage,
        system_map: k.system_map,
        config: k.config,
        release: k.kernelrelease,
        kernel_key: k.key,
        modules: k.modules,
        glibc_runtime: g.runtime,
        glibc_key: g.key,
        init,
        programs: bins,
        xsc_run: recipes.join("xsc-run.sh"),
        selftest: recipes.join("xsc-selftest.sh"),
        epoch: crate::stages::stage::epoch_of(cfg, &epoch_inputs(cfg)).await,
    })
}

/// The files of `<modules root>/lib/modules/<release>/` as package items at
/// `lib/modules/<release>/…` (modules and depmod's `modules.*`): every regular file, in
/// name order. The `build` and `source` links `modules_install` makes point into the build
/// tree of this machine and are left out.
pub(crate) fn module_items(root: &Path, release: &str) -> Result<Vec<Item>, BuildError> {
    let dir = root.join("lib/modules").join(release);
    let mut out = Vec::new();
    for rel in crate::sys::cache::walk_sorted(&dir).map_err(BuildError::io("cannot read", &dir))? {
        let from = dir.join(&rel);
        let meta =
            std::fs::symlink_metadata(&from).map_err(BuildError::io("cannot stat", &from))?;
        if meta.is_file() {
            out.push(Item::file(
                format!("lib/modules/{release}/{}", rel.display()),
                0o644,
                &from,
            ));
        }
    }
    Ok(out)
}

/// One file of a package tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Content {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A copy of this file.
    File(PathBuf),
    /// A copy of every file below this directory (modes kept: 0755 if executable, else 0644).
    Tree(PathBuf),
    /// A symbolic link to this target.
    Symlink(String),
}

/// A path in a package (relative to `/`) and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    /// Path below the root, no leading `/`.
    pub path: String,
    /// Mode of a file (trees and links decide their own).
    pub mode: u32,
    /// The content.
    pub content: Content,
}

impl Item {
    pub(crate) fn bytes(path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Item {
        Item {
            path: path.into(),
            mode,
            content: Content::Bytes(data.into()),
        }
    }

    pub(crate) fn file(path: impl Into<String>, mode: u32, from: &Path) -> Item {
        Item {
            path: path.into(),
            mode,
            content: Content::File(from.to_path_buf()),
        }
    }
}

/// The self-test's plan on an installed system: the release-gate programs, then a system
/// binary run through `xsc-run` (the XSC glibc side by side with the distribution's).
pub(crate) fn plan(inputs: &PackageInputs) -> String {
    let mut plan: Vec<PlanEntry> = PROGRAMS
        .iter()
        .filter(|(_, _, _, selftest)| *selftest)
        .map(|(name, _, _, _)| PlanEntry {
            name: (*name).to_string(),
            timeout: SELFTEST_TIMEOUT,
            argv: vec![format!("/{TESTS_DIR}/{name}")],
        })
        .collect();
    debug_assert!(inputs.programs.len() >= plan.len());
    plan.push(PlanEntry {
        name: "xsc_run_system_binary".into(),
        timeout: SELFTEST_TIMEOUT,
        argv: ["/usr/bin/xsc-run", "/bin/cat", "/etc/hostname"]
            .iter()
            .map(|s| (*s).to_string())
            .collect(),
    });
    plan_text(&plan)
}

/// The systemd unit that runs the self-test on boot. It is enabled statically (a
/// `.wants/` link in the package): it does nothing unless QEMU passes the fw_cfg switch.
pub(crate) fn unit_text() -> String {
    "[Unit]\n\
         Description=XSC self-test (runs only when QEMU passes opt/org.xsc/selftest=1)\n\
         ConditionPathExists=/sys/firmware/qemu_fw_cfg/by_name/opt/org.xsc/selftest/raw\n\
         After=multi-user.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart=/usr/sbin/xsc-selftest\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
        .to_string()
}

/// The items of `xsc-glibc` common to both formats: the runtime and `xsc-run`.
pub(crate) fn glibc_items(inputs: &PackageInputs) -> Vec<Item> {
    vec![
        Item {
            path: GLIBC_PREFIX.into(),
            mode: 0o755,
            content: Content::Tree(inputs.glibc_runtime.clone()),
        },
        Item::file("usr/bin/xsc-run", 0o755, &inputs.xsc_run),
    ]
}

/// The items of `xsc-tests` common to both formats; `unit_dir` is where the distribution
/// keeps vendor units (`lib/systemd/system` on Debian 12, `usr/lib/systemd/system` on EL9).
pub(crate) fn tests_items(inputs: &PackageInputs, unit_dir: &str) -> Result<Vec<Item>, BuildError> {
    let mut items = vec![
        Item::file(format!("{TESTS_DIR}/xsc-init"), 0o755, &inputs.init),
        Item::bytes(format!("{TESTS_DIR}/plan"), 0o644, plan(inputs)),
        Item::file("usr/sbin/xsc-selftest", 0o755, &inputs.selftest),
        Item::bytes(format!("{unit_dir}/{UNIT}"), 0o644, unit_text()),
        Item {
            path: format!("{unit_dir}/multi-user.target.wants/{UNIT}"),
            mode: 0o777,
            content: Content::Symlink(format!("../{UNIT}")),
        },
    ];
    for (name, bin) in &inputs.programs {
        items.push(Item::file(format!("{TESTS_DIR}/{name}"), 0o755, bin));
    }
    Ok(items)
}

/// What to strip in a package tree before packaging, as Debian's dh_strip does: the guest
/// programs are built with their symbol tables (for backtraces in test logs) and the glibc
/// stage keeps the runtime's symbol tables; a package ships programs `--strip-all` and
/// shared libraries `--strip-unneeded` (their dynamic symbols stay). Code and data are
/// unchanged, and strip is deterministic.
pub(crate) fn strip_cmds(
    tree: &Path,
    items: &[Item],
) -> Result<Vec<crate::sys::process::Cmd>, BuildError> {
    let mut programs = Vec::new();
    let mut libraries = Vec::new();
    for item in items {
        match &item.content {
            Content::File(_) if item.path.starts_with(TESTS_DIR) => {
                programs.push(tree.join(&item.path));
            }
            Content::Tree(_) if item.path == GLIBC_PREFIX => {
                let dir = tree.join(&item.path);
                for rel in crate::sys::cache::walk_sorted(&dir)
                    .map_err(BuildError::io("cannot read", &dir))?
                {
                    let p = dir.join(rel);
                    if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_symlink()) {
                        libraries.push(p);
                    }
                }
            }
            _ => {}
        }
    }
    let mut cmds = Vec::new();
    for (flag, files) in [("--strip-all", programs), ("--strip-unneeded", libraries)] {
        if !files.is_empty() {
            cmds.push(strip_cmd(flag, &files));
        }
    }
    Ok(cmds)
}

/// `strip FLAG FILES…` in place.
pub(crate) fn strip_cmd(flag: &str, files: &[PathBuf]) -> crate::sys::process::Cmd {
    let mut argv: Vec<std::ffi::OsString> = vec![
        "strip".into(),
        flag.into(),
        "--remove-section=.comment".into(),
    ];
    argv.extend(files.iter().map(|f| f.as_os_str().to_os_string()));
    crate::sys::process::Cmd::new(argv).deadline(Duration::from_secs(60))
}

/// Writes `items` below `root` (created), with directories 0755 and every mtime `sde`.
pub(crate) fn write_tree(root: &Path, items: &[Item], sde: i64) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).map_err(BuildError::io("failed to create", root))?;
    for item in items {
        let to = root.join(&item.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(BuildError::io("failed to create", parent))?;
        }
        let set_mode = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .map_err(BuildError::io("failed to chmod", p))
        };
        match &item.content {
            Content::Bytes(data) => {
                std::fs::write(&to, data).map_err(BuildError::io("failed to write", &to))?;
                set_mode(&to, item.mode)?;
            }
            Content::File(from) => {
                std::fs::copy(from, &to).map_err(BuildError::io("failed to copy", from))?;
                set_mode(&to, item.mode)?;
            }
            Content::Symlink(target) => {
                std::os::unix::fs::symlink(target, &to)
                    .map_err(BuildError::io("failed to link", &to))?;
            }
            Content::Tree(from) => copy_tree(from, &to)?,
        }
    }
    normalize(root, sde)
}

/// Copies `from` into `to`, symlinks as links: shared libraries 0644 (Debian policy), the
/// loader 0755 (`xsc-run` executes it), other files 0755 when executable else 0644.
fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).map_err(BuildError::io("failed to create", to))?;
    let rd = std::fs::read_dir(from).map_err(BuildError::io("cannot read", from))?;
    let mut kids: Vec<_> = rd.filter_map(Result::ok).collect();
    kids.sort_by_key(std::fs::DirEntry::file_name);
    for e in kids {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta = std::fs::symlink_metadata(&src).map_err(BuildError::io("cannot stat", &src))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(BuildError::io("cannot read", &src))?;
            std::os::unix::fs::symlink(target, &dst)
                .map_err(BuildError::io("failed to link", &dst))?;
        } else if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(BuildError::io("failed to copy", &src))?;
            let name = e.file_name().to_string_lossy().to_string();
            let library = name.contains(".so") && !name.starts_with("ld-");
            let mode = if !library && meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))
                .map_err(BuildError::io("failed to chmod", &dst))?;
        }
    }
    Ok(())
}

/// Directories 0755 and every mtime (links included) `sde`, children first.
fn normalize(root: &Path, sde: i64) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let mut all = vec![root.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        let p = all[i].clone();
        let meta = std::fs::symlink_metadata(&p).map_err(BuildError::io("cannot stat", &p))?;
        if meta.is_dir() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(BuildError::io("failed to chmod", &p))?;
            let rd = std::fs::read_dir(&p).map_err(BuildError::io("cannot read", &p))?;
            let mut kids: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            kids.sort();
            all.extend(kids);
        }
        i += 1;
    }
    let t = libc::timespec {
        tv_sec: sde,
        tv_nsec: 0,
    };
    for p in all.iter().rev() {
        set_link_time(p, t)?;
    }
    Ok(())
}

/// `utimensat(AT_SYMLINK_NOFOLLOW)`: std can set a file's times but not a symlink's own.
fn set_link_time(path: &Path, t: libc::timespec) -> Result<(), BuildError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| BuildError::io("bad path", path)(std::io::Error::other(e)))?;
    let times = [t, t];
    // SAFETY: `c` is a valid NUL-terminated path and `times` two valid timespecs.
    #[expect(unsafe_code, reason = "utimensat on a symlink")]
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(BuildError::io("failed to set times on", path)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// `--force` over an existing entry: every package just built in `staged` must equal the
/// entry's byte for byte (the check of "same inputs, same bytes" on the real inputs). A
/// mismatch keeps the new build beside the entry (`<cache>/work/<stage>/mismatch`) for
/// diffoscope.
pub(crate) fn check_same(
    cache: &Cache,
    stage: &str,
    previous: Option<&crate::sys::cache::Entry>,
    staged: &Path,
    packages: &[PathBuf],
) -> Result<(), BuildError> {
    let Some(prev) = previous else {
        return Ok(());
    };
    let sha = |p: &Path| crate::sys::cache::sha256_file(p).unwrap_or_default();
    for new in packages {
        let name = new.file_name().unwrap_or_default();
        let (first, second) = (sha(&prev.dir.join(name)), sha(new));
        if first != second {
            let kept = cache.work_dir(stage, "mismatch");
            let _ = std::fs::remove_dir_all(&kept);
            let _ = std::fs::rename(staged, &kept);
            return Err(BuildError::NotReproducible {
                first,
                second,
                first_tree: prev.dir.join(name),
                second_tree: kept.join(name),
            });
        }
    }
    Ok(())
}

/// Replaces `to` with the files of the cache entry `from` (hard links when on the same
/// filesystem, else copies), leaving out the entry's own bookkeeping.
pub(crate) fn publish(from: &Path, to: &Path) -> Result<(), BuildError> {
    let tmp = to.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    link_tree(from, &tmp)?;
    for own in ["entry.json", "build.log"] {
        let _ = std::fs::remove_file(tmp.join(own));
    }
    let _ = std::fs::remove_dir_all(to);
    std::fs::rename(&tmp, to).map_err(BuildError::io("failed to publish", to))
}

fn link_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(BuildError::io("failed to create", to))?;
    let rd = std::fs::read_dir(from).map_err(BuildError::io("cannot read", from))?;
    for e in rd.filter_map(Result::ok) {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(BuildError::io("failed to copy", &src))?;
        }
    }
    Ok(())
}

/// A small stand-in for the stages' artifacts (tests of the formats; no kernel build).
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::sys::epoch::EpochSource;

    /// Inputs with small files below `dir`: a fake bzImage, real static programs (so tools
    /// that inspect ELF files see what the guest programs are), a runtime tree.
    pub(crate) fn inputs(dir: &Path) -> PackageInputs {
        let w = |rel: &str, data: &[u8]| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
            p
        };
        // A real static program (gcc -static, as the guest programs are built).
        let c = w("prog.c", b"int main(void) { return 0; }\n");
        let bin = dir.join("prog");
        #[allow(clippy::disallowed_methods, reason = "a test fixture compiles")]
        let ok = std::process::Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(&c)
            .status()
            .expect("gcc");
        assert!(ok.success());
        let prog = std::fs::read(&bin).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/debian");
        // The host's own libc and loader stand for the XSC glibc runtime (same layout).
        for lib in ["libc.so.6", "ld-linux-x86-64.so.2"] {
            let host = std::fs::read(Path::new("/lib/x86_64-linux-gnu").join(lib)).unwrap();
            w(&format!("runtime/lib64/{lib}"), &host);
        }
        std::os::unix::fs::symlink("libc.so.6", dir.join("runtime/lib64/libc.so")).unwrap();
        PackageInputs {
            bzimage: w("bzImage", b"MZ fake bzImage"),
            system_map: w("System.map", b"ffffffff81000000 T _text\n"),
            config: w("config", b"CONFIG_XSC=y\n# CONFIG_MODULES is not set\n"),
            release: "6.1.192".into(),
            kernel_key: "k".repeat(64),
            glibc_runtime: dir.join("runtime"),
            glibc_key: "g".repeat(64),
            init: w("xsc-init", &prog),
            programs: PROGRAMS
                .iter()
                .map(|(n, _, _, _)| ((*n).to_string(), w(n, &prog)))
                .collect(),
            xsc_run: repo.join("xsc-run.sh"),
            selftest: repo.join("xsc-selftest.sh"),
            modules: None,
            epoch: Epoch {
                secs: 1_735_689_600,
                source: EpochSource::Default,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_plan_and_the_script_use_the_installed_paths() {
        let d = tempfile::tempdir().unwrap();
        let i = fixture::inputs(d.path());
        let p = plan(&i);
        assert!(
            p.contains("xsc_ring_test\t240\t/usr/lib/xsc/xsc_ring_test\n"),
            "{p}"
        );
        assert!(p.contains("xsc_glibc_test\t240\t/usr/lib/xsc/xsc_glibc_test\n"));
        assert!(
            !p.contains("xsc_ring_bench"),
            "the bench is not a test: {p}"
        );
        assert!(p.contains("/usr/bin/xsc-run\t/bin/cat\t/etc/hostname"));
        let s = std::fs::read_to_string(&i.selftest).unwrap();
        assert!(s.contains("/usr/lib/xsc/xsc-init /usr/lib/xsc/plan"), "{s}");
        assert!(!s.contains("/usr/local"), "{s}");
        assert!(unit_text().contains("ExecStart=/usr/sbin/xsc-selftest\n"));
    }

    #[test]
    fn trees_have_pinned_modes_and_times() {
        let d = tempfile::tempdir().unwrap();
        let i = fixture::inputs(d.path());
        let root = d.path().join("root");
        let mut items = tests_items(&i, "lib/systemd/system").unwrap();
        items.extend(glibc_items(&i));
        write_tree(&root, &items, 1_000_000).unwrap();
        let meta = |rel: &str| std::fs::symlink_metadata(root.join(rel)).unwrap();
        assert_eq!(
            meta("usr/lib/xsc/xsc_ring_test").permissions().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            meta("usr/lib/xsc/plan").permissions().mode() & 0o7777,
            0o644
        );
        assert_eq!(
            meta("opt/xsc-glibc/lib64").permissions().mode() & 0o7777,
            0o755
        );
        assert!(meta("opt/xsc-glibc/lib64/libc.so").file_type().is_symlink());
        let link = "lib/systemd/system/multi-user.target.wants/xsc-selftest.service";
        assert!(meta(link).file_type().is_symlink());
        assert!(root.join(link).is_file(), "the wants link resolves");
        for rel in [
            "",
            "usr",
            "usr/lib/xsc/plan",
            link,
            "opt/xsc-glibc/lib64/libc.so",
        ] {
            let m = meta(rel).modified().unwrap();
            let secs = m.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            assert_eq!(secs, 1_000_000, "{rel}");
        }
    }
}
