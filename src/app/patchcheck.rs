//! `xsc-release patchcheck`: every prefix of one quilt series applies with fuzz 0 and
//! builds (through the stage cache, in the shared kept work tree, so each prefix is an
//! incremental build), and with `--boot SCENARIO` passes that scenario; one JUnit case per
//! patch. Replaces benches/patchcheck.sh (`make patchcheck`).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use tokio::sync::watch;

use crate::app::bisect::SeriesArg;
use crate::app::cli::AccelArg;
use crate::bisect::prefix::{self, Series};
use crate::bisect::step;
use crate::bisect::verdict::Verdict;
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::report::patchcheck::{self as report, PatchCase};
use crate::run::RunOptions;

/// `patchcheck` arguments.
#[derive(Args, Debug)]
pub struct PatchcheckArgs {
    /// Which series.
    #[arg(long, value_enum, default_value = "kernel")]
    pub series: SeriesArg,
    /// Also boot this scenario on every prefix (a skip by PROBE is fine, a failure is not).
    #[arg(long, value_name = "SCENARIO")]
    pub boot: Option<String>,
    /// Start at this patch (its prefix), e.g. 0003: earlier prefixes are not built.
    #[arg(long, value_name = "PATCH")]
    pub from: Option<String>,
    /// Write one JUnit case per patch here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Accelerator for the boots.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
}

/// Runs `patchcheck`.
pub(crate) async fn run(
    cfg: &Config,
    args: PatchcheckArgs,
    cancel: watch::Receiver<bool>,
) -> Result<ExitCode, Error> {
    let series = args.series.series();
    let names = prefix::patches(cfg, series)?;
    let from = match &args.from {
        Some(p) => prefix::prefix_ending_with(&names, p)
            .map_err(|e| Error::Usage(format!("--from: {e}")))?,
        None => 1,
    };
    if args.boot.is_some() {
        crate::run::preflight()?;
    }
    let id = crate::app::run_id();
    let base = cfg.out_dir.join("patchcheck").join(&id);
    println!(
        "patchcheck {}: {} patches; prefix roots in {}",
        series.name(),
        names.len(),
        base.display()
    );
    let mut code = ExitCode::Success;
    let mut cases = Vec::new();
    for k in from.max(1)..=names.len() {
        let patch = names[k - 1].clone();
        let started = Instant::now();
        let root = prefix::write_root(cfg, series, &names, k, &base.join(format!("prefix-{k}")))?;
        let built = build(&root, series, cancel.clone()).await;
        if *cancel.borrow() {
            println!("patch {k}/{}: {patch}: interrupted", names.len());
            code = code.worst(ExitCode::Interrupted);
            break;
        }
        let mut failure = None;
        let mut line = String::new();
        match built {
            Err(e) if e.exit_code() == ExitCode::Harness => return Err(e),
            Err(e) => {
                code = code.worst(e.exit_code());
                line = format!("does not build: {e}");
                failure = Some(("build".to_string(), crate::error::chain(&e)));
            }
            Ok(()) => {
                line.push_str(&format!(
                    "applies, builds ({:.1}s)",
                    started.elapsed().as_secs_f64()
                ));
                if let Some(scenario) = &args.boot {
                    let opts = RunOptions {
                        run_id: format!("patchcheck-{id}/prefix-{k}"),
                        accel: args.accel.map(crate::app::accel_request),
                        boot_timeout: None,
                        test_timeout: None,
                        silence_timeout: None,
                        jobs: 1,
                        no_build: false,
                        cancel: Some(cancel.clone()),
                    };
                    match step::run(&root, scenario, step::Skips::Allowed, &opts, cancel.clone())
                        .await
                    {
                        Err(stop) => {
                            println!("patch {k}/{}: {patch}: stopped: {}", names.len(), stop.why);
                            code = code.worst(stop.abort.0);
                            break;
                        }
                        Ok(r) => match r.verdict {
                            Verdict::Good => line.push_str(&format!(", boots {scenario}: good")),
                            Verdict::Fails => {
                                code = code.worst(ExitCode::ProductFailed);
                                let msg = format!("{scenario} fails: {}", r.failing.join(", "));
                                line.push_str(&format!(", {msg}"));
                                failure = Some(("boot".into(), msg));
                            }
                            Verdict::Skip(why) => {
                                code = code.worst(ExitCode::BuildFailed);
                                line.push_str(&format!(", {scenario}: {why}"));
                                failure = Some(("boot".into(), why));
                            }
                        },
                    }
                }
            }
        }
        println!("patch {k}/{}: {patch}: {line}", names.len());
        cases.push(PatchCase {
            patch,
            duration: started.elapsed(),
            failure,
        });
    }
    if let Some(path) = &args.junit {
        report::write(path, series.name(), &cases).map_err(Error::io(path))?;
        println!("junit: {}", path.display());
    }
    let bad = cases.iter().filter(|c| c.failure.is_some()).count();
    println!(
        "patchcheck {}: {} of {} prefixes checked, {bad} failed",
        series.name(),
        cases.len(),
        names.len()
    );
    Ok(code)
}

/// Builds the prefix's image: the kernel of the config's profile, or the XSC glibc.
async fn build(root: &Config, series: Series, cancel: watch::Receiver<bool>) -> Result<(), Error> {
    match series {
        Series::Kernel => {
            crate::run::prepare::xsc_kernel(root, &root.kernel_profile, false, Some(cancel))
                .await
                .map(drop)
        }
        Series::Glibc => crate::run::prepare::xsc_glibc(
            root,
            crate::stages::GlibcVariant::Xsc,
            false,
            Some(cancel),
        )
        .await
        .map(drop),
    }
}
