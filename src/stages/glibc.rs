//! The glibc stage: the pinned `glibc-source` tarball plus the `patches/glibc` series, built
//! out of tree with `--enable-xsc`, installed into a staging sysroot, and sealed in the
//! content-addressed cache together with what later stages need.
//!
//! ```text
//! [sources.glibc] tarball ─┐
//! patches/glibc/series ────┼─► key ─► cache hit? ─► done
//! guest-tests/glibc-tests.list, toolchain, kernel headers ─┘
//!   miss: unpack (or reuse the kept tree) ─► quilt push -a --fuzz=0 ─► configure (when its
//!         inputs changed) ─► make ─► check-abi (libc) ─► make install DESTDIR=sysroot ─► kernel headers into
//!         the sysroot ─► runtime/ (stripped shared libraries) ─► the listed glibc tests
//! ```
//! Artifacts: `sysroot/` (headers, crt files, `libc.a`: guest programs link statically
//! against it), `runtime/lib64/` (the loader and shared libraries, debug info stripped: the
//! side-by-side install of the guest initramfs and the Debian ISO, plus the compiler's
//! `libgcc_s.so.1` that `pthread_cancel` loads), `tests/` (glibc's own
//! test programs named in `guest-tests/glibc-tests.list`, run in the XSC guest).
//!
//! The kept work tree `<cache>/work/glibc/xsc/` (`src/`, `build/`, `patches/`,
//! `state.json`) makes a one-patch change cost a make traversal, not a full build.
//! Command lines are pure functions below; `process` runs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::BuildError;
use super::make;
use super::progress::BuildEvent;
use super::quilt::{self, MtimeSnapshot};
use super::source::{self, copy_dir};
use super::stage::{
    self, Cancel, HEAVY_LOCK, Job, Policy, Product, Progress, Stage, StageKey, WorkState,
    key_series, need_artifact, read_input, repo_root, snapshot_series, stage_cache,
};
use super::tools;
use crate::input::config::Config;
use crate::sys::cache::{Entry, KeyBuilder, sha256_bytes, sha256_file};
use crate::sys::process::{self, Cmd};

/// Bump when the recipe changes in a way that changes the artifacts (steps, flags, layout).
pub(crate) const GLIBC_RECIPE: &str = "glibc-recipe-1";

/// The cache stage name.
pub(crate) const STAGE: &str = "glibc";

/// The list of glibc's own tests the stage builds, relative to `guest-tests/`.
pub(crate) const TESTS_LIST: &str = "glibc-tests.list";

/// The preload library the guest runner uses to read each test's ring counters, relative
/// to `guest-tests/`; built into `tests/xsc_counters.so`.
pub(crate) const COUNTERS_SOURCE: &str = "xsc_counters.c";

/// Where the runtime lives inside the sysroot (`slibdir` for `--prefix=/usr` on x86_64).
pub(crate) const SLIBDIR: &str = "lib64";

/// Host tools of the glibc build with their Debian packages (`doctor` lists them; the
/// stage checks them before configure, whose own message for a missing gawk is cryptic).
pub(crate) const GLIBC_TOOLS: &[(&str, &str)] = &[
    ("gcc", "gcc"),
    ("make", "make"),
    ("ld", "binutils"),
    ("strip", "binutils"),
    ("gawk", "gawk"),
    ("bison", "bison"),
    ("python3", "python3"),
    ("quilt", "quilt"),
    ("tar", "tar"),
    ("xz", "xz-utils"),
    ("/usr/include/linux/version.h", "linux-libc-dev"),
];

/// The kernel UAPI headers copied into the sysroot, so `gcc --sysroot` finds `<linux/…>`
/// and `<asm/…>` (glibc installs only its own headers): (host directory, sysroot path).
pub(crate) const KERNEL_HEADERS: &[(&str, &str)] = &[
    ("/usr/include/linux", "usr/include/linux"),
    ("/usr/include/asm-generic", "usr/include/asm-generic"),
    ("/usr/include/x86_64-linux-gnu/asm", "usr/include/asm"),
];

/// Which configuration of the series to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum GlibcVariant {
    /// `--enable-xsc`: the library the release gate and the ISO use.
    #[default]
    Xsc,
    /// The same series configured *without* `--enable-xsc`: must behave as stock 2.36 and
    /// never open `/dev/xsc` (checked by the xsc-glibc gate).
    Disabled,
}

impl GlibcVariant {
    /// Its name in the cache, in `status` and on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GlibcVariant::Xsc => "xsc",
            GlibcVariant::Disabled => "disabled",
        }
    }

    /// From a command-line or scenario word.
    pub(crate) fn parse(word: &str) -> Option<GlibcVariant> {
        [GlibcVariant::Xsc, GlibcVariant::Disabled]
            .into_iter()
            .find(|v| v.name() == word)
    }
}

/// What to build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GlibcBuildOptions {
    /// With or without `--enable-xsc`.
    pub variant: GlibcVariant,
    /// Build even when the cache has the key.
    pub force: bool,
    /// `make -j`; `None` = number of CPUs.
    pub jobs: Option<usize>,
}

/// A built XSC glibc in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GlibcArtifacts {
    /// The installed tree (`make install DESTDIR=`), plus kernel headers.
    pub sysroot: PathBuf,
    /// `lib64/` with the loader and shared libraries, debug info stripped.
    pub runtime: PathBuf,
    /// glibc's own tests: `<subdir>/<test>` binaries and `list`.
    pub tests: PathBuf,
    /// The cache key.
    pub key: String,
    /// The cache entry directory.
    pub entry_dir: PathBuf,
    /// The build log.
    pub log: Option<PathBuf>,
    /// True when this call ran make; false on a cache hit.
    pub built_now: bool,
    /// Recorded facts: build seconds, incremental, configure arguments …
    pub facts: BTreeMap<String, String>,
}

impl GlibcArtifacts {
    /// The sysroot as guest programs link against it (keyed by this entry).
    pub(crate) fn program_sysroot(&self) -> crate::guest::programs::Sysroot {
        crate::guest::programs::Sysroot {
            dir: self.sysroot.clone(),
            key: self.key.clone(),
        }
    }
}

/// The key of one set of glibc inputs.
pub(crate) type GlibcKey = StageKey;

/// One of glibc's own tests: `io/tst-openat` is subdir `io`, name `tst-openat`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GlibcTest {
    /// glibc source subdirectory.
    pub subdir: String,
    /// Test program name.
    pub name: String,
}

impl std::fmt::Display for GlibcTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.subdir, self.name)
    }
}

/// `patches/glibc` of the repository, absolute.
pub(crate) fn patches_dir(cfg: &Config) -> PathBuf {
    repo_root(cfg).join("patches").join("glibc")
}

/// The configure arguments. `--prefix=/usr` like a distribution libc (the runtime is
/// installed side by side elsewhere, see docs/glibc-build.md); stack protector and BIND_NOW
/// as Debian builds its libc; the package version names the origin in `ld.so --version`.
pub(crate) fn configure_args(variant: GlibcVariant) -> Vec<String> {
    let xsc = match variant {
        GlibcVariant::Xsc => &["--enable-xsc", "--with-pkgversion=xsc-release XSC glibc"][..],
        GlibcVariant::Disabled => &["--with-pkgversion=xsc-release glibc (XSC disabled)"][..],
    };
    ["--prefix=/usr"]
        .iter()
        .chain(xsc)
        .chain(&["--enable-stack-protector=strong", "--enable-bind-now"])
        .map(|s| (*s).to_string())
        .collect()
}

/// `<src>/configure <args>` run in the (empty) build directory: glibc refuses in-tree builds.
pub(crate) fn configure_cmd(src: &Path, build: &Path, variant: GlibcVariant) -> Cmd {
    let mut argv = vec![src.join("configure").display().to_string()];
    argv.extend(configure_args(variant));
    Cmd::new(argv)
        .cwd(build)
        .env("LC_ALL", "C")
        .deadline(Duration::from_secs(30 * 60))
}

/// `make -j<N>` in the build directory.
pub(crate) fn make_cmd(build: &Path, jobs: usize) -> Cmd {
    clean_make_env(Cmd::new(["make".to_string(), format!("-j{jobs}")]).cwd(build))
        .deadline(Duration::from_secs(4 * 3600))
}

/// Where glibc's `check-abi` of libc leaves its verdict (`PASS: …`/`FAIL: …`) and its
/// diff, relative to the build directory.
pub(crate) const CHECK_ABI_LIBC: (&str, &str) =
    ("elf/check-abi-libc.test-result", "elf/check-abi-libc.out");

/// glibc's own ABI check of libc (`check-abi-libc`: `libc.so`'s exported symbols against
/// `libc.abilist`), made through the `elf` makefile as glibc's recursion does. The series
/// exports `xsc_batch` (`XSC_1.0`, patches/glibc/README.md), so a symbol that leaks out or
/// goes missing fails the build instead of reaching the release. Only libc: the series
/// touches no other library's exports, and the whole `make check-abi` traverses every
/// subdirectory (minutes). Like every glibc test target it exits 0 either way; the verdict
/// is the first word of [`CHECK_ABI_LIBC`]'s result file.
pub(crate) fn check_abi_cmd(src: &Path, build: &Path, jobs: usize) -> Cmd {
    clean_make_env(Cmd::new([
        "make".to_string(),
        "-r".to_string(),
        format!("-j{jobs}"),
        "-C".to_string(),
        src.join("elf").display().to_string(),
        format!("objdir={}", build.display()),
        "subdir=elf".to_string(),
        "..=../".to_string(),
        build.join(CHECK_ABI_LIBC.1).display().to_string(),
    ]))
    .deadline(Duration::from_secs(3600))
}

/// `make install DESTDIR=<dest>`: the whole installed tree under `dest`.
pub(crate) fn install_cmd(build: &Path, jobs: usize, dest: &Path) -> Cmd {
    clean_make_env(
        Cmd::new([
            "make".to_string(),
            format!("-j{jobs}"),
            "install".to_string(),
            format!("DESTDIR={}", dest.display()),
        ])
        .cwd(build),
    )
    .deadline(Duration::from_secs(3600))
}

/// Builds (does not run) the listed tests: glibc's per-test target is the test binary in
/// the object directory, made through the subdirectory's makefile.
pub(crate) fn tests_cmd(src: &Path, build: &Path, jobs: usize, tests: &[GlibcTest]) -> Vec<Cmd> {
    let mut by_dir: BTreeMap<&str, Vec<&GlibcTest>> = BTreeMap::new();
    for t in tests {
        by_dir.entry(&t.subdir).or_default().push(t);
    }
    by_dir
        .into_iter()
        .map(|(subdir, tests)| {
            // As glibc's own recursion calls a subdirectory: -r, objdir, subdir and `..`.
            let mut argv = vec![
                "make".to_string(),
                "-r".to_string(),
                format!("-j{jobs}"),
                "-C".to_string(),
                src.join(subdir).display().to_string(),
                format!("objdir={}", build.display()),
                format!("subdir={subdir}"),
                "..=../".to_string(),
            ];
            argv.extend(
                tests
                    .iter()
                    .map(|t| build.join(&t.subdir).join(&t.name).display().to_string()),
            );
            clean_make_env(Cmd::new(argv)).deadline(Duration::from_secs(3600))
        })
        .collect()
}

/// glibc's makefiles must not see an outer make's MAKEFLAGS/MAKELEVEL (`make candidate`
/// and `make check` run this binary from make): a foreign jobserver or level changes how
/// glibc recurses. Plus the C locale, for the same log text on every host.
fn clean_make_env(cmd: Cmd) -> Cmd {
    cmd.env("LC_ALL", "C")
        .env("MAKEFLAGS", "")
        .env("MFLAGS", "")
        .env("MAKELEVEL", "")
}

/// `strip --strip-debug <files>`: the guest and the ISO need code, not DWARF (libc.so.6
/// shrinks from ~15 MiB to ~2 MiB).
pub(crate) fn strip_cmd(files: &[PathBuf]) -> Cmd {
    let mut argv: Vec<std::ffi::OsString> = vec!["strip".into(), "--strip-debug".into()];
    argv.extend(files.iter().map(Into::into));
    Cmd::new(argv)
}

/// `gcc -shared -fPIC … -o <out> <source>`: the counters preload. Built with the host
/// compiler and headers: it references only GLIBC_2.2.5/2.34 symbols, which the XSC
/// glibc (the same 2.36 ABI) provides.
pub(crate) fn preload_cmd(source: &Path, out: &Path) -> Cmd {
    let mut argv: Vec<std::ffi::OsString> = [
        "gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o",
    ]
    .iter()
    .map(Into::into)
    .collect();
    argv.push(out.into());
    argv.push(source.into());
    Cmd::new(argv).env("LC_ALL", "C")
}

/// `gcc -print-file-name=libgcc_s.so.1`: the unwinder of the compiler that built glibc.
pub(crate) fn libgcc_s_cmd() -> Cmd {
    Cmd::new(["gcc", "-print-file-name=libgcc_s.so.1"])
}

/// Parses `guest-tests/glibc-tests.list`: one `SUBDIR/TEST [runner words…]` per line, `#`
/// comments.
pub(crate) fn parse_tests_list(text: &str) -> Result<Vec<GlibcTest>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        // The first word names the test; the rest (`+FILE`, `@FLAG`, arguments) is for the
        // guest runner (guest-tests/glibc_tests.c).
        let word = line.split_whitespace().next().unwrap_or_default();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_+.".contains(c);
        match word.split_once('/') {
            Some((subdir, name))
                if !subdir.is_empty()
                    && !name.is_empty()
                    && subdir.chars().all(ok_char)
                    && name.chars().all(ok_char)
                    && subdir != ".."
                    && name != ".." =>
            {
                out.push(GlibcTest {
                    subdir: subdir.into(),
                    name: name.into(),
                });
            }
            _ => {
                return Err(format!(
                    "line {}: {word:?} is not SUBDIR/TEST (e.g. io/tst-openat)",
                    i + 1
                ));
            }
        }
    }
    Ok(out)
}

/// The tests list of the repository, parsed (missing file = no tests).
pub(crate) fn tests_list(cfg: &Config) -> Result<(String, Vec<GlibcTest>), BuildError> {
    let path = cfg.guest_tests_dir.join(TESTS_LIST);
    if !path.exists() {
        return Ok((String::new(), Vec::new()));
    }
    let text = read_input("glibc tests list", &path)?;
    let tests = parse_tests_list(&text).map_err(|reason| BuildError::Input {
        what: "glibc tests list",
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    })?;
    Ok((text, tests))
}

/// Builds the key from everything that decides the artifacts: recipe, pinned source,
/// configure arguments, the series and each patch in it, the tests list, the toolchain and
/// the kernel headers glibc compiles against.
pub(crate) fn key_from_parts(
    cfg: &Config,
    variant: GlibcVariant,
    toolchain: &[(&str, String)],
    kernel_headers: &str,
) -> Result<GlibcKey, BuildError> {
    let patches = patches_dir(cfg);
    let mut key = KeyBuilder::new();
    key.str("recipe", GLIBC_RECIPE)
        .str("source", &format!("sha256:{}", cfg.glibc.sha256))
        .str("variant", variant.name())
        .str("configure", &configure_args(variant).join(" "));
    key_series(&mut key, &patches)?;
    if variant == GlibcVariant::Xsc {
        let (list, _) = tests_list(cfg)?;
        key.str("tests", &sha256_bytes(list.as_bytes()));
        let counters = cfg.guest_tests_dir.join(COUNTERS_SOURCE);
        if counters.is_file() {
            key.str(
                "tests/counters",
                &sha256_file(&counters).map_err(|source| BuildError::Input {
                    what: "counters preload",
                    path: counters.clone(),
                    source,
                })?,
            );
        }
    }
    for (label, line) in toolchain {
        key.str(label, line);
    }
    key.str("kernel-headers", kernel_headers);
    Ok(StageKey::from(&key))
}

/// The key of the current inputs (runs `gcc/ld/make --version` and asks dpkg for the
/// kernel headers' version).
pub(crate) async fn glibc_key(cfg: &Config, variant: GlibcVariant) -> Result<GlibcKey, BuildError> {
    let toolchain = tools::toolchain_identity().await?;
    let headers = process::run(&source::dpkg_version_cmd("linux-libc-dev"), None)
        .await
        .map(|c| format!("linux-libc-dev {}", c.stdout.trim()))
        .unwrap_or_else(|_| "linux-libc-dev unknown".into());
    key_from_parts(cfg, variant, &toolchain, &headers)
}

/// Turns a cache entry back into artifacts.
pub(crate) fn artifacts_from_entry(
    entry: &Entry,
    built_now: bool,
    log: Option<PathBuf>,
) -> Result<GlibcArtifacts, BuildError> {
    let need = |name: &str| need_artifact(entry, name);
    Ok(GlibcArtifacts {
        sysroot: need("sysroot")?,
        runtime: need("runtime")?,
        tests: need("tests")?,
        key: entry.info.key.clone(),
        entry_dir: entry.dir.clone(),
        log: log.or_else(|| entry.artifact("build.log")),
        built_now,
        facts: entry.info.facts.clone(),
    })
}

/// Builds the XSC glibc, or returns the cached one when the inputs are unchanged. Nothing
/// here stops on Ctrl-C: `build glibc` stops the whole future itself; [`ensure_glibc`]
/// takes a cancel signal.
pub(crate) async fn build_glibc(
    cfg: &Config,
    opts: &GlibcBuildOptions,
    progress: Progress<'_>,
) -> Result<GlibcArtifacts, BuildError> {
    // `build glibc` names a missing tool (gawk) even when glibc is cached.
    tools::check_tools(GLIBC_TOOLS)?;
    let policy = Policy {
        force: opts.force,
        no_build: false,
    };
    ensure_glibc(cfg, opts, policy, &Cancel::never(), progress).await
}

/// The glibc for `opts` through the stage framework: cached, built, or (`--no-build`)
/// [`BuildError::NotCached`]; a cancelled build stores nothing.
pub(crate) async fn ensure_glibc(
    cfg: &Config,
    opts: &GlibcBuildOptions,
    policy: Policy,
    cancel: &Cancel,
    progress: Progress<'_>,
) -> Result<GlibcArtifacts, BuildError> {
    let cache = stage_cache(cfg);
    let key = glibc_key(cfg, opts.variant).await?;
    // One heavy build per machine (2 cores): the same lock as the kernel stage.
    let stage = Stage {
        name: STAGE,
        key: &key,
        lock: HEAVY_LOCK,
        log_dir: Some(stage::logs_dir(cfg)),
    };
    let got = stage::ensure(
        &cache,
        stage,
        policy,
        cancel,
        progress,
        |job: Job<'_>| async move {
            // Here, not before the key: a cached glibc needs no build tools.
            tools::check_tools(GLIBC_TOOLS)?;
            let log = job.log.expect("the glibc stage asks for a log");
            let started = Instant::now();
            let work = stage_cache(cfg).work_dir(STAGE, opts.variant.name());
            let built = build_in(cfg, opts, &work, &log, job.progress).await?;
            store(cfg, &job.staged, &built, started, &log, job.progress).await
        },
    )
    .await?;
    artifacts_from_entry(&got.entry, got.built_now, got.log)
}

/// What one build in the kept tree produced.
#[derive(Debug)]
struct Built {
    src: PathBuf,
    build: PathBuf,
    incremental: bool,
    jobs: usize,
    variant: GlibcVariant,
}

/// What decides the configure step: its arguments and the files of the source tree it
/// reads that the series changes. Unchanged → the kept build directory is reused as is.
fn configure_fingerprint(src: &Path, variant: GlibcVariant) -> String {
    let mut key = KeyBuilder::new();
    key.str("recipe", GLIBC_RECIPE)
        .str("args", &configure_args(variant).join(" "));
    for rel in ["configure", "configure.ac", "config.h.in", "config.make.in"] {
        key.str(rel, &sha256_file(&src.join(rel)).unwrap_or_default());
    }
    key.finish()
}

async fn build_in(
    cfg: &Config,
    opts: &GlibcBuildOptions,
    work: &Path,
    log: &Path,
    progress: Progress<'_>,
) -> Result<Built, BuildError> {
    let src = work.join("src");
    let build = work.join("build");
    let snapshot = work.join("patches");
    let state_file = work.join("state.json");
    let source_id = format!("sha256:{}", cfg.glibc.sha256);
    let state = WorkState::read(&state_file);
    let mut incremental = state.source == source_id && src.join("configure").is_file();
    let mut mtimes = MtimeSnapshot::default();
    if incremental {
        progress(&BuildEvent::Step {
            name: "reuse work tree".into(),
            detail: work.display().to_string(),
        });
        mtimes = MtimeSnapshot::take(&src, &quilt::touched_files(&src));
        if let Err(e) = quilt::pop_all(&src, &snapshot, log).await {
            progress(&BuildEvent::Step {
                name: "kept tree unusable, unpacking fresh".into(),
                detail: e.to_string(),
            });
            incremental = false;
        }
    }
    if !incremental {
        if work.exists() {
            std::fs::remove_dir_all(work).map_err(BuildError::io("failed to remove", work))?;
        }
        std::fs::create_dir_all(work).map_err(BuildError::io("failed to create", work))?;
        progress(&BuildEvent::Step {
            name: "resolve source".into(),
            detail: format!("{} {}", cfg.glibc.package, cfg.glibc.version),
        });
        let downloads = stage_cache(cfg).downloads();
        let resolved = source::resolve_pinned(cfg, &cfg.glibc, "glibc", &downloads, log).await?;
        let source::Resolved::Tarball(tarball) = resolved else {
            unreachable!("a pinned source is a tarball")
        };
        progress(&BuildEvent::Step {
            name: "unpack".into(),
            detail: src.display().to_string(),
        });
        std::fs::create_dir_all(&src).map_err(BuildError::io("failed to create", &src))?;
        process::run(&source::untar_cmd(&tarball, &src, 1), Some(log))
            .await
            .map_err(BuildError::step("unpack glibc source"))?;
        if !src.join("configure").is_file() || !src.join("libc-abis").is_file() {
            return Err(BuildError::BadSource {
                source_arg: tarball.display().to_string(),
                reason: "unpacked, but it is not a glibc tree (no configure, libc-abis)".into(),
            });
        }
        WorkState {
            source: source_id.clone(),
            config: String::new(),
        }
        .write(&state_file)?;
    }
    snapshot_series(&patches_dir(cfg), &snapshot)?;
    progress(&BuildEvent::Step {
        name: "quilt push -a --fuzz=0".into(),
        detail: String::new(),
    });
    quilt::push_all(&src, &snapshot, log).await?;
    if incremental {
        mtimes.restore(&src);
    }

    let fingerprint = configure_fingerprint(&src, opts.variant);
    let state = WorkState::read(&state_file);
    if incremental && state.config == fingerprint && build.join("config.make").is_file() {
        progress(&BuildEvent::Step {
            name: "configure: inputs unchanged, keeping the build directory".into(),
            detail: String::new(),
        });
    } else {
        if build.exists() {
            std::fs::remove_dir_all(&build).map_err(BuildError::io("failed to remove", &build))?;
        }
        std::fs::create_dir_all(&build).map_err(BuildError::io("failed to create", &build))?;
        progress(&BuildEvent::Step {
            name: "configure".into(),
            detail: configure_args(opts.variant).join(" "),
        });
        process::run(&configure_cmd(&src, &build, opts.variant), Some(log))
            .await
            .map_err(BuildError::step("glibc configure"))?;
        WorkState {
            source: source_id,
            config: fingerprint,
        }
        .write(&state_file)?;
    }
    let jobs = make::BuildEnv::new(0, opts.jobs).jobs;
    let step = format!("make -j{jobs}");
    progress(&BuildEvent::Step {
        name: step.clone(),
        detail: if incremental {
            "incremental".into()
        } else {
            "fresh tree".into()
        },
    });
    make::run_following(&make_cmd(&build, jobs), log, &step, progress).await?;
    check_abi(&src, &build, jobs, log, progress).await?;
    Ok(Built {
        src,
        build,
        incremental,
        jobs,
        variant: opts.variant,
    })
}

/// Runs [`check_abi_cmd`] afresh (a result left by an earlier build must not count) and
/// fails the build unless glibc says PASS.
async fn check_abi(
    src: &Path,
    build: &Path,
    jobs: usize,
    log: &Path,
    progress: Progress<'_>,
) -> Result<(), BuildError> {
    let step = "check-abi (libc)".to_string();
    progress(&BuildEvent::Step {
        name: step.clone(),
        detail: String::new(),
    });
    let (result, diff) = (build.join(CHECK_ABI_LIBC.0), build.join(CHECK_ABI_LIBC.1));
    for f in [&result, &diff] {
        if f.exists() {
            std::fs::remove_file(f).map_err(BuildError::io("failed to remove", f))?;
        }
    }
    make::run_following(&check_abi_cmd(src, build, jobs), log, &step, progress).await?;
    let verdict = std::fs::read_to_string(&result).map_err(|_| BuildError::MissingArtifact {
        path: result.clone(),
        log: Some(log.to_path_buf()),
    })?;
    if check_abi_passed(&verdict) {
        return Ok(());
    }
    Err(BuildError::AbiMismatch {
        diff: std::fs::read_to_string(&diff).unwrap_or_default(),
        log: log.to_path_buf(),
    })
}

/// glibc's `evaluate-test.sh` verdict: `PASS: elf/check-abi-libc` on the first line.
pub(crate) fn check_abi_passed(result: &str) -> bool {
    result
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("PASS:"))
}

/// Installs into the staging entry `staged` and adds headers, runtime and tests (the
/// framework seals it).
async fn store(
    cfg: &Config,
    staged: &Path,
    built: &Built,
    started: Instant,
    log: &Path,
    progress: Progress<'_>,
) -> Result<Product, BuildError> {
    let sysroot = staged.join("sysroot");
    let step = "make install".to_string();
    progress(&BuildEvent::Step {
        name: step.clone(),
        detail: sysroot.display().to_string(),
    });
    make::run_following(
        &install_cmd(&built.build, built.jobs, &sysroot),
        log,
        &step,
        progress,
    )
    .await?;
    for (from, to) in KERNEL_HEADERS {
        copy_dir(Path::new(from), &sysroot.join(to), log).await?;
    }

    progress(&BuildEvent::Step {
        name: "runtime (stripped)".into(),
        detail: String::new(),
    });
    let runtime = staged.join("runtime");
    // slibdir holds only the shared objects (no symlinks since 2.34).
    copy_dir(&sysroot.join(SLIBDIR), &runtime.join(SLIBDIR), log).await?;
    let libs = regular_files(&runtime.join(SLIBDIR))?;
    if !runtime.join(SLIBDIR).join("ld-linux-x86-64.so.2").exists() {
        return Err(BuildError::MissingArtifact {
            path: sysroot.join(SLIBDIR).join("ld-linux-x86-64.so.2"),
            log: Some(log.to_path_buf()),
        });
    }
    process::run(&strip_cmd(&libs), Some(log))
        .await
        .map_err(BuildError::step("strip runtime"))?;
    // pthread_cancel and C++ exceptions dlopen the unwinder: without it a cancelled thread
    // aborts ("libgcc_s.so.1 must be installed"). It comes with the compiler, not glibc.
    let gcc_s = process::run(&libgcc_s_cmd(), None)
        .await
        .map_err(BuildError::step("gcc -print-file-name=libgcc_s.so.1"))?;
    let gcc_s = PathBuf::from(gcc_s.stdout.trim());
    std::fs::copy(&gcc_s, runtime.join(SLIBDIR).join("libgcc_s.so.1"))
        .map_err(BuildError::io("failed to copy", &gcc_s))?;

    // glibc's own tests run against the XSC configuration only.
    let (list_text, tests) = match built.variant {
        GlibcVariant::Xsc => tests_list(cfg)?,
        GlibcVariant::Disabled => (String::new(), Vec::new()),
    };
    let tests_dir = staged.join("tests");
    std::fs::create_dir_all(&tests_dir).map_err(BuildError::io("failed to create", &tests_dir))?;
    if !tests.is_empty() {
        let step = format!("glibc tests ({})", tests.len());
        progress(&BuildEvent::Step {
            name: step.clone(),
            detail: String::new(),
        });
        for cmd in tests_cmd(&built.src, &built.build, built.jobs, &tests) {
            make::run_following(&cmd, log, &step, progress).await?;
        }
        let mut bins = Vec::new();
        for t in &tests {
            let from = built.build.join(&t.subdir).join(&t.name);
            let to = tests_dir.join(&t.subdir).join(&t.name);
            if !from.is_file() {
                return Err(BuildError::MissingArtifact {
                    path: from,
                    log: Some(log.to_path_buf()),
                });
            }
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(BuildError::io("failed to create", parent))?;
            }
            std::fs::copy(&from, &to).map_err(BuildError::io("failed to copy", &from))?;
            bins.push(to);
        }
        process::run(&strip_cmd(&bins), Some(log))
            .await
            .map_err(BuildError::step("strip glibc tests"))?;
        // Verbatim: the words after each test are the guest runner's (+FILE, @FLAG, args).
        std::fs::write(tests_dir.join("list"), &list_text)
            .map_err(BuildError::io("failed to write", &tests_dir))?;
        let counters = cfg.guest_tests_dir.join(COUNTERS_SOURCE);
        if counters.is_file() {
            process::run(
                &preload_cmd(&counters, &tests_dir.join("xsc_counters.so")),
                Some(log),
            )
            .await
            .map_err(BuildError::step("gcc -shared xsc_counters.c"))?;
        }
    }
    std::fs::copy(log, staged.join("build.log")).map_err(BuildError::io("failed to copy", log))?;

    let facts = [
        ("version", cfg.glibc.version.clone()),
        ("variant", built.variant.name().to_string()),
        ("configure", configure_args(built.variant).join(" ")),
        (
            "build_seconds",
            format!("{:.1}", started.elapsed().as_secs_f64()),
        ),
        ("incremental", built.incremental.to_string()),
        ("jobs", built.jobs.to_string()),
        ("tests", tests.len().to_string()),
        ("log", log.display().to_string()),
        ("work_tree", built.src.display().to_string()),
    ];
    Ok(Product::new(
        ["sysroot", "runtime", "tests", "build.log"],
        facts,
    ))
}

/// The regular files directly in `dir` (the shared objects to strip; symlinks skipped).
fn regular_files(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut files = Vec::new();
    for rel in crate::sys::cache::walk_sorted(dir).map_err(BuildError::io("failed to list", dir))? {
        let path = dir.join(&rel);
        let meta =
            std::fs::symlink_metadata(&path).map_err(BuildError::io("failed to stat", &path))?;
        if meta.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_is_out_of_tree_with_xsc_and_hardening() {
        let cmd = configure_cmd(
            Path::new("/w/src"),
            Path::new("/w/build"),
            GlibcVariant::Xsc,
        );
        let s = cmd.to_string();
        assert!(
            s.contains("/w/src/configure --prefix=/usr --enable-xsc"),
            "{s}"
        );
        assert!(
            s.contains("--enable-stack-protector=strong --enable-bind-now"),
            "{s}"
        );
        assert_eq!(cmd.cwd.as_deref(), Some(Path::new("/w/build")));
        let off = configure_args(GlibcVariant::Disabled).join(" ");
        assert!(!off.contains("--enable-xsc"), "{off}");
        assert!(off.contains("--enable-bind-now"), "{off}");
        assert_eq!(
            GlibcVariant::parse("disabled"),
            Some(GlibcVariant::Disabled)
        );
        assert_eq!(GlibcVariant::parse("plain"), None);
    }

    #[test]
    fn check_abi_checks_libc_through_the_elf_makefile() {
        let s = check_abi_cmd(Path::new("/s"), Path::new("/b"), 2).to_string();
        assert_eq!(
            s,
            "LC_ALL=C MAKEFLAGS='' MFLAGS='' MAKELEVEL='' make -r -j2 -C /s/elf objdir=/b subdir=elf ..=../ /b/elf/check-abi-libc.out"
        );
        assert!(check_abi_passed(
            "PASS: elf/check-abi-libc\noriginal exit status 0\n"
        ));
        assert!(!check_abi_passed(
            "FAIL: elf/check-abi-libc\noriginal exit status 1\n"
        ));
        assert!(!check_abi_passed(""));
    }

    #[test]
    fn install_goes_to_destdir() {
        let s = install_cmd(Path::new("/w/build"), 2, Path::new("/c/sysroot")).to_string();
        assert!(
            s.ends_with("MAKELEVEL='' make -j2 install DESTDIR=/c/sysroot)"),
            "{s}"
        );
    }

    #[test]
    fn tests_are_built_per_subdirectory_through_its_makefile() {
        let tests = parse_tests_list(
            "# why\nio/tst-openat   # openat\nposix/tst-preadwrite64 +Makefile @routed-only\nio/tst-fcntl\n\n",
        )
        .unwrap();
        assert_eq!(tests.len(), 3);
        let cmds = tests_cmd(Path::new("/s"), Path::new("/b"), 2, &tests);
        let shown: Vec<String> = cmds.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "LC_ALL=C MAKEFLAGS='' MFLAGS='' MAKELEVEL='' make -r -j2 -C /s/io objdir=/b subdir=io ..=../ /b/io/tst-openat /b/io/tst-fcntl",
                "LC_ALL=C MAKEFLAGS='' MFLAGS='' MAKELEVEL='' make -r -j2 -C /s/posix objdir=/b subdir=posix ..=../ /b/posix/tst-preadwrite64",
            ]
        );
    }

    #[test]
    fn a_bad_tests_list_line_names_its_line() {
        for bad in [
            "tst-openat",
            "../x/y",
            "io/",
            "io/a/b",
            "io/../../etc",
            "+Makefile",
        ] {
            let err = parse_tests_list(&format!("io/tst-openat\n{bad}\n")).unwrap_err();
            assert!(err.starts_with("line 2:"), "{bad}: {err}");
        }
    }

    #[test]
    fn strip_keeps_symbols_drops_debug() {
        let s = strip_cmd(&[PathBuf::from("/r/libc.so.6")]).to_string();
        assert_eq!(s, "strip --strip-debug /r/libc.so.6");
    }

    #[test]
    fn the_key_follows_patches_tests_and_toolchain() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::stages::source::tests::test_config(dir.path());
        let patches = dir.path().join("patches/glibc");
        std::fs::create_dir_all(&patches).unwrap();
        std::fs::create_dir_all(&cfg.guest_tests_dir).unwrap();
        std::fs::write(patches.join("series"), "0001-a.patch\n").unwrap();
        std::fs::write(patches.join("0001-a.patch"), "one").unwrap();
        let tc = [("toolchain/gcc", "gcc 12".to_string())];
        let x = GlibcVariant::Xsc;
        let a = key_from_parts(&cfg, x, &tc, "h1").unwrap();
        assert_eq!(a, key_from_parts(&cfg, x, &tc, "h1").unwrap());
        let off = key_from_parts(&cfg, GlibcVariant::Disabled, &tc, "h1").unwrap();
        assert_ne!(a.key, off.key);
        std::fs::write(patches.join("0001-a.patch"), "two").unwrap();
        let b = key_from_parts(&cfg, x, &tc, "h1").unwrap();
        assert_ne!(a.key, b.key);
        std::fs::write(cfg.guest_tests_dir.join(TESTS_LIST), "io/tst-openat\n").unwrap();
        let c = key_from_parts(&cfg, x, &tc, "h1").unwrap();
        assert_ne!(b.key, c.key);
        assert_ne!(c.key, key_from_parts(&cfg, x, &tc, "h2").unwrap().key);
        let gcc13 = [("toolchain/gcc", "gcc 13".to_string())];
        assert_ne!(c.key, key_from_parts(&cfg, x, &gcc13, "h1").unwrap().key);
        // A file in the directory that the series does not list is not an input.
        std::fs::write(patches.join("notes.txt"), "x").unwrap();
        assert_eq!(c.key, key_from_parts(&cfg, x, &tc, "h1").unwrap().key);
    }
}
