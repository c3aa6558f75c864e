//! Runs a parsed command line and decides the exit code. Results (verdicts) go to stdout
//! and JUnit; errors come back to `main`, which prints them once.

// src/app is where output happens (clippy.toml forbids printing everywhere else).
#![allow(clippy::disallowed_macros)]

pub(crate) mod bench;
pub(crate) mod bisect;
pub(crate) mod build;
pub(crate) mod candidate;
pub(crate) mod cli;
pub(crate) mod completions;
pub(crate) mod doctor;
pub(crate) mod json;
pub(crate) mod packages;
pub(crate) mod patchcheck;
pub(crate) mod progress;
pub(crate) mod release;
pub(crate) mod report;
pub(crate) mod stage_artifact;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::app::cli::{
    AccelArg, CacheCommand, Cli, Command, FirmwareArg, ReportCommand, ScenariosCommand, TestArgs,
};
use crate::boot::accel::AccelRequest;
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::input::durations::Durations;
use crate::input::scenario::{self, Firmware, ImageSource, Program, Scenario};
use crate::input::shard::Shard;
use crate::observe::verdict::ScenarioResult;
use crate::report::{junit, summary};
use crate::run::{self, RunOptions};
use crate::sys::cache::Cache;

/// Runs `cli`; `cancel` flips when SIGINT/SIGTERM arrives.
pub async fn run(cli: Cli, cancel: watch::Receiver<bool>) -> Result<ExitCode, Error> {
    let load_cfg = || {
        let cfg = Config::discover(cli.config.as_deref())?;
        crate::app::progress::install(&cfg.cache_dir);
        Ok::<_, Error>(cfg)
    };
    match cli.command {
        Command::Test(args) => test(&load_cfg()?, *args, cancel).await,
        Command::Report {
            what: ReportCommand::Ktap { logs, junit },
        } => crate::app::report::report_ktap(&logs, junit.as_deref()),
        Command::Report {
            what:
                ReportCommand::Merge {
                    files,
                    output,
                    expect_shards,
                },
        } => crate::app::report::report_merge(&files, &output, expect_shards),
        Command::Report {
            what: ReportCommand::Durations { files, output },
        } => {
            let out = match output {
                Some(o) => o,
                None => Durations::path_in(&load_cfg()?.scenarios_dir),
            };
            crate::app::report::report_durations(&files, &out)
        }
        Command::Scenarios { what } => scenarios(&load_cfg()?, what),
        Command::Doctor { kernel } => {
            Ok(crate::app::doctor::run(&load_cfg()?, kernel.as_deref()).await)
        }
        Command::Cache { what } => cache(&load_cfg()?, what).await,
        Command::Bisect(args) => crate::app::bisect::run(&load_cfg()?, *args, cancel).await,
        Command::Patchcheck(args) => crate::app::patchcheck::run(&load_cfg()?, args, cancel).await,
        Command::Build {
            what: crate::app::cli::BuildCommand::Kernel(args),
        } => {
            let cfg = load_cfg()?;
            let code =
                until_cancelled(crate::app::build::run_build_kernel(&cfg, &args), cancel).await?;
            match &args.stage_artifact {
                Some(dir) if code == ExitCode::Success => {
                    let profile = args.profile.as_deref().unwrap_or(&cfg.kernel_profile);
                    crate::app::stage_artifact::export(&cfg, "kernel", profile, dir).await
                }
                _ => Ok(code),
            }
        }
        Command::Build {
            what: crate::app::cli::BuildCommand::Glibc(args),
        } => {
            let cfg = load_cfg()?;
            let code =
                until_cancelled(crate::app::build::run_build_glibc(&cfg, &args), cancel).await?;
            match &args.stage_artifact {
                Some(dir) if code == ExitCode::Success => {
                    crate::app::stage_artifact::export(&cfg, "glibc", &args.variant, dir).await
                }
                _ => Ok(code),
            }
        }
        Command::Build {
            what: crate::app::cli::BuildCommand::Debian(args),
        } => {
            let cfg = load_cfg()?;
            let code = crate::app::build::run_build_debian(&cfg, &args, cancel).await?;
            match &args.stage_artifact {
                Some(dir) if code == ExitCode::Success => {
                    crate::app::stage_artifact::export(&cfg, "debian-iso", "-", dir).await
                }
                _ => Ok(code),
            }
        }
        Command::Build {
            what: crate::app::cli::BuildCommand::Packages(args),
        } => Ok(crate::app::packages::run_build_packages(&load_cfg()?, &args, cancel).await?),
        Command::Build {
            what: crate::app::cli::BuildCommand::Alma(args),
        } => Ok(crate::app::packages::run_build_el(
            &load_cfg()?,
            crate::stages::el_install_iso::Distro::Alma,
            &args,
            cancel,
        )
        .await?),
        Command::Build {
            what: crate::app::cli::BuildCommand::Rocky(args),
        } => Ok(crate::app::packages::run_build_el(
            &load_cfg()?,
            crate::stages::el_install_iso::Distro::Rocky,
            &args,
            cancel,
        )
        .await?),
        Command::Patches(crate::app::build::PatchesArgs {
            command: crate::app::build::PatchesCommand::Edit(args),
        }) => Ok(crate::app::build::run_patches_edit(&load_cfg()?, &args).await?),
        Command::Status { json } => Ok(crate::app::build::run_status(&load_cfg()?, json).await?),
        Command::Completions { shell } => Ok(crate::app::completions::print(shell)),
        Command::Candidate(args) => crate::app::candidate::run(&load_cfg()?, args, cancel).await,
        Command::Bench(args) => crate::app::bench::run(&load_cfg()?, args, cancel).await,
        Command::Keygen(args) => Ok(crate::app::release::keygen(args).await?),
        Command::Verify(args) => Ok(crate::app::release::verify(args).await?),
        Command::Promote(args) => {
            let cfg = load_cfg()?;
            let candidates = cfg.publish_dir.join("candidates");
            Ok(crate::app::release::promote(
                args,
                &cfg.publish_dir,
                &candidates,
                &cfg.cache_dir,
                &cfg.publish,
                &cfg.out_dir,
            )
            .await?)
        }
        Command::Publish(args) => {
            let cfg = load_cfg()?;
            let scratch = cfg.out_dir.join(format!("publish-{}", std::process::id()));
            let code =
                crate::app::release::publish_to(&cfg.publish, &args.to, &args.dir, &scratch).await;
            let _ = std::fs::remove_dir_all(&scratch);
            Ok(code?)
        }
    }
}

/// Runs a build until it ends or the first SIGINT/SIGTERM. Then make's process group gets
/// SIGTERM, so make deletes the half-written target (the kept work tree must never hold a
/// truncated object newer than its source); the build's step fails, or is dropped after
/// a grace period, which kills what is left and releases the stage lock. `main` turns the
/// signal into exit 130/143. The next run reuses the kept tree and lets make finish.
async fn until_cancelled(
    build: impl std::future::Future<Output = Result<ExitCode, crate::stages::BuildError>>,
    mut cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<ExitCode, Error> {
    tokio::pin!(build);
    tokio::select! {
        r = &mut build => return Ok(r?),
        _ = cancel.wait_for(|c| *c) => {}
    }
    crate::sys::process::terminate_all_groups();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut build).await;
    Ok(ExitCode::Interrupted)
}

/// Resolves names or paths to scenario files; no names = every `scenarios/*.toml`.
pub(crate) fn scenario_files(cfg: &Config, names: &[String]) -> Result<Vec<PathBuf>, Error> {
    let dir = cfg.scenarios_dir.clone();
    if names.is_empty() {
        return scenario::files_in(&dir).map_err(Error::io(&dir));
    }
    names
        .iter()
        .map(|n| {
            let as_path = PathBuf::from(n);
            if n.ends_with(".toml") && as_path.is_file() {
                return Ok(as_path);
            }
            let in_dir = dir.join(format!("{n}.toml"));
            if in_dir.is_file() {
                Ok(in_dir)
            } else {
                Err(Error::Usage(format!(
                    "no scenario named {n:?} (looked for {})",
                    in_dir.display()
                )))
            }
        })
        .collect()
}

fn scenarios(cfg: &Config, what: ScenariosCommand) -> Result<ExitCode, Error> {
    let gt = run::guest_tests_dir(cfg);
    match what {
        ScenariosCommand::List { json } => {
            let all = scenario::load_all(&scenario_files(cfg, &[])?, &gt)?;
            if json {
                print!("{}", json::render(&json::scenario_list(&all)));
                return Ok(ExitCode::Success);
            }
            for s in all {
                println!("{:<20} {:<28} {}", s.name, s.tags.join(","), s.description);
            }
            Ok(ExitCode::Success)
        }
        ScenariosCommand::Check { files } => {
            let files = if files.is_empty() {
                scenario_files(cfg, &[])?
            } else {
                files
            };
            let all = scenario::load_all(&files, &gt)?;
            println!("{} scenario files are valid", all.len());
            Ok(ExitCode::Success)
        }
    }
}

async fn cache(cfg: &Config, what: CacheCommand) -> Result<ExitCode, Error> {
    let cache = Cache::new(&cfg.cache_dir);
    match what {
        CacheCommand::Path => println!("{}", cache.root().display()),
        CacheCommand::Gc { max_size } => {
            let mib = scenario::parse_mib(&max_size)
                .ok_or_else(|| Error::Usage(format!("invalid size {max_size:?} (e.g. 20G)")))?;
            let (n, bytes) = cache
                .gc(mib * 1024 * 1024)
                .map_err(Error::io(cache.root()))?;
            println!("removed {n} cache entries ({} MiB)", bytes / (1024 * 1024));
        }
        CacheCommand::Clean => {
            if cache.root().exists() {
                std::fs::remove_dir_all(cache.root()).map_err(Error::io(cache.root()))?;
            }
            println!("removed {}", cache.root().display());
        }
        CacheCommand::Import { dirs } => {
            return crate::app::stage_artifact::import(cfg, &dirs).await;
        }
    }
    Ok(ExitCode::Success)
}

/// Default parallelism: one VM per core, and no more than memory allows at ~1 GiB each.
pub(crate) fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemAvailable:")
                    .map(|v| v.trim().trim_end_matches(" kB").parse::<usize>().ok())
            })
        })
        .flatten()
        .map_or(1, |kb| kb / (1024 * 1024));
    cores.min(mem_gib.max(1)).max(1)
}

/// The scenario of `test --kernel K` / `test --iso I`: the parser's defaults plus what the
/// command line says. Files it names must exist (bad input, said before any run starts).
fn adhoc(cfg: &Config, args: &TestArgs) -> Result<Option<Scenario>, Error> {
    let named = [
        ("kernel", &args.kernel),
        ("initrd", &args.initrd),
        ("iso", &args.iso),
    ];
    for (what, path) in named {
        if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
            return Err(Error::InputMissing {
                what,
                path: path.clone(),
            });
        }
    }
    let image = match (&args.kernel, &args.iso) {
        (Some(k), _) => ImageSource::KernelFile(k.clone()),
        (None, Some(iso)) => ImageSource::Iso(iso.clone()),
        (None, None) => return Ok(None),
    };
    let mut s = Scenario::with_defaults(
        "adhoc",
        cfg.root.join("(command line)"),
        crate::sys::cache::sha256_bytes(format!("{args:?}").as_bytes()),
        image,
    );
    s.description = "ad-hoc run from the command line".into();
    if args.kernel.is_some() && args.initrd.is_none() {
        s.programs = vec![Program::from_source("sanity", "sanity.c")];
    }
    // A foreign initramfs does not print our marker; the kernel's own line ends boot.
    if let Some(ready) = &args.ready {
        s.ready.clone_from(ready);
    } else if args.initrd.is_some() {
        s.ready = r"Run \S+ as init process|xsc-init: ready".into();
    }
    s.initrd.clone_from(&args.initrd);
    s.append = args.append.clone().unwrap_or_default();
    s.firmware = match args.firmware {
        FirmwareArg::Bios => Firmware::Bios,
        FirmwareArg::Uefi => Firmware::Uefi,
    };
    Ok(Some(s))
}

/// The engine's accelerator request for a command-line choice.
pub(crate) fn accel_request(a: AccelArg) -> AccelRequest {
    match a {
        AccelArg::Auto => AccelRequest::Auto,
        AccelArg::Kvm => AccelRequest::Kvm,
        AccelArg::Tcg => AccelRequest::Tcg,
    }
}

/// A run id: UTC time plus pid, sortable and unique on a host.
pub(crate) fn run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{}-{}",
        humantime::format_rfc3339_seconds(
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        )
        .to_string()
        .replace(':', ""),
        std::process::id()
    )
}

async fn test(
    cfg: &Config,
    args: TestArgs,
    cancel: watch::Receiver<bool>,
) -> Result<ExitCode, Error> {
    if let Some(r) = &args.ready {
        regex::Regex::new(r).map_err(|e| Error::Usage(format!("--ready: invalid regex: {e}")))?;
    }
    let selected: Vec<Scenario> = match adhoc(cfg, &args)? {
        Some(s) => vec![s],
        None => {
            let files = scenario_files(cfg, &args.scenarios)?;
            let all = scenario::load_all(&files, &run::guest_tests_dir(cfg))?;
            all.into_iter()
                .filter(|s| args.tag.iter().all(|t| s.tags.contains(t)))
                .collect()
        }
    };
    if selected.is_empty() {
        return Err(Error::Usage("no scenario matches".into()));
    }
    let selected = match args.shard {
        Some(shard) => {
            let path = Durations::path_in(&cfg.scenarios_dir);
            let durations =
                Durations::load(&path).map_err(|e| Error::Usage(crate::error::chain(&e)))?;
            let items: Vec<(&str, f64)> = selected
                .iter()
                .map(|s| (s.name.as_str(), durations.of(&s.name)))
                .collect();
            let keep = shard.select(&items);
            human_line(
                args.json,
                &format!(
                    "shard {shard}: {} of {} selected scenario(s)",
                    keep.len(),
                    selected.len()
                ),
            );
            if keep.is_empty() {
                return empty_shard(cfg, &args, shard);
            }
            let mut keep = keep.into_iter().peekable();
            selected
                .into_iter()
                .enumerate()
                .filter_map(|(i, s)| keep.next_if_eq(&i).map(|_| s))
                .collect()
        }
        None => selected,
    };
    run::preflight()?;
    let opts = RunOptions {
        run_id: run_id(),
        accel: args.accel.map(accel_request),
        boot_timeout: args.boot_timeout,
        test_timeout: args.test_timeout,
        silence_timeout: args.silence_timeout,
        jobs: args.jobs.or(cfg.test.jobs).unwrap_or_else(default_jobs),
        no_build: args.no_build,
        cancel: Some(cancel.clone()),
    };
    let (results, code) = run_and_report(
        cfg,
        &selected,
        &opts,
        cancel,
        args.junit.as_deref(),
        args.shard,
        args.json,
    )
    .await?;
    if let (Some(dir), Some(id)) = (&args.verdicts, &args.run_id) {
        write_records(dir, id, &selected, &results, args.shard, args.json)?;
    }
    Ok(code)
}

/// Runs scenarios, prints the live summary, writes JUnit (also when interrupted), and
/// returns the results and the combined exit code. With `json` the summary lines go to
/// stderr and stdout gets the docs/json.md document at the end.
pub(crate) async fn run_and_report(
    cfg: &Config,
    scenarios: &[Scenario],
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
    junit_path: Option<&Path>,
    shard: Option<Shard>,
    json: bool,
) -> Result<(Vec<ScenarioResult>, ExitCode), Error> {
    let started = SystemTime::now();
    human_line(
        json,
        &format!(
            "run {}: {} scenario(s), state in {}",
            opts.run_id,
            scenarios.len(),
            cfg.run_dir(&opts.run_id).display()
        ),
    );
    let live = move |r: &ScenarioResult| human_line(json, &summary::scenario_line(r));
    let outcomes = run::run_all(cfg, scenarios, opts, cancel.clone(), live).await;
    let mut code = ExitCode::Success;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for o in outcomes {
        match o {
            Ok(r) => {
                code = code.worst(run::exit_code_of(&r));
                results.push(r);
            }
            Err(e) => {
                code = code.worst(e.exit_code());
                errors.push(e);
            }
        }
    }
    // Only not-applicable scenarios (EL gates without a base ISO) asked for: nothing was
    // tested, which is not green; with others beside them, they change nothing. A CI
    // shard is the partition's choice, not the user's: there they change nothing either.
    let only_na = !results.is_empty() && results.iter().all(|r| r.is_not_applicable());
    if errors.is_empty() && only_na && shard.is_none() {
        code = code.worst(ExitCode::BuildFailed);
    }
    let interrupted = *cancel.borrow();
    if interrupted {
        code = code.worst(ExitCode::Interrupted);
    }
    // Scenarios the interrupt kept from booting (not started, or stopped while their image
    // was building) are counted once, not each an error.
    let before = errors.len();
    errors.retain(|e| e.exit_code() != ExitCode::Interrupted);
    if before > errors.len() {
        human_line(
            json,
            &format!(
                "{} scenario(s) not run: interrupted before booting",
                before - errors.len()
            ),
        );
    }
    human_line(json, &summary::totals(&results));
    let mut junit_written = None;
    if let Some(path) = junit_path {
        let info = junit::RunInfo {
            name: report_name(shard),
            started,
            duration: started.elapsed().unwrap_or_default(),
            interrupted,
            properties: run_properties(shard),
        };
        if let Err(e) = junit::write(path, &results, &info) {
            eprintln!("{}", crate::error::chain(&e));
            code = code.worst(ExitCode::Harness);
        } else {
            junit_written = Some(path);
            human_line(json, &format!("junit: {}", path.display()));
        }
    }
    if json {
        let doc = json::test_run(&json::TestRun {
            run_id: &opts.run_id,
            run_dir: cfg.run_dir(&opts.run_id),
            code,
            interrupted,
            junit: junit_written,
            results: &results,
            errors: &errors,
        });
        print!("{}", json::render(&doc));
    }
    // A lone error with no results is the error itself, printed once by main.
    if results.is_empty() && !interrupted && errors.len() == 1 {
        return Err(errors.remove(0));
    }
    for e in &errors {
        eprintln!("{}", crate::error::chain(e));
    }
    Ok((results, code))
}

/// Writes a verdict record (run/verdict_record.rs) for every scenario that ran to an end
/// the user did not cut short, with its own one-suite JUnit.
pub(crate) fn write_records(
    dir: &Path,
    run_id: &str,
    scenarios: &[Scenario],
    results: &[ScenarioResult],
    shard: Option<Shard>,
    json: bool,
) -> Result<(), Error> {
    // A not-applicable gate ran nothing, so there is no console to carry: the candidate
    // decides applicability itself (run/gate.rs) and asks no record for it.
    for r in results.iter().filter(|r| {
        !matches!(r.end, crate::observe::verdict::RunEnd::Interrupted) && !r.is_not_applicable()
    }) {
        let Some(s) = scenarios.iter().find(|s| s.name == r.name) else {
            continue;
        };
        let info = junit::RunInfo {
            name: report_name(shard),
            started: r.started,
            duration: r.duration,
            interrupted: false,
            properties: run_properties(shard),
        };
        let out = crate::run::verdict_record::write(
            dir,
            run_id,
            s,
            r,
            crate::run::gate::harness_id(),
            |p| junit::write(p, std::slice::from_ref(r), &info).map_err(std::io::Error::other),
        )
        .map_err(Error::io(dir.join(&s.name)))?;
        human_line(json, &format!("verdict record: {}", out.display()));
    }
    Ok(())
}

/// A shard that the partition left empty: it selected nothing, which is not a failure
/// (N may exceed the scenario count). Its JUnit has no suite but names the shard, so
/// `report merge --expect-shards` still sees that it ran.
fn empty_shard(cfg: &Config, args: &TestArgs, shard: Shard) -> Result<ExitCode, Error> {
    human_line(args.json, &format!("shard {shard} selected nothing"));
    let mut junit_written = None;
    if let Some(path) = args.junit.as_deref() {
        let info = junit::RunInfo {
            name: report_name(Some(shard)),
            started: SystemTime::now(),
            duration: std::time::Duration::ZERO,
            interrupted: false,
            properties: run_properties(Some(shard)),
        };
        junit::write(path, &[], &info).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        human_line(args.json, &format!("junit: {}", path.display()));
        junit_written = Some(path);
    }
    if args.json {
        let id = run_id();
        let doc = json::test_run(&json::TestRun {
            run_id: &id,
            run_dir: cfg.run_dir(&id),
            code: ExitCode::Success,
            interrupted: false,
            junit: junit_written,
            results: &[],
            errors: &[],
        });
        print!("{}", json::render(&doc));
    }
    Ok(ExitCode::Success)
}

/// `<testsuites name>`: the shard is in it, so every shard's report (even an empty one)
/// says which shard it is.
pub(crate) fn report_name(shard: Option<Shard>) -> String {
    match shard {
        Some(s) => format!("{} shard {s}", junit::REPORT_NAME),
        None => junit::REPORT_NAME.into(),
    }
}

/// Properties every suite of this run carries: where and by what it ran, so a merged
/// report still tells shards, hosts and harness builds apart.
pub(crate) fn run_properties(shard: Option<Shard>) -> Vec<(String, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_string());
    let mut p = vec![
        ("host".to_string(), host),
        (
            "harness.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "harness.sha256".to_string(),
            crate::run::gate::harness_id().to_string(),
        ),
    ];
    if let Some(s) = shard {
        p.push(("shard".into(), s.to_string()));
    }
    p
}

/// A human summary line: stdout, or stderr under `--json` so stdout holds one document.
fn human_line(json: bool, line: &str) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}
