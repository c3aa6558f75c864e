//! `xsc-release bisect`: the command line and the printing of a bisect over the project's
//! git history (`--commits GOOD..BAD`) or over the prefixes of one quilt series
//! (`--series kernel|glibc`). The search is `bisect::search`; a step is `bisect::step`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{Args, ValueEnum};
use tokio::sync::watch;

use crate::app::cli::AccelArg;
use crate::bisect::prefix::{self, Series};
use crate::bisect::search::{Next, Outcome, Search};
use crate::bisect::step::{self, StepRun, Stopped};
use crate::bisect::{git, own_harness, verdict::Verdict};
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::run::RunOptions;
use crate::sys::process;

/// A quilt series on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SeriesArg {
    /// patches/kernel.
    Kernel,
    /// patches/glibc.
    Glibc,
}

impl SeriesArg {
    pub(crate) fn series(self) -> Series {
        match self {
            SeriesArg::Kernel => Series::Kernel,
            SeriesArg::Glibc => Series::Glibc,
        }
    }
}

/// `bisect` arguments.
#[derive(Args, Debug)]
pub struct BisectArgs {
    /// The scenario that turned red (a name in scenarios/).
    pub scenario: String,
    /// Bisect the git history: GOOD..BAD (GOOD must pass, BAD must fail).
    #[arg(long, value_name = "GOOD..BAD", conflicts_with = "series")]
    pub commits: Option<String>,
    /// Bisect the prefixes of one quilt series at the current checkout.
    #[arg(long, value_enum, required_unless_present = "commits")]
    pub series: Option<SeriesArg>,
    /// With --series: the last patch of the good prefix (default: the empty series).
    #[arg(long, value_name = "PATCH", requires = "series")]
    pub good: Option<String>,
    /// With --series: the last patch of the bad prefix (default: the whole series).
    #[arg(long, value_name = "PATCH", requires = "series")]
    pub bad: Option<String>,
    /// With --commits: judge each commit with its own harness (`cargo build` of that
    /// commit, cached by commit) instead of this one.
    #[arg(long, requires = "commits")]
    pub each_harness: bool,
    /// Write every step's scenario result as JUnit here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Accelerator for the boots.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
}

/// One step of the list being searched.
struct Item {
    /// Commit hash, or the prefix's last patch (`(empty series)` for none).
    label: String,
    /// Commit subject, or `prefix N/M`.
    subject: String,
}

/// Where steps come from.
enum Source {
    /// A worktree per commit (`hashes`, by step) under `base`, of the clone at `repo`;
    /// the config at `rel` in it. `own_harness`: each commit judged by its own harness.
    Commits {
        hashes: Vec<String>,
        repo: PathBuf,
        rel: PathBuf,
        base: PathBuf,
        own_harness: bool,
    },
    /// Prefix roots under `base`; `first` is the prefix length of item 0.
    Series {
        series: Series,
        names: Vec<String>,
        first: usize,
        base: PathBuf,
    },
}

/// Runs `bisect`.
pub(crate) async fn run(
    cfg: &Config,
    args: BisectArgs,
    cancel: watch::Receiver<bool>,
) -> Result<ExitCode, Error> {
    crate::run::preflight()?;
    if args.each_harness {
        crate::stages::tools::check_tools(crate::stages::harness::TOOLS)?;
    }
    let id = crate::app::run_id();
    let (items, source) = match (&args.commits, args.series) {
        (Some(range), _) => commits(cfg, range, &id, args.each_harness).await?,
        (None, Some(s)) => series(cfg, s.series(), &args, &id)?,
        (None, None) => return Err(Error::Usage("give --commits GOOD..BAD or --series".into())),
    };
    println!(
        "bisect {}: {} steps from {} (good) to {} (bad); state in {}",
        args.scenario,
        items.len(),
        items[0].label,
        items[items.len() - 1].label,
        cfg.run_dir(&id).display()
    );
    let mut search = Search::new(items.len());
    let mut runs: Vec<Option<StepRun>> = (0..items.len()).map(|_| None).collect();
    let mut n = 0;
    let outcome = loop {
        let i = match search.next() {
            Next::Test(i) => i,
            Next::Done(o) => break o,
        };
        n += 1;
        let opts = RunOptions {
            run_id: format!("{id}/step-{i}"),
            accel: args.accel.map(crate::app::accel_request),
            boot_timeout: None,
            test_timeout: None,
            silence_timeout: None,
            jobs: 1,
            no_build: false,
            cancel: Some(cancel.clone()),
        };
        let accel = args.accel.map(accel_word);
        let done = one_step(
            cfg,
            &source,
            i,
            &args.scenario,
            &opts,
            accel,
            cancel.clone(),
        )
        .await;
        let r = match done {
            Ok(r) => r,
            Err(stop) => {
                println!(
                    "step {n}: {} {}: stopped: {}",
                    items[i].label, items[i].subject, stop.why
                );
                println!(
                    "bisect aborted: the step says nothing about the product; nothing left behind"
                );
                cleanup(&source).await;
                return Ok(stop.abort.0);
            }
        };
        println!("{}", step_line(n, &items[i], &r));
        search.record(i, r.verdict.clone());
        runs[i] = Some(r);
    };
    cleanup(&source).await;
    if let Some(path) = &args.junit {
        let results: Vec<_> = runs
            .iter()
            .zip(&items)
            .filter_map(|(r, item)| {
                let mut res = r.as_ref()?.result.clone()?;
                res.name = format!("{}@{}", args.scenario, item.label);
                Some(res)
            })
            .collect();
        // --each-harness: the suites the commits' own harnesses wrote, named the same way.
        let own: Vec<_> = runs
            .iter()
            .zip(&items)
            .filter_map(|(r, item)| {
                let report = crate::report::merge::read(r.as_ref()?.junit.as_ref()?).ok()?;
                Some(report.test_suites.into_iter().map(|mut s| {
                    s.name = format!("{}@{}", args.scenario, item.label).into();
                    s
                }))
            })
            .flatten()
            .collect();
        let info = crate::report::junit::RunInfo {
            name: format!("xsc-release bisect {}", args.scenario),
            started: SystemTime::now(),
            duration: std::time::Duration::ZERO,
            interrupted: false,
            properties: crate::app::run_properties(None),
        };
        crate::report::junit::write_with_suites(path, &results, &info, own)
            .map_err(|e| Error::Usage(format!("junit {}: {e}", path.display())))?;
        println!("junit: {}", path.display());
    }
    let what = match source {
        Source::Commits { .. } => "commit",
        Source::Series { .. } => "patch",
    };
    match outcome {
        Outcome::FirstBad(i) => {
            println!("first bad {what}: {} {}", items[i].label, items[i].subject);
            if let Some(r) = &runs[i] {
                for f in &r.failing {
                    println!("  failing: {f}");
                }
                if let Some(d) = &r.run_dir {
                    println!("  run dir: {}", d.display());
                }
            }
            println!(
                "  reproduce: {}",
                reproduce(
                    cfg,
                    &source,
                    &id,
                    i,
                    &items[i],
                    runs[i].as_ref(),
                    &args.scenario
                )
            );
            Ok(ExitCode::Success)
        }
        Outcome::Range { first, last } => {
            println!(
                "the first bad {what} is one of these {} (the ones before {} could not be tested):",
                last - first + 1,
                items[last].label
            );
            for (item, r) in items[first..=last].iter().zip(&runs[first..=last]) {
                let v = match r.as_ref().map(|r| &r.verdict) {
                    Some(Verdict::Skip(why)) => format!("skip: {why}"),
                    Some(v) => v.word().to_string(),
                    None => "not tested".into(),
                };
                println!("  {} {}  ({v})", item.label, item.subject);
            }
            Ok(ExitCode::Success)
        }
        Outcome::GoodEndpoint(v) => Err(Error::Usage(format!(
            "the good endpoint {} does not pass ({}): give a GOOD that passes{}",
            items[0].label,
            describe(&v),
            match source {
                Source::Series {
                    series: Series::Kernel,
                    ..
                } => " (prefixes before 0003, the core driver, have no /dev/xsc: try --good 0003)",
                _ => "",
            }
        ))),
        Outcome::BadEndpoint(v) => Err(Error::Usage(format!(
            "the bad endpoint {} does not fail ({}): nothing to bisect",
            items[items.len() - 1].label,
            describe(&v)
        ))),
    }
}

fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Skip(why) => why.clone(),
        other => other.word().to_string(),
    }
}

/// `step 3: 1a2b3c4d sanity: … build 0.4s boot 12.1s fails: sanity.x (assertion)`; with
/// `--each-harness`: `harness 41.0s (built) test 30.2s`, the test time including the
/// images the commit's harness built.
fn step_line(n: usize, item: &Item, r: &StepRun) -> String {
    let verdict = match &r.verdict {
        Verdict::Skip(why) => format!("skip ({why})"),
        Verdict::Fails if !r.failing.is_empty() => format!("fails: {}", r.failing.join(", ")),
        v => v.word().to_string(),
    };
    let times = match &r.own_harness {
        Some(h) => format!(
            "harness {:.1}s ({})  test {:.1}s",
            r.build.as_secs_f64(),
            if h.built_now { "built" } else { "cached" },
            r.boot.as_secs_f64()
        ),
        None => format!(
            "build {:.1}s  boot {:.1}s",
            r.build.as_secs_f64(),
            r.boot.as_secs_f64()
        ),
    };
    format!(
        "step {n}: {} {}  {times}  {verdict}",
        short(&item.label),
        item.subject
    )
}

/// The `--accel` word a commit's own harness is given.
fn accel_word(a: AccelArg) -> &'static str {
    match a {
        AccelArg::Auto => "auto",
        AccelArg::Kvm => "kvm",
        AccelArg::Tcg => "tcg",
    }
}

fn short(label: &str) -> &str {
    if label.len() == 40 && label.bytes().all(|b| b.is_ascii_hexdigit()) {
        &label[..12]
    } else {
        label
    }
}

/// The command that runs the culprit's step again by hand.
fn reproduce(
    cfg: &Config,
    source: &Source,
    id: &str,
    i: usize,
    item: &Item,
    run: Option<&StepRun>,
    scenario: &str,
) -> String {
    match source {
        Source::Commits { repo, rel, .. } => {
            let dir = std::env::temp_dir().join(format!("xsc-repro-{}", short(&item.label)));
            // --each-harness: the commit's own binary, from the cache.
            let bin = run
                .and_then(|r| r.own_harness.as_ref())
                .map_or_else(|| "xsc-release".into(), |h| h.bin.display().to_string());
            format!(
                "git -C {} worktree add --detach {} {} && {bin} --config {} test {scenario}",
                repo.display(),
                dir.display(),
                item.label,
                dir.join(rel).display()
            )
        }
        Source::Series { first, .. } => format!(
            "xsc-release --config {} test {scenario}",
            cfg.out_dir
                .join("bisect")
                .join(id)
                .join(format!("prefix-{}", first + i))
                .join("xsc.toml")
                .display()
        ),
    }
}

/// The steps of `--commits GOOD..BAD`: GOOD, then every first-parent commit after it.
async fn commits(
    cfg: &Config,
    range: &str,
    id: &str,
    own_harness: bool,
) -> Result<(Vec<Item>, Source), Error> {
    let (good, bad) = range
        .split_once("..")
        .filter(|(g, b)| !g.is_empty() && !b.is_empty())
        .ok_or_else(|| Error::Usage(format!("--commits {range:?}: expected GOOD..BAD")))?;
    let git_out = |cmd: process::Cmd| async move {
        process::run(&cmd, None)
            .await
            .map(|c| c.stdout)
            .map_err(|e| Error::Usage(format!("{e}")))
    };
    let repo = PathBuf::from(git_out(git::toplevel(&cfg.root)).await?.trim());
    let rel = cfg
        .file
        .strip_prefix(&repo)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(crate::input::config::FILE_NAME));
    let first = git::parse_commits(&git_out(git::show(&repo, good)).await?);
    git_out(git::show(&repo, bad)).await?;
    if process::run(&git::is_ancestor(&repo, good, bad), None)
        .await
        .is_err()
    {
        return Err(Error::Usage(format!(
            "--commits: {good} is not an ancestor of {bad}"
        )));
    }
    let rest = git::parse_commits(&git_out(git::steps(&repo, good, bad)).await?);
    if rest.is_empty() {
        return Err(Error::Usage(format!(
            "--commits {range}: no commits between them"
        )));
    }
    let items: Vec<Item> = first
        .into_iter()
        .chain(rest)
        .map(|(label, subject)| Item { label, subject })
        .collect();
    let hashes = items.iter().map(|i| i.label.clone()).collect();
    let base = std::env::temp_dir().join(format!("xsc-bisect-{}", id.replace('/', "-")));
    Ok((
        items,
        Source::Commits {
            hashes,
            repo,
            rel,
            base,
            own_harness,
        },
    ))
}

/// The steps of `--series`: the prefixes from --good's to --bad's.
fn series(
    cfg: &Config,
    series: Series,
    args: &BisectArgs,
    id: &str,
) -> Result<(Vec<Item>, Source), Error> {
    let names = prefix::patches(cfg, series)?;
    let at = |p: &Option<String>, default: usize| match p {
        Some(p) => prefix::prefix_ending_with(&names, p)
            .map_err(|e| Error::Usage(format!("{} series: {e}", series.name()))),
        None => Ok(default),
    };
    let (good, bad) = (at(&args.good, 0)?, at(&args.bad, names.len())?);
    if good >= bad {
        return Err(Error::Usage(format!(
            "--good must come before --bad in the {} series",
            series.name()
        )));
    }
    let items = (good..=bad)
        .map(|k| Item {
            label: if k == 0 {
                "(empty series)".into()
            } else {
                names[k - 1].clone()
            },
            subject: format!("prefix {k}/{}", names.len()),
        })
        .collect();
    let base = cfg.out_dir.join("bisect").join(id);
    Ok((
        items,
        Source::Series {
            series,
            names,
            first: good,
            base,
        },
    ))
}

/// Sets up step `i`'s project root, runs it, and (for a commit) removes the worktree.
async fn one_step(
    cfg: &Config,
    source: &Source,
    i: usize,
    scenario: &str,
    opts: &RunOptions,
    accel: Option<&str>,
    cancel: watch::Receiver<bool>,
) -> Result<StepRun, Stopped> {
    let stop = |why: String| Stopped {
        abort: crate::bisect::verdict::Abort(ExitCode::Harness),
        why,
    };
    match source {
        Source::Commits {
            hashes,
            repo,
            rel,
            base,
            own_harness,
        } => {
            let dir = base.join(format!("step-{i}"));
            process::run(&git::worktree_add(repo, &dir, &hashes[i]), None)
                .await
                .map_err(|e| stop(e.to_string()))?;
            let commit = own_harness::Commit {
                repo,
                hash: &hashes[i],
                tree: &dir,
                rel,
            };
            let r = if *own_harness {
                own_harness::run(cfg, &commit, scenario, &opts.run_id, accel, cancel).await
            } else {
                match Config::load(&dir.join(rel)) {
                    Ok(mut c) => {
                        // Run directories stay in the clone; the worktree goes.
                        c.out_dir.clone_from(&cfg.out_dir);
                        c.cache_dir.clone_from(&cfg.cache_dir);
                        step::run(&c, scenario, step::Skips::Gated, opts, cancel).await
                    }
                    Err(p) => Ok(StepRun {
                        verdict: Verdict::Skip(format!("cannot test (bad input): {p}")),
                        build: std::time::Duration::ZERO,
                        boot: std::time::Duration::ZERO,
                        failing: vec![],
                        result: None,
                        run_dir: None,
                        junit: None,
                        own_harness: None,
                    }),
                }
            };
            let _ = process::run(&git::worktree_remove(repo, &dir), None).await;
            r
        }
        Source::Series {
            series,
            names,
            first,
            base,
        } => {
            let k = first + i;
            let root = base.join(format!("prefix-{k}"));
            let c = prefix::write_root(cfg, *series, names, k, &root)
                .map_err(|e| stop(e.to_string()))?;
            step::run(&c, scenario, step::Skips::Allowed, opts, cancel).await
        }
    }
}

/// Removes what the steps left outside the clone (worktrees) and git's records of them.
async fn cleanup(source: &Source) {
    if let Source::Commits { repo, base, .. } = source {
        let _ = std::fs::remove_dir_all(base);
        let _ = process::run(&git::worktree_prune(repo), None).await;
    }
}
