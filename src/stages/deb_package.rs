//! The `.deb` packages stage: `linux-image-xsc` (the kernel stage's bzImage, System.map and
//! config in `/boot`), `xsc-glibc` (the `/opt/xsc-glibc` runtime and `xsc-run`, side by side
//! with libc6, never replacing it) and `xsc-tests` (the static guest programs, `xsc-init`,
//! the self-test and its systemd unit), with a flat apt repository of them, cached by
//! content and reproducible under SOURCE_DATE_EPOCH.
//!
//! ```text
//! kernel + glibc stages, guest programs ─► package_set (trees) ─► dpkg-deb --build
//!     ─► apt-ftparchive packages/release ─► <cache>/stages/deb-packages/<key>/
//! ```
//! Command lines are pure functions below; `dpkg-deb` clamps the tar and ar timestamps to
//! SOURCE_DATE_EPOCH and sorts the members, `package_set::write_tree` pins modes and mtimes.

use std::ffi::OsString;
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
pub(crate) const STAGE: &str = "deb-packages";
/// Version of this recipe; bump on any change of output.
pub(crate) const RECIPE: &str = "deb-packages-3";
/// The kernel package (one name for every XSC kernel: a newer build upgrades it).
pub(crate) const KERNEL_PACKAGE: &str = "linux-image-xsc";
/// Who the packages name as maintainer.
pub(crate) const MAINTAINER: &str = "XSC maintainers <xsc@example.org>";
/// Host tools of the stage, with their Debian packages.
pub(crate) const DEB_TOOLS: &[(&str, &str)] = &[
    ("dpkg-deb", "dpkg"),
    ("gzip", "gzip"),
    ("apt-ftparchive", "apt-utils"),
    ("faketime", "faketime"),
    ("strip", "binutils"),
];

/// One package's metadata (the `DEBIAN/control` fields that vary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DebMeta {
    pub name: String,
    pub version: String,
    pub section: &'static str,
    pub depends: Vec<String>,
    pub summary: &'static str,
    pub description: &'static str,
}

/// `DEBIAN/control` of one package.
pub(crate) fn control_text(m: &DebMeta, installed_kib: u64) -> String {
    let mut s = format!(
        "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {installed_kib}\nSection: {}\nPriority: optional\n",
        m.name, m.version, m.section
    );
    if !m.depends.is_empty() {
        s.push_str(&format!("Depends: {}\n", m.depends.join(", ")));
    }
    s.push_str(&format!("Description: {}\n", m.summary));
    for line in m.description.lines() {
        let line = if line.is_empty() { "." } else { line };
        s.push_str(&format!(" {line}\n"));
    }
    s
}

/// `usr/share/doc/<pkg>/copyright` (machine-readable): the kernel and glibc are GPL-2 /
/// LGPL-2.1+ as their sources; the harness's own files (guest programs, scripts) are
/// the project's, under the same terms as the kernel patches they exercise.
pub(crate) fn copyright_text(name: &str) -> String {
    let (what, license) = match name {
        KERNEL_PACKAGE => ("Linux 6.1 with the XSC patch series", "GPL-2"),
        "xsc-glibc" => ("GNU C Library 2.36 with the XSC patch series", "LGPL-2.1+"),
        _ => ("XSC guest test programs and self-test", "GPL-2"),
    };
    let text = if license == "GPL-2" {
        "/usr/share/common-licenses/GPL-2"
    } else {
        "/usr/share/common-licenses/LGPL-2.1"
    };
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {name}\n\
         Comment: {what}, packaged by xsc-release.\n\
         \n\
         Files: *\n\
         Copyright: 1991-2025 the Linux kernel and GNU C Library authors, the XSC contributors\n\
         License: {license}\n \
         On Debian systems the full text is in {text}.\n"
    )
}

/// `usr/share/doc/<pkg>/changelog` (gzipped in the package): one entry dated
/// SOURCE_DATE_EPOCH, so the date is an input, not the build's clock.
pub(crate) fn changelog_text(name: &str, version: &str, sde: i64) -> String {
    let date = chrono::DateTime::from_timestamp(sde, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S +0000");
    format!(
        "{name} ({version}) unstable; urgency=medium\n\n  \
         * Built by xsc-release from the inputs of its cache key.\n\n \
         -- {MAINTAINER}  {date}\n"
    )
}

/// The kernel's `postinst`/`postrm`: the installed system's kernel hooks (initramfs-tools,
/// grub), as `make bindeb-pkg` runs them; skipped when dpkg installs into another root
/// (`DPKG_ROOT` set), where they would act on the running system instead.
pub(crate) fn kernel_script(hook: &str, release: &str) -> String {
    format!(
        "#!/bin/sh\nset -e\n\
         if [ -z \"${{DPKG_ROOT:-}}\" ] && [ -d /etc/kernel/{hook}.d ]; then\n\
         \trun-parts --report --exit-on-error --arg={release} --arg=/boot/vmlinuz-{release} /etc/kernel/{hook}.d\n\
         fi\n\
         exit 0\n"
    )
}

/// `dpkg-deb --build` of one tree: root:root owners, xz, SOURCE_DATE_EPOCH for every
/// timestamp dpkg-deb writes.
pub(crate) fn dpkg_deb_cmd(tree: &Path, out: &Path, sde: i64) -> Cmd {
    let mut argv: Vec<OsString> = ["dpkg-deb", "--root-owner-group", "-Zxz", "-z9", "--build"]
        .iter()
        .map(Into::into)
        .collect();
    argv.extend([tree.into(), out.into()]);
    Cmd::new(argv)
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        .deadline(Duration::from_secs(300))
}

/// `gzip -9n` in place (no name, no timestamp in the header).
pub(crate) fn gzip_cmd(file: &Path) -> Cmd {
    Cmd::new([OsString::from("gzip"), "-9nf".into(), file.into()]).deadline(Duration::from_secs(60))
}

/// `apt-ftparchive packages .` in the repository (its stdout is `Packages`).
pub(crate) fn packages_cmd(repo: &Path) -> Cmd {
    Cmd::new(["apt-ftparchive", "packages", "."])
        .cwd(repo)
        .deadline(Duration::from_secs(60))
}

/// `apt-ftparchive release .` (its stdout is `Release`). apt 2.6 dates it with the clock
/// and ignores SOURCE_DATE_EPOCH there (measured), so faketime stops the clock at SDE.
pub(crate) fn release_cmd(repo: &Path, sde: i64) -> Cmd {
    Cmd::new([
        "faketime",
        "-f",
        &super::iso::utc_string(sde),
        "apt-ftparchive",
        "-o",
        "APT::FTPArchive::Release::Origin=XSC",
        "-o",
        "APT::FTPArchive::Release::Label=XSC",
        "-o",
        "APT::FTPArchive::Release::Architectures=amd64",
        "release",
        ".",
    ])
    .cwd(repo)
    .env("TZ", "UTC")
    .deadline(Duration::from_secs(60))
}

/// One package to build: its metadata, files and maintainer scripts.
#[derive(Clone, Debug)]
pub(crate) struct DebPlan {
    pub meta: DebMeta,
    pub items: Vec<Item>,
    /// `(name, text)` of `DEBIAN/postinst` etc.
    pub scripts: Vec<(&'static str, String)>,
}

impl DebPlan {
    /// `<name>_<version>_amd64.deb`.
    pub(crate) fn file_name(&self) -> String {
        format!("{}_{}_amd64.deb", self.meta.name, self.meta.version)
    }
}

/// The three packages of `inputs`.
pub(crate) fn plans(inputs: &PackageInputs) -> Result<Vec<DebPlan>, BuildError> {
    let tag = inputs.build_tag();
    let kr = &inputs.release;
    let kernel_version = format!("{kr}+{tag}");
    let glibc_version = format!("{}+{tag}", package_set::GLIBC_VERSION);
    let tests_version = format!("{}+{tag}", package_set::TESTS_VERSION);
    let kernel = DebPlan {
        meta: DebMeta {
            name: KERNEL_PACKAGE.into(),
            version: kernel_version,
            section: "kernel",
            depends: vec![],
            summary: "Linux 6.1 kernel with XSC system call rings",
            description: "The XSC kernel (Linux 6.1 with the XSC quilt series, lean profile:\n\
                          every driver built in, no modules) as the release gates boot it,\n\
                          byte for byte. Boot it with a matching initramfs or none.",
        },
        items: vec![
            Item::file(format!("boot/vmlinuz-{kr}"), 0o644, &inputs.bzimage),
            Item::file(format!("boot/System.map-{kr}"), 0o644, &inputs.system_map),
            Item::file(format!("boot/config-{kr}"), 0o644, &inputs.config),
        ],
        scripts: vec![
            ("postinst", kernel_script("postinst", kr)),
            ("postrm", kernel_script("postrm", kr)),
        ],
    };
    let glibc = DebPlan {
        meta: DebMeta {
            name: "xsc-glibc".into(),
            version: glibc_version.clone(),
            section: "libs",
            depends: vec![],
            summary: "XSC GNU C Library, side by side in /opt/xsc-glibc",
            description: "glibc 2.36 with XSC ring routing, installed in /opt/xsc-glibc beside\n\
                          the system's libc6, which it never replaces. Only programs started\n\
                          with xsc-run use it; routing is on for them.",
        },
        items: package_set::glibc_items(inputs),
        scripts: vec![],
    };
    let mut tests_items = package_set::tests_items(inputs, "lib/systemd/system")?;
    tests_items.push(Item::bytes(
        "usr/share/lintian/overrides/xsc-tests",
        0o644,
        TESTS_OVERRIDES,
    ));
    let tests = DebPlan {
        meta: DebMeta {
            name: "xsc-tests".into(),
            version: tests_version,
            section: "misc",
            depends: vec![format!("xsc-glibc (= {glibc_version})")],
            summary: "XSC ring and glibc routing tests, and the boot self-test",
            description: "Static test programs for the XSC system call rings and the XSC\n\
                          glibc, and a systemd unit that runs them on boot and powers the\n\
                          machine off, but only when QEMU passes\n\
                          -fw_cfg name=opt/org.xsc/selftest,string=1.",
        },
        items: tests_items,
        scripts: vec![],
    };
    let mut glibc = glibc;
    glibc.items.push(Item::bytes(
        "usr/share/lintian/overrides/xsc-glibc",
        0o644,
        GLIBC_OVERRIDES,
    ));
    Ok(vec![kernel, glibc, tests])
}

/// lintian tags `xsc-glibc` keeps, each with why (docs/packages.md).
const GLIBC_OVERRIDES: &str = "\
# /opt/xsc-glibc is the point: a second C library beside libc6 that nothing picks up by
# accident (not in the loader's path, no ldconfig entry, no shlibs for dpkg-shlibdeps).
xsc-glibc: dir-or-file-in-opt *
# libc.so.6 needs the loader shipped beside it in /opt/xsc-glibc/lib64, which lintian
# does not look for outside the system's library path.
xsc-glibc: undeclared-elf-prerequisites *
# The loader needs nothing: it is the one ELF object of a C library without NEEDED.
xsc-glibc: shared-library-lacks-prerequisites *
# xsc-run executes the loader (as libc6's ld.so is executable): it needs its x bit.
xsc-glibc: shared-library-is-executable 0755 [opt/xsc-glibc/lib64/ld-linux-x86-64.so.2]
# xsc-run is documented by its usage line and README; a man page is future work.
xsc-glibc: no-manual-page *
";

/// lintian tags `xsc-tests` keeps, each with why (docs/packages.md).
const TESTS_OVERRIDES: &str = "\
# The test programs are static on purpose: they run as the guest's only userspace in the
# test initramfs, and xsc_glibc_test carries the XSC glibc inside it.
xsc-tests: statically-linked-binary *
# Enabled by a static .wants link; the unit is a no-op unless QEMU passes the switch,
# and its Description says so.
xsc-tests: systemd-service-file-missing-documentation-key *
# xsc-selftest is run by its unit, not by people; its header says what it does.
xsc-tests: no-manual-page *
";

/// Builds each plan's `.deb` into `out` (work trees below `work`); returns the files.
pub(crate) async fn build_debs(
    plans: &[DebPlan],
    sde: i64,
    work: &Path,
    out: &Path,
    log: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(out).map_err(BuildError::io("failed to create", out))?;
    let mut debs = Vec::new();
    for p in plans {
        let tree = work.join(&p.meta.name);
        let doc = format!("usr/share/doc/{}", p.meta.name);
        let mut items = p.items.clone();
        items.push(Item::bytes(
            format!("{doc}/copyright"),
            0o644,
            copyright_text(&p.meta.name),
        ));
        items.push(Item::bytes(
            format!("{doc}/changelog"),
            0o644,
            changelog_text(&p.meta.name, &p.meta.version, sde),
        ));
        package_set::write_tree(&tree, &items, sde)?;
        for c in package_set::strip_cmds(&tree, &items)? {
            run(&c, "strip", log).await?;
        }
        let changelog = tree.join(&doc).join("changelog");
        run(&gzip_cmd(&changelog), "gzip changelog", log).await?;
        let kib = installed_kib(&tree);
        let control = tree.join("DEBIAN");
        let mut meta_items = vec![Item::bytes("control", 0o644, control_text(&p.meta, kib))];
        for (name, text) in &p.scripts {
            meta_items.push(Item::bytes(*name, 0o755, text.clone()));
        }
        package_set::write_tree(&control, &meta_items, sde)?;
        package_set::write_tree(&tree, &[], sde)?;
        let deb = out.join(p.file_name());
        run(&dpkg_deb_cmd(&tree, &deb, sde), "dpkg-deb --build", log).await?;
        debs.push(deb);
    }
    Ok(debs)
}

/// The flat apt repository of the `.deb`s in `repo`: `Packages`, `Packages.gz`, `Release`.
pub(crate) async fn apt_repo(repo: &Path, sde: i64, log: &Path) -> Result<(), BuildError> {
    let packages = run_captured(&packages_cmd(repo), "apt-ftparchive packages", log).await?;
    let p = repo.join("Packages");
    std::fs::write(&p, packages).map_err(BuildError::io("failed to write", &p))?;
    let plain = std::fs::read(&p).map_err(BuildError::io("cannot read", &p))?;
    std::fs::write(repo.join("Packages.keep"), &plain)
        .map_err(BuildError::io("failed to write", repo))?;
    run(&gzip_cmd(&p), "gzip Packages", log).await?;
    std::fs::rename(repo.join("Packages.keep"), &p)
        .map_err(BuildError::io("failed to write", &p))?;
    let release = run_captured(&release_cmd(repo, sde), "apt-ftparchive release", log).await?;
    let r = repo.join("Release");
    std::fs::write(&r, release).map_err(BuildError::io("failed to write", &r))
}

/// dpkg's `Installed-Size`: KiB of the tree (files rounded up, like dpkg-gencontrol).
fn installed_kib(tree: &Path) -> u64 {
    crate::sys::cache::walk_sorted(tree)
        .unwrap_or_default()
        .iter()
        .filter(|rel| !rel.starts_with("DEBIAN"))
        .map(|rel| {
            std::fs::symlink_metadata(tree.join(rel))
                .map(|m| m.len().div_ceil(1024))
                .unwrap_or(0)
        })
        .sum::<u64>()
        .max(1)
}

async fn run(cmd: &Cmd, what: &str, log: &Path) -> Result<(), BuildError> {
    process::run(cmd, Some(log))
        .await
        .map(|_| ())
        .map_err(BuildError::step(what.to_string()))
}

async fn run_captured(cmd: &Cmd, what: &str, log: &Path) -> Result<String, BuildError> {
    process::run(cmd, None)
        .await
        .map(|c| c.stdout)
        .map_err(BuildError::step(what.to_string()))
        .inspect(|_| append(log, &format!("$ {cmd}\n")))
}

fn append(log: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// What the stage produced.
#[derive(Clone, Debug)]
pub(crate) struct DebArtifacts {
    /// The apt repository (the entry directory): the `.deb`s, `Packages`, `Release`.
    pub repo: PathBuf,
    /// The `.deb` files.
    pub debs: Vec<PathBuf>,
    /// The cache key.
    pub key: String,
    /// True when built by this call.
    pub built_now: bool,
}

/// The key of the packages of `inputs`.
pub(crate) async fn deb_key(inputs: &PackageInputs) -> Result<StageKey, BuildError> {
    let mut k = KeyBuilder::new();
    k.str("recipe", RECIPE);
    inputs.key(&mut k)?;
    let v = process::run(&Cmd::new(["dpkg-deb", "--version"]), None)
        .await
        .map_err(BuildError::step("dpkg-deb --version"))?;
    k.str("dpkg-deb", v.stdout.lines().next().unwrap_or_default());
    Ok(StageKey::from(&k))
}

/// The `.deb`s and their apt repository through the stage framework.
pub(crate) async fn ensure_debs(
    cfg: &Config,
    inputs: &PackageInputs,
    policy: Policy,
    cancel: &Cancel,
    progress: Progress<'_>,
) -> Result<DebArtifacts, BuildError> {
    check_tools(DEB_TOOLS)?;
    let key = deb_key(inputs).await?;
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
            let work = cache.work_dir(STAGE, "trees");
            let debs = build_debs(&plans(inputs)?, sde, &work, &job.staged, &log).await?;
            let _ = std::fs::remove_dir_all(&work);
            package_set::check_same(&cache, STAGE, previous.as_ref(), &job.staged, &debs)?;
            apt_repo(&job.staged, sde, &log).await?;
            let mut product = Product::new(["build.log", "Packages", "Release"], []);
            for d in &debs {
                let name = d.file_name().unwrap_or_default().to_string_lossy();
                product.artifacts.insert(name.to_string(), name.to_string());
            }
            product.facts.insert("sde".into(), sde.to_string());
            product
                .facts
                .insert("sde.source".into(), inputs.epoch.source.describe().into());
            Ok::<_, BuildError>(product)
        }
    })
    .await?;
    let debs = got
        .entry
        .info
        .artifacts
        .values()
        .filter(|n| n.ends_with(".deb"))
        .map(|n| got.entry.dir.join(n))
        .collect();
    Ok(DebArtifacts {
        repo: got.entry.dir.clone(),
        debs,
        key: key.key,
        built_now: got.built_now,
    })
}

/// Where `build packages` publishes the apt repository: `packages/apt/` of the clone.
pub(crate) fn publish_dir(cfg: &Config) -> PathBuf {
    repo_root(cfg).join("packages/apt")
}

#[cfg(test)]
// The tests check the packages with dpkg-deb, lintian and dpkg themselves (only sys spawns
// in the product; clippy.toml).
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
    fn command_lines_are_data() {
        let c = dpkg_deb_cmd(Path::new("/t/x"), Path::new("/o/x.deb"), 42);
        assert_eq!(
            c.to_string(),
            "SOURCE_DATE_EPOCH=42 dpkg-deb --root-owner-group -Zxz -z9 --build /t/x /o/x.deb"
        );
        assert_eq!(
            gzip_cmd(Path::new("/d/changelog")).to_string(),
            "gzip -9nf /d/changelog"
        );
        assert_eq!(
            release_cmd(Path::new("/r"), 7).to_string(),
            "(cd /r && TZ=UTC faketime -f '1970-01-01 00:00:07' apt-ftparchive -o APT::FTPArchive::Release::Origin=XSC \
             -o APT::FTPArchive::Release::Label=XSC -o APT::FTPArchive::Release::Architectures=amd64 \
             release .)"
        );
    }

    #[test]
    fn control_and_changelog_are_pinned_text() {
        let m = DebMeta {
            name: "xsc-tests".into(),
            version: "1.0+xsc5".into(),
            section: "misc",
            depends: vec!["xsc-glibc (= 2.36+xsc5)".into()],
            summary: "s",
            description: "line one\n\nline three",
        };
        assert_eq!(
            control_text(&m, 12),
            "Package: xsc-tests\nVersion: 1.0+xsc5\nArchitecture: amd64\n\
             Maintainer: XSC maintainers <xsc@example.org>\nInstalled-Size: 12\nSection: misc\n\
             Priority: optional\nDepends: xsc-glibc (= 2.36+xsc5)\nDescription: s\n line one\n .\n \
             line three\n"
        );
        assert!(
            changelog_text("x", "1", 1_735_689_600).ends_with(
                " -- XSC maintainers <xsc@example.org>  Wed, 01 Jan 2025 00:00:00 +0000\n"
            )
        );
        let post = kernel_script("postinst", "6.1.192");
        assert!(post.contains("--arg=/boot/vmlinuz-6.1.192 /etc/kernel/postinst.d"));
        assert!(post.contains("DPKG_ROOT"));
    }

    /// The real tools on packages of the fixture inputs: contents, lintian, an install into a
    /// scratch root, and the same bytes from a second build.
    #[tokio::test]
    async fn debs_are_reproducible_lintian_clean_and_install_into_a_scratch_root() {
        let d = tempfile::tempdir().unwrap();
        let inputs = fixture::inputs(&d.path().join("in"));
        let log = d.path().join("log");
        let plans = plans(&inputs).unwrap();
        let sde = inputs.epoch.secs;
        let out = d.path().join("a");
        let debs = build_debs(&plans, sde, &d.path().join("w"), &out, &log)
            .await
            .unwrap();
        apt_repo(&out, sde, &log).await.unwrap();
        // Same inputs, another directory and another time: the same bytes.
        let again = build_debs(&plans, sde, &d.path().join("w2"), &d.path().join("b"), &log)
            .await
            .unwrap();
        let sha = |p: &Path| crate::sys::cache::sha256_file(p).unwrap();
        for (a, b) in debs.iter().zip(&again) {
            assert_eq!(sha(a), sha(b), "{a:?}");
        }
        let names: Vec<String> = debs
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "linux-image-xsc_6.1.192+xsc1735689600_amd64.deb",
                "xsc-glibc_2.36+xsc1735689600_amd64.deb",
                "xsc-tests_1.0+xsc1735689600_amd64.deb"
            ]
        );
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let info = out_text(&tool(&["dpkg-deb", "--info", &s(&debs[2])]));
        assert!(
            info.contains("Depends: xsc-glibc (= 2.36+xsc1735689600)"),
            "{info}"
        );
        let contents = out_text(&tool(&["dpkg-deb", "--contents", &s(&debs[0])]));
        assert!(contents.contains("./boot/vmlinuz-6.1.192"), "{contents}");
        assert!(contents.contains("root/root"), "{contents}");
        assert!(
            contents.contains("2025-01-01 00:00"),
            "mtimes pinned: {contents}"
        );
        let contents = out_text(&tool(&["dpkg-deb", "--contents", &s(&debs[1])]));
        assert!(
            contents.contains("./opt/xsc-glibc/lib64/libc.so.6"),
            "{contents}"
        );
        assert!(contents.contains("./usr/bin/xsc-run"), "{contents}");
        assert!(
            !contents.contains("./lib/x86_64-linux-gnu"),
            "never libc6's place"
        );
        // lintian: no errors and no warnings that the overrides do not justify.
        let mut argv = vec![
            "lintian",
            "--fail-on",
            "error,warning",
            "--tag-display-limit",
            "0",
        ];
        let paths: Vec<String> = debs.iter().map(|p| s(p)).collect();
        argv.extend(paths.iter().map(String::as_str));
        let l = tool(&argv);
        assert!(l.status.success(), "lintian:\n{}", out_text(&l));
        // The apt repository lists all three.
        let packages = std::fs::read_to_string(out.join("Packages")).unwrap();
        assert_eq!(packages.matches("Package: ").count(), 3, "{packages}");
        assert!(out.join("Packages.gz").is_file());
        let release = std::fs::read_to_string(out.join("Release")).unwrap();
        assert!(
            release.contains("Date: Wed, 01 Jan 2025 00:00:00 +0000"),
            "{release}"
        );
        // dpkg installs them into a scratch root. Its maintainer scripts run without a
        // chroot (the scratch root has no shell) and see DPKG_ROOT, so the kernel hooks of
        // this host are not run.
        let root = d.path().join("root");
        for dir in ["var/lib/dpkg/updates", "var/lib/dpkg/info"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        let mut argv = vec![
            "dpkg".to_string(),
            format!("--root={}", s(&root)),
            "--force-script-chrootless".into(),
            "--force-not-root".into(),
            "--log=/dev/null".into(),
            "-i".into(),
        ];
        argv.extend(paths.iter().cloned());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let i = tool(&argv);
        assert!(i.status.success(), "dpkg -i:\n{}", out_text(&i));
        assert!(root.join("boot/vmlinuz-6.1.192").is_file());
        assert!(root.join("opt/xsc-glibc/lib64/libc.so.6").is_file());
        assert!(root.join("usr/lib/xsc/xsc_ring_test").is_file());
        let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
        assert_eq!(
            status.matches("Status: install ok installed").count(),
            3,
            "{status}"
        );
    }
}
