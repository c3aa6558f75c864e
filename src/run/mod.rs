//! Runs scenarios: prepares each image (fetching or building through the stage cache),
//! assembles the initramfs, boots the machine, and turns what the observers saw into a
//! [`ScenarioResult`]. Scenarios run in parallel up to `jobs`; results come back in
//! scenario order, so a parallel run reports exactly what a serial one would.

pub(crate) mod gate;
pub(crate) mod phases;
pub(crate) mod prepare;
pub(crate) mod verdict_record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use regex::Regex;
use tokio::sync::{Semaphore, watch};

use crate::boot::accel::{self, AccelChoice, AccelRequest};
use crate::boot::machine::{self, MachineOutcome, RunSpec};
use crate::boot::qemu_args::{Boot, DEFAULT_APPEND, MachineSpec, Ovmf};
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::guest::programs::{self, ExtraTree, GuestProgram, INIT_SOURCE};
use crate::input::config::Config;
use crate::input::scenario::{Clock, Firmware, ImageSource, Media, RunUntil, Scenario};
use crate::observe::judge::{self, Observed, Rules};
use crate::observe::verdict::{RunEnd, ScenarioResult};
use crate::run::prepare::{BuiltImage, Image};
use crate::stages::{GlibcArtifacts, GlibcVariant};
use crate::sys::cache::Cache;

/// Where the XSC glibc runtime (`lib64/ld-linux-x86-64.so.2`, `lib64/libc.so.6`, …) is in
/// the guest of a scenario with `libc = "xsc"` programs.
pub(crate) const GUEST_GLIBC_DIR: &str = "/xsc/glibc";

/// Where glibc's own tests (`<subdir>/<test>`, `list`) are in that guest.
pub(crate) const GUEST_GLIBC_TESTS_DIR: &str = "/xsc/glibc-tests";

/// The QEMU binary every scenario boots in (found on PATH).
pub(crate) const QEMU: &str = "qemu-system-x86_64";

/// Checks what every run needs before anything is built or booted, so a missing QEMU is
/// one error naming its package (exit 4), not a build followed by a failed boot per
/// scenario.
pub(crate) fn preflight() -> Result<(), Error> {
    if crate::sys::process::which(QEMU).is_none() {
        return Err(Error::MissingTool {
            tool: QEMU.into(),
            package: "qemu-system-x86",
            why: "every scenario boots in QEMU".into(),
        });
    }
    Ok(())
}

/// Host-side margin on top of the guest's own per-program clocks.
const BACKSTOP_MARGIN: Duration = Duration::from_secs(60);

/// How much slower than host time the icount clock may run here: one guest second is
/// 10^9 guest instructions, and a whole bench run (QEMU start, boot, bench: 0.95 guest
/// seconds) took 9.6–11 host seconds on an idle 2-core host, 18 with the other core busy
/// and 45 at load average 11 (docs/bench.md), so 60 covers the worst seen with room. The
/// host's boot, silence and backstop clocks are stretched by this factor; the guest's own
/// per-program clocks stay guest time and so become instruction budgets (`timeout =
/// "20s"` = 2·10^10 instructions), the same on a loaded host as on an idle one.
pub(crate) const ICOUNT_HOST_PER_GUEST: u32 = 60;

/// A clock written in guest time, as the host must wait for it under icount.
pub(crate) fn icount_host_time(guest: Duration) -> Duration {
    guest * ICOUNT_HOST_PER_GUEST
}

/// The `-cpu` model a run uses (the JUnit property `cpu.model`).
pub(crate) fn cpu_model(clock: Clock, accel: crate::boot::qemu_args::Accel) -> &'static str {
    match (clock, accel) {
        (Clock::Icount, _) => crate::boot::qemu_args::ICOUNT_CPU,
        (Clock::Host, crate::boot::qemu_args::Accel::Kvm) => "host",
        (Clock::Host, crate::boot::qemu_args::Accel::Tcg) => "max",
    }
}

/// Settings for a whole `test` run.
#[derive(Clone, Debug)]
pub(crate) struct RunOptions {
    /// Run id (directory name under `out/runs/`).
    pub run_id: String,
    /// Accelerator request (CLI over scenario over config).
    pub accel: Option<AccelRequest>,
    /// Clock overrides from the command line.
    pub boot_timeout: Option<Duration>,
    /// Per-program clock override.
    pub test_timeout: Option<Duration>,
    /// Silence clock override.
    pub silence_timeout: Option<Duration>,
    /// Parallel scenarios.
    pub jobs: usize,
    /// Refuse to build or fetch missing images.
    pub no_build: bool,
    /// Flips on Ctrl-C: a stage build in `prepare` stops (and cleans up) too.
    pub cancel: Option<watch::Receiver<bool>>,
}

/// A prepared image: what QEMU boots and what the report says about it.
#[derive(Clone, Debug)]
pub(crate) struct PreparedImage {
    /// Boot medium.
    pub boot: Boot,
    /// Kernel used for the KVM probe (any bootable kernel).
    pub probe_kernel: Option<PathBuf>,
    /// Properties for the report (kernel release, image hash …).
    pub properties: Vec<(String, String)>,
    /// What of it this project built (what a release of it ships).
    pub built: Vec<BuiltImage>,
}

/// Builds or fetches the kernel of a scenario. Kept apart so the kernel stage can plug in.
pub(crate) async fn kernel_for(
    cfg: &Config,
    cache: &Cache,
    scenario: &Scenario,
    no_build: bool,
    cancel: Option<watch::Receiver<bool>>,
) -> Result<Image, Error> {
    match &scenario.image {
        ImageSource::StockKernel => {
            if no_build && cache.latest("stock-kernel").is_none() {
                return Err(Error::NotBuilt {
                    what: "the stock kernel".into(),
                    hint: "xsc-release test (without --no-build)".into(),
                });
            }
            let (k, fetched) = crate::stages::stock_kernel::ensure(cache).await?;
            if fetched {
                tracing::info!(package = %k.package, version = %k.version, "fetched the stock kernel into the cache");
            }
            Ok(Image {
                path: k.vmlinuz,
                properties: vec![
                    ("kernel.release".into(), k.release),
                    (
                        "kernel.package".into(),
                        format!("{} {}", k.package, k.version),
                    ),
                ],
                built: None,
            })
        }
        ImageSource::XscKernel { profile } => {
            let profile = profile
                .clone()
                .unwrap_or_else(|| cfg.kernel_profile.clone());
            crate::run::prepare::xsc_kernel(cfg, &profile, no_build, cancel).await
        }
        ImageSource::KernelFile(path) => {
            if !path.is_file() {
                return Err(Error::InputMissing {
                    what: "kernel",
                    path: path.clone(),
                });
            }
            let release = kernel_release(path).unwrap_or_else(|| "unknown".into());
            Ok(Image {
                path: path.clone(),
                properties: vec![("kernel.release".into(), release)],
                built: None,
            })
        }
        ImageSource::Iso(_) | ImageSource::DebianIso | ImageSource::ElIso(_) => Err(Error::Usage(
            "an ISO scenario has no kernel to boot directly".into(),
        )),
    }
}

/// Reads the version string an x86 bzImage carries in its setup header (`kernel_version`
/// at 0x20E points to a NUL-terminated string at +0x200).
pub(crate) fn kernel_release(bzimage: &Path) -> Option<String> {
    let bytes = std::fs::read(bzimage).ok()?;
    if bytes.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let off = usize::from(u16::from_le_bytes([*bytes.get(0x20E)?, *bytes.get(0x20F)?])) + 0x200;
    let s = bytes.get(off..)?;
    let end = s.iter().position(|&b| b == 0)?;
    let full = String::from_utf8_lossy(&s[..end]).to_string();
    full.split_whitespace().next().map(str::to_string)
}

/// Prepares the image of a scenario: kernel + assembled initramfs, or an ISO.
pub(crate) async fn prepare(
    cfg: &Config,
    cache: &Cache,
    scenario: &Scenario,
    opts: &RunOptions,
) -> Result<PreparedImage, Error> {
    let iso = match &scenario.image {
        ImageSource::Iso(iso) => {
            // A named ISO is an input like a kernel file: `scenarios check` and `test --iso`
            // refuse a missing one earlier; this catches one deleted since.
            if !iso.is_file() {
                return Err(Error::InputMissing {
                    what: "iso",
                    path: iso.clone(),
                });
            }
            Some(Image {
                path: iso.clone(),
                properties: vec![],
                built: None,
            })
        }
        ImageSource::DebianIso => {
            Some(crate::run::prepare::debian_iso(cfg, opts.no_build, opts.cancel.clone()).await?)
        }
        ImageSource::ElIso(d) => {
            Some(crate::run::prepare::el_iso(cfg, *d, opts.no_build, opts.cancel.clone()).await?)
        }
        // A multi-phase scenario's kernel boots with its first phase's programs (the
        // verdict key of a gate); each phase assembles its own initramfs when it runs.
        _ if !scenario.phases.is_empty() => {
            let first = scenario.phase_scenario(0);
            return Box::pin(prepare(cfg, cache, &first, opts)).await;
        }
        _ => None,
    };
    if let Some(Image {
        path: iso,
        mut properties,
        built,
    }) = iso
    {
        properties.push((
            "iso.media".into(),
            match scenario.media {
                Media::Cdrom => "cdrom",
                Media::Disk => "disk",
            }
            .into(),
        ));
        return Ok(PreparedImage {
            boot: iso_boot(&iso, scenario.media),
            probe_kernel: None,
            properties,
            built: built.into_iter().collect(),
        });
    }
    let Image {
        path: kernel,
        mut properties,
        built,
    } = kernel_for(cfg, cache, scenario, opts.no_build, opts.cancel.clone()).await?;
    let mut built: Vec<BuiltImage> = built.into_iter().collect();
    let initrd = match &scenario.initrd {
        Some(p) if !p.is_file() => {
            return Err(Error::InputMissing {
                what: "initrd",
                path: p.clone(),
            });
        }
        Some(p) => p.clone(),
        None => {
            let (path, glibc_keys) = build_initramfs(cfg, cache, scenario, opts).await?;
            built.push(BuiltImage::TestInitramfs { path: path.clone() });
            properties.extend(glibc_keys);
            path
        }
    };
    // The image hashes go into JUnit, so a merged CI report says what each shard booted.
    properties.push((
        "kernel.sha256".into(),
        crate::sys::cache::sha256_file(&kernel).map_err(Error::io(&kernel))?,
    ));
    properties.push((
        "initrd.sha256".into(),
        crate::sys::cache::sha256_file(&initrd).map_err(Error::io(&initrd))?,
    ));
    let append = if scenario.append.is_empty() {
        DEFAULT_APPEND.to_string()
    } else {
        format!("{DEFAULT_APPEND} {}", scenario.append)
    };
    Ok(PreparedImage {
        boot: Boot::Kernel {
            kernel: kernel.clone(),
            initrd: Some(initrd),
            append,
        },
        probe_kernel: Some(kernel),
        properties,
        built,
    })
}

/// How an ISO is attached: CD-ROM (El Torito) or virtio disk (isohybrid MBR/GPT).
pub(crate) fn iso_boot(iso: &Path, media: Media) -> Boot {
    match media {
        Media::Cdrom => Boot::Cdrom(iso.to_path_buf()),
        Media::Disk => Boot::Disk(iso.to_path_buf()),
    }
}

/// The guest-tests directory of the repository.
pub(crate) fn guest_tests_dir(cfg: &Config) -> PathBuf {
    cfg.guest_tests_dir.clone()
}

/// The scenario's test initramfs, and the cache keys of the glibc builds its programs link
/// against (`glibc.key` for the XSC variant, `glibc.<variant>.key` for each): a bench
/// baseline records what it was measured on.
async fn build_initramfs(
    cfg: &Config,
    cache: &Cache,
    scenario: &Scenario,
    opts: &RunOptions,
) -> Result<(PathBuf, Vec<(String, String)>), Error> {
    let gt = guest_tests_dir(cfg);
    let init = programs::compile(cache, &gt, Path::new(INIT_SOURCE), None).await?;
    // Each glibc variant the programs link against, fetched (or built) once.
    let mut glibcs: Vec<(GlibcVariant, GlibcArtifacts)> = Vec::new();
    for variant in scenario.programs.iter().filter_map(|p| p.libc.variant()) {
        if !glibcs.iter().any(|(v, _)| *v == variant) {
            let a =
                crate::run::prepare::xsc_glibc(cfg, variant, opts.no_build, opts.cancel.clone())
                    .await?;
            glibcs.push((variant, a));
        }
    }
    let glibc_of =
        |variant: GlibcVariant| glibcs.iter().find(|(v, _)| *v == variant).map(|(_, a)| a);
    let mut progs = Vec::new();
    for p in &scenario.programs {
        let timeout = program_clock(cfg, scenario, p, opts);
        match &p.source {
            Some(src) => {
                let sysroot = p
                    .libc
                    .variant()
                    .and_then(glibc_of)
                    .map(GlibcArtifacts::program_sysroot);
                let path = programs::compile(cache, &gt, src, sysroot.as_ref()).await?;
                progs.push(GuestProgram::Binary {
                    name: p.name.clone(),
                    path,
                    args: p.args.clone(),
                    timeout,
                });
            }
            None => {
                let mut argv = p.command.clone();
                argv.extend(p.args.iter().cloned());
                progs.push(GuestProgram::Command {
                    name: p.name.clone(),
                    argv,
                    timeout,
                });
            }
        }
    }
    let busybox = scenario.busybox.then(|| PathBuf::from("/bin/busybox"));
    if let Some(bb) = &busybox {
        if !bb.is_file() {
            return Err(Error::MissingTool {
                tool: bb.display().to_string(),
                package: "busybox-static",
                why: format!("scenario {} asks for busybox", scenario.name),
            });
        }
    }
    // The XSC glibc's runtime and glibc's own tests, for dynamically linked programs that
    // run with it (`ld.so --library-path`) — see guest-tests/README.md for the layout.
    let trees: Vec<ExtraTree> = glibc_of(GlibcVariant::Xsc)
        .into_iter()
        .flat_map(|g| {
            [
                ExtraTree {
                    guest: GUEST_GLIBC_DIR.into(),
                    host: g.runtime.clone(),
                },
                ExtraTree {
                    guest: GUEST_GLIBC_TESTS_DIR.into(),
                    host: g.tests.clone(),
                },
            ]
        })
        .collect();
    let mut glibc_keys: Vec<(String, String)> = glibcs
        .iter()
        .map(|(v, a)| (format!("glibc.{}.key", v.name()), a.key.clone()))
        .collect();
    if let Some(g) = glibc_of(GlibcVariant::Xsc) {
        glibc_keys.push(("glibc.key".into(), g.key.clone()));
    }
    let epoch =
        crate::stages::stage::epoch_of(cfg, &initramfs_epoch_inputs(cfg, !glibcs.is_empty())).await;
    let initramfs = programs::initramfs(
        cache,
        &init,
        &progs,
        &trees,
        busybox.as_deref(),
        // cpio's newc mtime is 32 bits; a negative epoch is 1970.
        u32::try_from(epoch.secs.max(0)).unwrap_or(u32::MAX),
    )
    .await?;
    Ok((initramfs, glibc_keys))
}

/// What a test initramfs's member times are derived from (`stage::epoch_of`): the guest
/// programs' sources, and the glibc series when the XSC glibc goes in.
pub(crate) fn initramfs_epoch_inputs(cfg: &Config, with_glibc: bool) -> Vec<PathBuf> {
    let mut inputs = vec![
        std::path::absolute(&cfg.guest_tests_dir).unwrap_or_else(|_| cfg.guest_tests_dir.clone()),
    ];
    if with_glibc {
        inputs.push(crate::stages::glibc::patches_dir(cfg));
    }
    inputs
}

/// A guest program's clock: command line, then the program, then the scenario, then xsc.toml.
fn program_clock(
    cfg: &Config,
    scenario: &Scenario,
    p: &crate::input::scenario::Program,
    opts: &RunOptions,
) -> Duration {
    opts.test_timeout
        .or(p.timeout)
        .or(scenario.timeouts.test)
        .unwrap_or(cfg.test.test_timeout)
}

/// The OVMF code image and the VARS template installed by Debian's `ovmf` package.
pub(crate) fn ovmf_files() -> Option<(PathBuf, PathBuf)> {
    [
        (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        (
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_VARS.fd",
        ),
    ]
    .iter()
    .map(|(c, v)| (PathBuf::from(c), PathBuf::from(v)))
    .find(|(c, v)| c.is_file() && v.is_file())
}

/// Runs every scenario (preparing its image first) and returns their results in input
/// order. `on_done` is called as each finishes (live summary).
pub(crate) async fn run_all(
    cfg: &Config,
    scenarios: &[Scenario],
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
    on_done: impl Fn(&ScenarioResult) + Send + Sync + 'static,
) -> Vec<Result<ScenarioResult, Error>> {
    let jobs = scenarios.iter().map(|s| (s.clone(), None)).collect();
    run_each(cfg, jobs, opts, cancel, on_done).await
}

/// [`run_all`] for scenarios whose images are prepared already (the gates prepare theirs
/// once, for the verdict key, and boot that same image, also on a rerun).
pub(crate) async fn run_prepared(
    cfg: &Config,
    prepared: &[(Scenario, PreparedImage)],
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
    on_done: impl Fn(&ScenarioResult) + Send + Sync + 'static,
) -> Vec<Result<ScenarioResult, Error>> {
    let jobs = prepared
        .iter()
        .map(|(s, image)| (s.clone(), Some(image.clone())))
        .collect();
    run_each(cfg, jobs, opts, cancel, on_done).await
}

/// Runs `jobs` up to `opts.jobs` at a time; an image not given is prepared in the job.
async fn run_each(
    cfg: &Config,
    jobs: Vec<(Scenario, Option<PreparedImage>)>,
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
    on_done: impl Fn(&ScenarioResult) + Send + Sync + 'static,
) -> Vec<Result<ScenarioResult, Error>> {
    let cache = Cache::new(&cfg.cache_dir);
    let on_done = Arc::new(on_done);
    let sem = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let accel_choice: Arc<tokio::sync::OnceCell<AccelChoice>> = Arc::default();
    let names: Vec<String> = jobs.iter().map(|(s, _)| s.name.clone()).collect();
    let mut handles = Vec::new();
    for (scenario, image) in jobs {
        let (cfg, cache, opts, cancel) = (cfg.clone(), cache.clone(), opts.clone(), cancel.clone());
        let (sem, on_done, accel_choice) = (sem.clone(), on_done.clone(), accel_choice.clone());
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.expect("semaphore is never closed");
            if *cancel.borrow() {
                return Err(Error::Interrupted(format!("scenario {}", scenario.name)));
            }
            let result = match not_applicable(&cfg, &scenario) {
                Some(why) => Ok(ScenarioResult::not_applicable(
                    &scenario.name,
                    &why,
                    cfg.run_dir(&opts.run_id).join(&scenario.name),
                )),
                None => run_one(&cfg, &cache, &scenario, image, &opts, cancel, &accel_choice).await,
            };
            if let Ok(r) = &result {
                on_done(r);
            }
            result
        }));
    }
    let mut out = Vec::new();
    for (h, name) in handles.into_iter().zip(names) {
        out.push(
            h.await
                .unwrap_or_else(|e| Err(Error::task(format!("scenario {name}"))(e))),
        );
    }
    out
}

async fn run_one(
    cfg: &Config,
    cache: &Cache,
    scenario: &Scenario,
    image: Option<PreparedImage>,
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
    accel_choice: &tokio::sync::OnceCell<AccelChoice>,
) -> Result<ScenarioResult, Error> {
    if !scenario.phases.is_empty() {
        let ctx = Ctx {
            cfg,
            cache,
            opts,
            accel_choice,
        };
        return phases::run(&ctx, scenario, image, cancel).await;
    }
    let started = SystemTime::now();
    let image = match image {
        Some(image) => image,
        None => prepare(cfg, cache, scenario, opts).await?,
    };
    let state_dir = cfg.run_dir(&opts.run_id).join(&scenario.name);
    std::fs::create_dir_all(&state_dir).map_err(Error::io(&state_dir))?;
    let vars = uefi_vars(scenario, &state_dir)?;
    let ctx = Ctx {
        cfg,
        cache,
        opts,
        accel_choice,
    };
    let setup = MachineSetup {
        state_dir,
        ovmf: vars,
        disk: None,
        progress: None,
        ktap_required: true,
    };
    boot_one(&ctx, scenario, &image, setup, cancel, started).await
}

/// What every machine run of a `test` shares.
pub(crate) struct Ctx<'a> {
    /// The config.
    pub cfg: &'a Config,
    /// The cache.
    pub cache: &'a Cache,
    /// The run's options.
    pub opts: &'a RunOptions,
    /// The accelerator, probed once per run.
    pub accel_choice: &'a tokio::sync::OnceCell<AccelChoice>,
}

/// What one machine run adds to its scenario and image.
pub(crate) struct MachineSetup {
    /// Where its argv, logs and sockets go.
    pub state_dir: PathBuf,
    /// OVMF with its VARS file (a multi-phase scenario's phases share one).
    pub ovmf: Option<Ovmf>,
    /// A multi-phase scenario's disk.
    pub disk: Option<PathBuf>,
    /// Console lines to show as progress.
    pub progress: Option<crate::boot::progress::ConsoleProgress>,
    /// False for a phase that only has to power off.
    pub ktap_required: bool,
}

/// OVMF with a fresh copy of the VARS template in `state_dir` for a UEFI scenario (OVMF
/// writes to it; an installed system's boot entry lives there).
pub(crate) fn uefi_vars(scenario: &Scenario, state_dir: &Path) -> Result<Option<Ovmf>, Error> {
    match scenario.firmware {
        Firmware::Bios => Ok(None),
        Firmware::Uefi => {
            let (code, vars_template) = ovmf_files().ok_or_else(|| Error::MissingTool {
                tool: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
                package: "ovmf",
                why: format!("scenario {} boots with UEFI", scenario.name),
            })?;
            let vars = state_dir.join("OVMF_VARS.fd");
            std::fs::copy(&vars_template, &vars).map_err(Error::io(&vars))?;
            Ok(Some(Ovmf { code, vars }))
        }
    }
}

/// Boots one machine for `scenario` (a single-phase scenario or one phase) and judges it.
pub(crate) async fn boot_one(
    ctx: &Ctx<'_>,
    scenario: &Scenario,
    image: &PreparedImage,
    setup: MachineSetup,
    cancel: watch::Receiver<bool>,
    started: SystemTime,
) -> Result<ScenarioResult, Error> {
    let Ctx {
        cfg,
        cache,
        opts,
        accel_choice,
    } = *ctx;
    let request = opts
        .accel
        .or_else(|| scenario.accel.as_deref().and_then(AccelRequest::parse))
        .or_else(|| AccelRequest::parse(&cfg.test.accel))
        .unwrap_or(AccelRequest::Auto);
    let qemu = PathBuf::from(QEMU);
    let kvm = accel::KvmHost::new(&qemu);
    let host_dir = cache.host_dir();
    let icount = scenario.clock == Clock::Icount;
    if icount && request == AccelRequest::Kvm {
        return Err(Error::Usage(format!(
            "scenario {} runs on the icount clock, which needs TCG; drop --accel kvm",
            scenario.name
        )));
    }
    let choice = match (request, &image.probe_kernel) {
        // Instruction counting exists only in TCG: no probe, no KVM.
        _ if icount => AccelChoice {
            accel: "tcg".into(),
            reason: "clock = \"icount\" counts instructions, which only TCG can".into(),
            probe: None,
        },
        (AccelRequest::Auto, Some(k)) => accel_choice
            .get_or_init(|| accel::resolve(request, &kvm, k, &host_dir))
            .await
            .clone(),
        // Without a kernel to probe with, auto cannot prove KVM works: TCG is the safe side.
        (AccelRequest::Auto, None) => AccelChoice {
            accel: "tcg".into(),
            reason: "auto: no kernel to probe KVM with; using tcg".into(),
            probe: None,
        },
        (r, _) => accel::resolve(r, &kvm, Path::new(""), &host_dir).await,
    };
    let a = choice.accel();
    // Host-side clocks of an icount run are stretched by the instruction clock's worst
    // pace on a host (guest-side clocks stay guest time: instruction budgets).
    let host = |d: Duration| if icount { icount_host_time(d) } else { d };
    let boot_timeout = host(
        opts.boot_timeout
            .or(scenario.timeouts.boot)
            .unwrap_or_else(|| accel::scale(cfg.test.boot_timeout, a)),
    );
    let silence_timeout = host(
        opts.silence_timeout
            .or(scenario.timeouts.silence)
            .unwrap_or_else(|| accel::scale(cfg.test.silence_timeout, a)),
    );
    let backstop = host(if scenario.programs.is_empty() {
        opts.test_timeout
            .or(scenario.timeouts.test)
            .unwrap_or(cfg.test.test_timeout)
    } else {
        scenario
            .programs
            .iter()
            .map(|p| program_clock(cfg, scenario, p, opts))
            .sum::<Duration>()
            + BACKSTOP_MARGIN
    });
    let MachineSetup {
        state_dir,
        ovmf,
        disk,
        progress,
        ktap_required,
    } = setup;
    let spec = RunSpec {
        machine: MachineSpec {
            qemu,
            accel: a,
            memory_mb: scenario.memory_mb,
            cpus: scenario.cpus,
            boot: image.boot.clone(),
            ovmf,
            fw_cfg: scenario.fw_cfg.clone(),
            clock: scenario.clock,
            disk,
        },
        state_dir: state_dir.clone(),
        ready: Regex::new(&scenario.ready)
            .map_err(|e| Error::Usage(format!("invalid ready regex: {e}")))?,
        boot_timeout,
        silence_timeout,
        test_backstop: backstop,
        crash: scenario.crash.clone(),
        stop_at_ready: scenario.until == RunUntil::Ready,
        progress,
    };
    tracing::info!(scenario = %scenario.name, accel = %choice.accel, reason = %choice.reason, "booting");
    let outcome = machine::run(&spec, cancel).await;
    let mut properties = vec![
        (
            "qemu.version".to_string(),
            outcome
                .qemu_version
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
        ("accel".to_string(), choice.accel.clone()),
        ("clock".to_string(), scenario.clock.as_str().to_string()),
        (
            "cpu.model".to_string(),
            cpu_model(scenario.clock, a).to_string(),
        ),
        ("accel.reason".to_string(), choice.reason.clone()),
        ("accel.probe".to_string(), choice.probe_name().to_string()),
        (
            "scenario.file".to_string(),
            scenario.file.display().to_string(),
        ),
        ("scenario.sha256".to_string(), scenario.hash.clone()),
        (
            "timeout.boot".to_string(),
            humantime::format_duration(boot_timeout).to_string(),
        ),
        (
            "timeout.silence".to_string(),
            humantime::format_duration(silence_timeout).to_string(),
        ),
        (
            "timeout.backstop".to_string(),
            humantime::format_duration(backstop).to_string(),
        ),
    ];
    properties.extend(image.properties.iter().cloned());
    let figures = record_bench(scenario, &properties, &state_dir)?;
    properties.extend(figures);
    Ok(judge(
        scenario,
        outcome,
        started,
        properties,
        state_dir,
        ktap_required,
    ))
}

/// Name of the per-run figure record in a scenario's state directory.
pub(crate) const BENCH_JSON: &str = "bench.json";

/// Collects the `# bench:` figures of the run's console into `bench.json` (when there
/// are any) and returns them as JUnit properties.
fn record_bench(
    scenario: &Scenario,
    properties: &[(String, String)],
    state_dir: &Path,
) -> Result<Vec<(String, String)>, Error> {
    let log = state_dir.join("serial.log");
    let console = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let rec = crate::observe::bench::BenchRun::new(&scenario.name, properties, &console);
    for p in &rec.problems {
        tracing::warn!(scenario = %scenario.name, problem = %p, "bench figure");
    }
    if rec.figures.is_empty() && rec.problems.is_empty() {
        return Ok(vec![]);
    }
    let path = state_dir.join(BENCH_JSON);
    let text = serde_json::to_string_pretty(&rec).expect("a BenchRun serialises");
    std::fs::write(&path, text + "\n").map_err(Error::io(&path))?;
    Ok(rec.properties())
}

/// Turns what a machine run observed into the scenario's result, by the one set of
/// judging rules ([`judge::judge`]).
pub(crate) fn judge(
    scenario: &Scenario,
    outcome: MachineOutcome,
    started: SystemTime,
    properties: Vec<(String, String)>,
    state_dir: PathBuf,
    ktap_required: bool,
) -> ScenarioResult {
    for p in &outcome.ktap.problems {
        tracing::warn!(scenario = %scenario.name, problem = %p, "ktap");
    }
    let verdict = judge::judge(
        Observed {
            end: &outcome.end,
            ready: outcome.ready_after.is_some(),
            ktap: outcome.ktap,
            crashes: &outcome.crashes,
        },
        Rules {
            until: scenario.until,
            gate: scenario.gate.as_ref(),
            ktap_required,
        },
    );
    ScenarioResult {
        name: scenario.name.clone(),
        started,
        duration: outcome.duration,
        boot: verdict.boot,
        cases: verdict.cases,
        end: outcome.end,
        crashes: outcome.crashes,
        properties,
        console_tail: outcome.console_tail,
        serial_log: state_dir.join("serial.log"),
        screendump: outcome.screendump,
        state_dir,
        qemu_cmdline: outcome.cmdline,
        flaky_first_attempt: None,
    }
}

/// Why `scenario` cannot run here, if so: an EL install gate whose distribution's base
/// ISO is not configured. Such a scenario is reported as not run with this reason (not a
/// pass, not a failure); once the ISO is configured it runs like any other.
pub(crate) fn not_applicable(cfg: &Config, scenario: &Scenario) -> Option<String> {
    match scenario.image {
        ImageSource::ElIso(d) => crate::run::prepare::el_not_applicable(cfg, d),
        _ => None,
    }
}

/// The exit code of one scenario's result (a not-applicable one changes nothing).
pub(crate) fn exit_code_of(r: &ScenarioResult) -> ExitCode {
    if r.is_not_applicable() {
        ExitCode::Success
    } else if matches!(r.end, RunEnd::Interrupted) {
        ExitCode::Interrupted
    } else if r.is_harness_failure() {
        ExitCode::Harness
    } else if r.passed() {
        ExitCode::Success
    } else {
        ExitCode::ProductFailed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(end: RunEnd, ready: bool) -> MachineOutcome {
        MachineOutcome {
            end,
            ready_after: ready.then(|| Duration::from_secs(3)),
            ktap: Default::default(),
            crashes: vec![],
            console_tail: String::new(),
            qemu_version: None,
            screendump: None,
            cmdline: String::new(),
            duration: Duration::from_secs(4),
        }
    }

    fn login_scenario(until: RunUntil) -> Scenario {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut s = crate::input::scenario::load(
            &root.join("scenarios/debian-login.toml"),
            &root.join("guest-tests"),
        )
        .unwrap();
        s.until = until;
        s
    }

    #[test]
    fn stopping_at_the_ready_marker_passes_only_when_asked_for() {
        let judge_it = |s: &Scenario, end, ready| {
            judge(
                s,
                outcome(end, ready),
                SystemTime::now(),
                vec![],
                "/tmp/x".into(),
                true,
            )
        };
        let asked = login_scenario(RunUntil::Ready);
        let r = judge_it(&asked, RunEnd::StoppedAtReady, true);
        assert!(r.passed(), "{:?}", r.cases);
        assert_eq!(exit_code_of(&r), ExitCode::Success);
        // No ready marker: the boot case fails on its clock as always.
        let r = judge_it(&asked, RunEnd::BootTimeout(Duration::from_secs(300)), false);
        assert!(!r.passed());
        assert_eq!(exit_code_of(&r), ExitCode::ProductFailed);
        // A scenario that runs until power-off must not be cut short at ready.
        let r = judge_it(
            &login_scenario(RunUntil::Poweroff),
            RunEnd::StoppedAtReady,
            true,
        );
        assert!(!r.passed());
    }

    #[test]
    fn a_guest_whose_ktap_plans_nothing_is_not_green() {
        let mut p = crate::observe::ktap::KtapParser::new();
        p.feed("KTAP version 1");
        p.feed("1..0");
        let mut o = outcome(RunEnd::PoweredOff, true);
        o.ktap = p.finish(None);
        let s = login_scenario(RunUntil::Poweroff);
        let r = judge(&s, o, SystemTime::now(), vec![], "/tmp/x".into(), true);
        assert!(!r.passed(), "{:?}", r.cases);
        assert_eq!(exit_code_of(&r), ExitCode::ProductFailed);
    }

    #[test]
    fn iso_media_pick_the_boot_device() {
        let iso = Path::new("/i/x.iso");
        assert_eq!(iso_boot(iso, Media::Cdrom), Boot::Cdrom(iso.into()));
        assert_eq!(iso_boot(iso, Media::Disk), Boot::Disk(iso.into()));
    }

    #[test]
    fn reads_the_release_from_a_bzimage_header() {
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x0300u16.to_le_bytes());
        img[0x500..0x500 + 29].copy_from_slice(b"6.1.192-xsc (xsc@build) #1 SM");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bzImage");
        std::fs::write(&f, &img).unwrap();
        assert_eq!(kernel_release(&f).as_deref(), Some("6.1.192-xsc"));
        std::fs::write(&f, b"not a kernel").unwrap();
        assert_eq!(kernel_release(&f), None);
    }
}
