//! The `.rpm` packages stage for EL9 (AlmaLinux, Rocky): `kernel` (the kernel stage's
//! bzImage as `/lib/modules/<release>/vmlinuz`, installed the EL9 way), `xsc-glibc` and
//! `xsc-tests`, with a `createrepo_c` repository of them, cached by content and reproducible
//! under SOURCE_DATE_EPOCH.
//!
//! The kernel RPM gives an EL9 install what its own `kernel-core` does, since Linux 6.1's
//! `binrpm-pkg` falls short there (its `%post` only calls `/sbin/installkernel`, absent on
//! EL9): `/lib/modules/<release>/{vmlinuz,System.map,config}` plus empty `modules.order` and
//! `modules.builtin` (the lean kernel has `CONFIG_MODULES=n`; depmod and dracut need the
//! directory and these files), and `%posttrans` runs `kernel-install add`, whose EL9 plugins
//! build the dracut initramfs (`50-dracut.install`), copy the image to `/boot` and write the
//! BLS entry (`20-grub.install`); `%preun` runs `kernel-install remove`. It is named `kernel`
//! (Anaconda installs the package named `kernel`; the kickstart excludes the distribution's)
//! and also provides `kernel-xsc` for people.
//!
//! ```text
//! package_set (trees) ─► spec (pure) ─► rpmbuild -bb (pinned _topdir, BuildHost, BuildTime)
//!     ─► createrepo_c (revision = SDE) ─► <cache>/stages/rpm-packages/<key>/
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::BuildError;
use super::package_set::{self, Item, PackageInputs};
use super::stage::{self, Cancel, Job, Policy, Product, Progress, Stage, StageKey, repo_root};
use super::tools::check_tools;
use crate::input::config::Config;
use crate::sys::cache::{Cache, KeyBuilder};
use crate::sys::process::{self, Cmd};

/// Stage name in the cache.
pub(crate) const STAGE: &str = "rpm-packages";
/// Version of this recipe; bump on any change of output.
pub(crate) const RECIPE: &str = "rpm-packages-3";
/// The build host recorded in every RPM.
pub(crate) const BUILD_HOST: &str = "xsc-release";
/// Where EL9 keeps vendor systemd units.
pub(crate) const UNIT_DIR: &str = "usr/lib/systemd/system";
/// Host tools of the stage, with their Debian packages.
pub(crate) const RPM_TOOLS: &[(&str, &str)] = &[
    ("rpmbuild", "rpm"),
    ("createrepo_c", "createrepo-c"),
    ("strip", "binutils"),
];

/// One RPM: its header fields, files and scriptlets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RpmPlan {
    pub name: String,
    pub version: String,
    pub release: String,
    pub summary: &'static str,
    pub license: &'static str,
    pub description: &'static str,
    pub requires: Vec<String>,
    pub provides: Vec<String>,
    pub items: Vec<Item>,
    /// Paths recorded as `%ghost` (made on the installed system, owned by the package).
    pub ghosts: Vec<String>,
    /// `(section, body)`: `%posttrans`, `%preun`.
    pub scripts: Vec<(&'static str, String)>,
}

impl RpmPlan {
    /// `<name>-<version>-<release>.x86_64.rpm`.
    pub(crate) fn file_name(&self) -> String {
        format!("{}-{}-{}.x86_64.rpm", self.name, self.version, self.release)
    }
}

/// The three RPMs of `inputs`.
pub(crate) fn plans(inputs: &PackageInputs) -> Result<Vec<RpmPlan>, BuildError> {
    let kr = &inputs.release;
    let release = inputs.build_tag();
    let kernel = RpmPlan {
        name: "kernel".into(),
        // RPM versions may not hold '-'; binrpm-pkg makes the same substitution.
        version: kr.replace('-', "_"),
        release: release.clone(),
        summary: "Linux 6.1 kernel with XSC system call rings",
        license: "GPL-2.0-only",
        description: if inputs.modules.is_some() {
            "The XSC kernel (Linux 6.1 with the XSC quilt series) for EL9 installs (el\n\
             profile: what the boot needs built in, modules enabled, with their tree)."
        } else {
            "The XSC kernel (Linux 6.1 with the XSC quilt series, lean profile: every\n\
             driver built in, no modules) as the release gates boot it, byte for byte."
        },
        requires: vec![
            "/usr/bin/kernel-install".into(),
            "dracut".into(),
            "systemd-udev".into(),
        ],
        provides: vec![
            format!("kernel-xsc = {}-{release}", kr.replace('-', "_")),
            format!("kernel-uname-r = {kr}"),
            "installonlypkg(kernel)".into(),
        ],
        items: kernel_items(inputs)?,
        ghosts: vec![
            format!("/boot/vmlinuz-{kr}"),
            format!("/boot/System.map-{kr}"),
            format!("/boot/config-{kr}"),
            format!("/boot/initramfs-{kr}.img"),
        ],
        scripts: vec![
            (
                "%posttrans",
                format!("/usr/bin/kernel-install add {kr} /lib/modules/{kr}/vmlinuz || exit $?\n"),
            ),
            (
                "%preun",
                format!("/usr/bin/kernel-install remove {kr} || exit $?\n"),
            ),
        ],
    };
    let glibc_version = package_set::GLIBC_VERSION.to_string();
    let glibc = RpmPlan {
        name: "xsc-glibc".into(),
        version: glibc_version.clone(),
        release: release.clone(),
        summary: "XSC GNU C Library, side by side in /opt/xsc-glibc",
        license: "LGPL-2.1-or-later",
        description: "glibc 2.36 with XSC ring routing, installed in /opt/xsc-glibc beside the\n\
                      system's glibc, which it never replaces. Only programs started with\n\
                      xsc-run use it.",
        requires: vec![],
        provides: vec![],
        items: package_set::glibc_items(inputs),
        ghosts: vec![],
        scripts: vec![],
    };
    let tests = RpmPlan {
        name: "xsc-tests".into(),
        version: package_set::TESTS_VERSION.into(),
        release: release.clone(),
        summary: "XSC ring and glibc routing tests, and the boot self-test",
        license: "GPL-2.0-only",
        description: "Static test programs for the XSC rings and the XSC glibc, and a systemd\n\
                      unit that runs them on boot and powers off, only when QEMU passes\n\
                      -fw_cfg name=opt/org.xsc/selftest,string=1.",
        requires: vec![format!("xsc-glibc = {glibc_version}-{release}")],
        provides: vec![],
        items: package_set::tests_items(inputs, UNIT_DIR)?,
        ghosts: vec![],
        scripts: vec![],
    };
    Ok(vec![kernel, glibc, tests])
}

/// The kernel package's files: the image, `System.map` and config, and either the
/// modules tree of a kernel with modules (the `el` profile: its modules and depmod's
/// `modules.*`) or, for the lean kernel, the two empty `modules.*` files depmod and dracut
/// look for.
fn kernel_items(inputs: &PackageInputs) -> Result<Vec<Item>, BuildError> {
    let kr = &inputs.release;
    let mut items = vec![
        Item::file(format!("lib/modules/{kr}/vmlinuz"), 0o755, &inputs.bzimage),
        Item::file(
            format!("lib/modules/{kr}/System.map"),
            0o644,
            &inputs.system_map,
        ),
        Item::file(format!("lib/modules/{kr}/config"), 0o644, &inputs.config),
    ];
    match &inputs.modules {
        Some(root) => items.extend(package_set::module_items(root, kr)?),
        None => {
            items.push(Item::bytes(
                format!("lib/modules/{kr}/modules.order"),
                0o644,
                "",
            ));
            items.push(Item::bytes(
                format!("lib/modules/{kr}/modules.builtin"),
                0o644,
                "",
            ));
        }
    }
    Ok(items)
}

/// The spec of one RPM. `AutoReqProv: no`: rpm's dependency generator would make
/// `xsc-glibc` *provide* `libc.so.6(GLIBC_2.x)(64bit)` from /opt and so satisfy other
/// packages' libc needs; every dependency here is written out instead. `%install` copies
/// the prepared tree; no brp scripts run (they would strip and recompress differently from
/// host to host).
pub(crate) fn spec_text(p: &RpmPlan, tree: &Path, files: &[String]) -> String {
    let mut s = format!(
        "Name: {}\nVersion: {}\nRelease: {}\nSummary: {}\nLicense: {}\n\
         BuildArch: x86_64\nAutoReqProv: no\n",
        p.name, p.version, p.release, p.summary, p.license
    );
    for r in &p.requires {
        s.push_str(&format!("Requires: {r}\n"));
    }
    for r in &p.provides {
        s.push_str(&format!("Provides: {r}\n"));
    }
    s.push_str(&format!("\n%description\n{}\n\n", p.description));
    s.push_str(&format!(
        "%install\nmkdir -p %{{buildroot}}\ncp -a {}/. %{{buildroot}}/\n",
        tree.display()
    ));
    for g in &p.ghosts {
        // rpm clamps only the payload's mtimes; a ghost's is recorded as it is (measured).
        s.push_str(&format!(
            "mkdir -p %{{buildroot}}$(dirname {g})\n: > %{{buildroot}}{g}\n\
             touch -d @$SOURCE_DATE_EPOCH %{{buildroot}}{g}\n"
        ));
    }
    for (section, body) in &p.scripts {
        s.push_str(&format!("\n{section}\n{body}"));
    }
    s.push_str("\n%files\n%defattr(-,root,root,-)\n");
    for f in files {
        s.push_str(&format!("{f}\n"));
    }
    for g in &p.ghosts {
        s.push_str(&format!("%ghost %attr(0600,root,root) {g}\n"));
    }
    s
}

/// `rpmbuild -bb` with everything that would vary pinned: `_topdir`, the build host, the
/// build time and every mtime (SOURCE_DATE_EPOCH), the payload compressor, no build-id
/// links, no debuginfo, no post-install scripts.
pub(crate) fn rpmbuild_cmd(spec: &Path, topdir: &Path, sde: i64) -> Cmd {
    let mut argv: Vec<String> = vec![
        "rpmbuild".into(),
        "-bb".into(),
        "--target".into(),
        "x86_64-linux".into(),
    ];
    for (k, v) in [
        ("_topdir", topdir.display().to_string()),
        ("_buildhost", BUILD_HOST.into()),
        ("use_source_date_epoch_as_buildtime", "1".into()),
        ("clamp_mtime_to_source_epoch", "1".into()),
        ("_binary_payload", "w9.xzdio".into()),
        ("_build_id_links", "none".into()),
        ("debug_package", "%{nil}".into()),
        ("__os_install_post", "%{nil}".into()),
        (
            "_rpmfilename",
            "%%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm".into(),
        ),
    ] {
        argv.push("--define".into());
        argv.push(format!("{k} {v}"));
    }
    argv.push(spec.display().to_string());
    Cmd::new(argv)
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        .env("TZ", "UTC")
        .deadline(Duration::from_secs(300))
}

/// `createrepo_c` of `dir`: revision and every timestamp = SDE, no sqlite databases (they
/// differ from run to run), gzip everywhere, simple file names.
pub(crate) fn createrepo_cmd(dir: &Path, sde: i64) -> Cmd {
    Cmd::new([
        "createrepo_c".to_string(),
        "--no-database".into(),
        "--simple-md-filenames".into(),
        "--general-compress-type=gz".into(),
        format!("--revision={sde}"),
        "--set-timestamp-to-revision".into(),
        dir.display().to_string(),
    ])
    .env("SOURCE_DATE_EPOCH", sde.to_string())
    .deadline(Duration::from_secs(120))
}

/// Builds each plan's RPM into `out` (trees and `_topdir` below `work`).
pub(crate) async fn build_rpms(
    plans: &[RpmPlan],
    sde: i64,
    work: &Path,
    out: &Path,
    log: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(out).map_err(BuildError::io("failed to create", out))?;
    let topdir = work.join("topdir");
    let mut rpms = Vec::new();
    for p in plans {
        let tree = work.join("trees").join(&p.name);
        package_set::write_tree(&tree, &p.items, sde)?;
        for c in package_set::strip_cmds(&tree, &p.items)? {
            run(&c, "strip", log).await?;
        }
        package_set::write_tree(&tree, &[], sde)?;
        let files = listed_files(&tree)?;
        let spec = work.join(format!("{}.spec", p.name));
        std::fs::write(&spec, spec_text(p, &tree, &files))
            .map_err(BuildError::io("failed to write", &spec))?;
        run(&rpmbuild_cmd(&spec, &topdir, sde), "rpmbuild", log).await?;
        let built = topdir.join("RPMS").join(p.file_name());
        let to = out.join(p.file_name());
        std::fs::rename(&built, &to).map_err(BuildError::io("failed to move", &built))?;
        rpms.push(to);
    }
    Ok(rpms)
}

/// The `%files` lines of `tree`: every file and link, and `%dir` for the package's own
/// directories (those no EL9 base package owns: below /opt, /usr/lib/xsc,
/// /lib/modules/<release>).
fn listed_files(tree: &Path) -> Result<Vec<String>, BuildError> {
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let abs = tree.join(&rel);
        let rd = std::fs::read_dir(&abs).map_err(BuildError::io("cannot read", &abs))?;
        for e in rd.filter_map(Result::ok) {
            let r = rel.join(e.file_name());
            let meta = std::fs::symlink_metadata(e.path())
                .map_err(BuildError::io("cannot stat", e.path()))?;
            let s = r.display().to_string();
            if meta.is_dir() {
                if owned_dir(&s) {
                    out.push((s, true));
                }
                dirs.push(r);
            } else {
                out.push((s, false));
            }
        }
    }
    out.sort();
    Ok(out
        .into_iter()
        .map(|(p, dir)| {
            if dir {
                format!("%dir /{p}")
            } else {
                format!("/{p}")
            }
        })
        .collect())
}

/// Directories the package owns (the rest belong to `filesystem` on EL9).
fn owned_dir(rel: &str) -> bool {
    rel.starts_with("opt/xsc-glibc")
        || rel.starts_with(package_set::TESTS_DIR)
        || (rel.starts_with("lib/modules/") && rel.matches('/').count() == 2)
}

async fn run(cmd: &Cmd, what: &str, log: &Path) -> Result<(), BuildError> {
    process::run(cmd, Some(log))
        .await
        .map(|_| ())
        .map_err(BuildError::step(what.to_string()))
}

/// What the stage produced.
#[derive(Clone, Debug)]
pub(crate) struct RpmArtifacts {
    /// The repository (the entry directory): the RPMs and `repodata/`.
    pub repo: PathBuf,
    /// The RPM files.
    pub rpms: Vec<PathBuf>,
    /// The cache key.
    pub key: String,
    /// True when built by this call.
    pub built_now: bool,
}

/// The key of the RPMs of `inputs`.
pub(crate) async fn rpm_key(inputs: &PackageInputs) -> Result<StageKey, BuildError> {
    let mut k = KeyBuilder::new();
    k.str("recipe", RECIPE);
    inputs.key(&mut k)?;
    for tool in ["rpmbuild", "createrepo_c"] {
        let v = process::run(&Cmd::new([tool, "--version"]), None)
            .await
            .map_err(BuildError::step(format!("{tool} --version")))?;
        k.str(tool, v.stdout.lines().next().unwrap_or_default());
    }
    Ok(StageKey::from(&k))
}

/// The RPMs and their repository through the stage framework.
pub(crate) async fn ensure_rpms(
    cfg: &Config,
    inputs: &PackageInputs,
    policy: Policy,
    cancel: &Cancel,
    progress: Progress<'_>,
) -> Result<RpmArtifacts, BuildError> {
    check_tools(RPM_TOOLS)?;
    let key = rpm_key(inputs).await?;
    let cache = Cache::new(&cfg.cache_dir);
    let stage = Stage {
        name: STAGE,
        key: &key,
        lock: "packages.lock",
        log_dir: None,
    };
    let got = stage::ensure(&cache, stage, policy, cancel, progress, |job: Job<'_>| {
        let cache = cache.clone();
        let previous = policy
            .force
            .then(|| cache.lookup(STAGE, &key.key))
            .flatten();
        async move {
            let log = job.staged.join("build.log");
            std::fs::write(&log, "").map_err(BuildError::io("failed to create", &log))?;
            let sde = inputs.epoch.secs;
            let work = cache.work_dir(STAGE, "build");
            let rpms = build_rpms(&plans(inputs)?, sde, &work, &job.staged, &log).await?;
            let _ = std::fs::remove_dir_all(&work);
            package_set::check_same(&cache, STAGE, previous.as_ref(), &job.staged, &rpms)?;
            run(&createrepo_cmd(&job.staged, sde), "createrepo_c", &log).await?;
            let mut product = Product::new(["build.log", "repodata"], []);
            for r in &rpms {
                let name = r.file_name().unwrap_or_default().to_string_lossy();
                product.artifacts.insert(name.to_string(), name.to_string());
            }
            product.facts.insert("sde".into(), sde.to_string());
            Ok::<_, BuildError>(product)
        }
    })
    .await?;
    let rpms = got
        .entry
        .info
        .artifacts
        .values()
        .filter(|n| n.ends_with(".rpm"))
        .map(|n| got.entry.dir.join(n))
        .collect();
    Ok(RpmArtifacts {
        repo: got.entry.dir.clone(),
        rpms,
        key: key.key,
        built_now: got.built_now,
    })
}

/// Where `build packages` publishes the RPM repository: `packages/rpm/` of the clone.
pub(crate) fn publish_dir(cfg: &Config) -> PathBuf {
    repo_root(cfg).join("packages/rpm")
}

/// Where `build kernel --profile P --rpm` publishes the repository of a kernel profile
/// other than the packaged one: `packages/rpm-<profile>/`.
pub(crate) fn profile_publish_dir(cfg: &Config, profile: &str) -> PathBuf {
    if profile == package_set::KERNEL_PROFILE {
        publish_dir(cfg)
    } else {
        repo_root(cfg).join(format!("packages/rpm-{profile}"))
    }
}

#[cfg(test)]
// The tests check the RPMs with rpm itself (only sys spawns in the product; clippy.toml).
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::stages::package_set::fixture;

    fn tool(argv: &[&str]) -> std::process::Output {
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (in .ci/packages?)", argv[0]))
    }

    fn out_text(o: &std::process::Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    #[test]
    fn command_lines_and_spec_are_data() {
        let c = createrepo_cmd(Path::new("/r"), 9);
        assert_eq!(
            c.to_string(),
            "SOURCE_DATE_EPOCH=9 createrepo_c --no-database --simple-md-filenames \
             --general-compress-type=gz --revision=9 --set-timestamp-to-revision /r"
        );
        let r = rpmbuild_cmd(Path::new("/w/k.spec"), Path::new("/w/top"), 9).to_string();
        assert!(r.contains("--define '_topdir /w/top'"), "{r}");
        assert!(r.contains("--define '_buildhost xsc-release'"), "{r}");
        assert!(
            r.contains("--define 'use_source_date_epoch_as_buildtime 1'"),
            "{r}"
        );
        let d = tempfile::tempdir().unwrap();
        let inputs = fixture::inputs(d.path());
        let p = plans(&inputs).unwrap();
        let spec = spec_text(
            &p[0],
            Path::new("/t"),
            &["/lib/modules/6.1.192/vmlinuz".into()],
        );
        assert!(spec.starts_with("Name: kernel\nVersion: 6.1.192\nRelease: xsc1735689600\n"));
        assert!(spec.contains("AutoReqProv: no\n"));
        assert!(spec.contains("Provides: installonlypkg(kernel)\n"));
        assert!(spec.contains(
            "%posttrans\n/usr/bin/kernel-install add 6.1.192 /lib/modules/6.1.192/vmlinuz"
        ));
        assert!(spec.contains("%ghost %attr(0600,root,root) /boot/initramfs-6.1.192.img\n"));
    }

    /// A kernel with modules (the `el` profile): its `modules_install` tree goes into the
    /// kernel RPM (modules and depmod's files, not the links into this machine's build
    /// tree), checked with rpm itself.
    #[tokio::test]
    async fn a_kernel_with_modules_ships_its_modules_tree() {
        let d = tempfile::tempdir().unwrap();
        let mut inputs = fixture::inputs(&d.path().join("in"));
        let mods = d.path().join("modules");
        let kdir = mods.join("lib/modules/6.1.192");
        std::fs::create_dir_all(kdir.join("kernel/fs/fat")).unwrap();
        std::fs::write(kdir.join("kernel/fs/fat/vfat.ko"), b"\x7fELF module").unwrap();
        for f in ["modules.order", "modules.builtin", "modules.dep"] {
            std::fs::write(kdir.join(f), b"kernel/fs/fat/vfat.ko\n").unwrap();
        }
        std::os::unix::fs::symlink("/work/kernel/el/linux", kdir.join("build")).unwrap();
        std::os::unix::fs::symlink("/work/kernel/el/linux", kdir.join("source")).unwrap();
        let items = package_set::module_items(&mods, "6.1.192").unwrap();
        let paths: Vec<&str> = items.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "lib/modules/6.1.192/kernel/fs/fat/vfat.ko",
                "lib/modules/6.1.192/modules.builtin",
                "lib/modules/6.1.192/modules.dep",
                "lib/modules/6.1.192/modules.order",
            ]
        );
        inputs.modules = Some(mods);
        let plans = plans(&inputs).unwrap();
        let log = d.path().join("log");
        let rpms = build_rpms(
            &plans[..1],
            inputs.epoch.secs,
            &d.path().join("w"),
            &d.path().join("out"),
            &log,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let s = rpms[0].to_str().unwrap();
        let list = out_text(&tool(&["rpm", "-qlp", s]));
        for f in [
            "/lib/modules/6.1.192/vmlinuz",
            "/lib/modules/6.1.192/kernel/fs/fat/vfat.ko",
            "/lib/modules/6.1.192/modules.dep",
        ] {
            assert!(list.lines().any(|l| l == f), "{f} in\n{list}");
        }
        assert!(
            !list.contains("/build") && !list.contains("/source"),
            "{list}"
        );
        let info = out_text(&tool(&["rpm", "-qip", s]));
        assert!(info.contains("for EL9 installs"), "{info}");
        let k = tool(&["rpm", "-K", s]);
        assert!(out_text(&k).contains("digests OK"), "{}", out_text(&k));
    }

    /// rpmbuild on the fixture inputs: header and file list, digests, the same bytes twice,
    /// an install into a scratch root, a createrepo_c repository.
    #[tokio::test]
    async fn rpms_are_reproducible_and_install_into_a_scratch_root() {
        let d = tempfile::tempdir().unwrap();
        let inputs = fixture::inputs(&d.path().join("in"));
        let log = d.path().join("log");
        let plans = plans(&inputs).unwrap();
        let sde = inputs.epoch.secs;
        let out = d.path().join("a");
        let rpms = build_rpms(&plans, sde, &d.path().join("w"), &out, &log)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{e:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        // The same inputs again (the stage's work directory, so the same _topdir): the
        // same bytes.
        let again = build_rpms(&plans, sde, &d.path().join("w"), &d.path().join("b"), &log)
            .await
            .unwrap();
        let sha = |p: &Path| crate::sys::cache::sha256_file(p).unwrap();
        for (a, b) in rpms.iter().zip(&again) {
            assert_eq!(sha(a), sha(b), "{a:?}");
        }
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let info = out_text(&tool(&["rpm", "-qip", &s(&rpms[0])]));
        assert!(info.contains("Name        : kernel"), "{info}");
        assert!(info.contains("Build Host  : xsc-release"), "{info}");
        assert!(
            info.contains("Build Date  : Wed Jan  1 00:00:00 2025"),
            "{info}"
        );
        let list = out_text(&tool(&["rpm", "-qlp", &s(&rpms[0])]));
        for f in [
            "/lib/modules/6.1.192/vmlinuz",
            "/lib/modules/6.1.192/modules.order",
            "/boot/initramfs-6.1.192.img",
        ] {
            assert!(list.lines().any(|l| l == f), "{f} in\n{list}");
        }
        let provides = out_text(&tool(&["rpm", "-qp", "--provides", &s(&rpms[1])]));
        assert!(
            !provides.contains("libc.so"),
            "never provides libc: {provides}"
        );
        let scripts = out_text(&tool(&["rpm", "-qp", "--scripts", &s(&rpms[0])]));
        assert!(scripts.contains("posttrans scriptlet"), "{scripts}");
        let k = tool(
            &[
                &["rpm", "-K"][..],
                &rpms.iter().map(|p| p.to_str().unwrap()).collect::<Vec<_>>(),
            ]
            .concat(),
        );
        assert!(k.status.success(), "{}", out_text(&k));
        assert_eq!(
            out_text(&k).matches("digests OK").count(),
            3,
            "{}",
            out_text(&k)
        );
        // The scratch root has no shell, systemd or dracut: --nodeps (kernel-install and
        // dracut are EL9's) and --noscripts (%posttrans runs kernel-install, which
        // belongs to the installed system's first boot of the installer, not to this host).
        let root = d.path().join("root");
        let mut argv = vec![
            "rpm".to_string(),
            "--root".into(),
            s(&root),
            "--dbpath".into(),
            "/var/lib/rpm".into(),
            "--nodeps".into(),
            "--noscripts".into(),
            "-i".into(),
        ];
        argv.extend(rpms.iter().map(|p| s(p)));
        let i = tool(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(i.status.success(), "rpm -i:\n{}", out_text(&i));
        assert!(root.join("lib/modules/6.1.192/vmlinuz").is_file());
        assert!(root.join("opt/xsc-glibc/lib64/libc.so.6").is_file());
        assert!(
            root.join("usr/lib/systemd/system/multi-user.target.wants/xsc-selftest.service")
                .is_symlink()
        );
        let q = out_text(&tool(&[
            "rpm",
            "--root",
            &s(&root),
            "--dbpath",
            "/var/lib/rpm",
            "-qa",
        ]));
        assert_eq!(q.lines().count(), 3, "{q}");
        // A repository of them, the same bytes twice.
        let r = tool(
            &createrepo_cmd(&out, sde)
                .argv
                .iter()
                .map(|a| a.to_str().unwrap())
                .collect::<Vec<_>>(),
        );
        assert!(r.status.success(), "{}", out_text(&r));
        let repomd = std::fs::read_to_string(out.join("repodata/repomd.xml")).unwrap();
        assert!(
            repomd.contains("<revision>1735689600</revision>"),
            "{repomd}"
        );
        let primary = std::fs::read(out.join("repodata/primary.xml.gz")).unwrap();
        let r2 = tool(
            &createrepo_cmd(&out, sde)
                .argv
                .iter()
                .map(|a| a.to_str().unwrap())
                .collect::<Vec<_>>(),
        );
        assert!(r2.status.success());
        assert_eq!(
            std::fs::read(out.join("repodata/primary.xml.gz")).unwrap(),
            primary
        );
        assert_eq!(
            std::fs::read_to_string(out.join("repodata/repomd.xml")).unwrap(),
            repomd
        );
    }
}
