//! `xsc-release bench`: runs the instruction-counted bench scenarios, prints their figures
//! against `benches/baseline.json` with ratios, and exits 1 when a figure regressed past
//! its threshold; `--update-baseline` rewrites the file from this run (docs/bench.md).

use std::path::{Path, PathBuf};

use clap::Args;
use tokio::sync::watch;

use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::input::scenario::{self, Clock, Scenario};
use crate::observe::baseline::{self, Baseline, Comparison};
use crate::observe::bench::{BenchRun, display_unit};
use crate::run::{self, RunOptions};

/// The bench scenarios' directory under `scenarios/`.
const BENCH_DIR: &str = "bench";

/// The baseline, relative to the project root.
const BASELINE: &str = "benches/baseline.json";

/// Ring-vs-trap rows printed under the table (issue 12's goal rows): the ring at batch
/// 64 against the direct call, with the goal where the issue sets one.
const GOALS: &[(&str, &str, &str)] = &[
    ("ring.nop.b64", "direct.getppid", "ring NOP <= 50 instr/op"),
    ("ring.getpid.b64", "direct.getpid", "ring/direct <= 0.50"),
    ("ring.read64.b64", "direct.read64", ""),
    ("ring.write64.b64", "direct.write64", ""),
];

/// `bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Bench scenarios (names in scenarios/bench/, or files); default: every
    /// scenarios/bench/*.toml on the icount clock.
    pub scenarios: Vec<String>,
    /// The baseline to compare with (default: benches/baseline.json).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Rewrite the baseline from this run (only when every scenario passed); the note says
    /// why the figures moved.
    #[arg(long)]
    pub update_baseline: bool,
    /// Why the figures moved (stored in the baseline with --update-baseline).
    #[arg(long, requires = "update_baseline")]
    pub note: Option<String>,
    /// Never build a missing stage: exit 3 instead.
    #[arg(long)]
    pub no_build: bool,
    /// Also write JUnit here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a verdict record per bench scenario here, for `candidate --verdicts` (a CI
    /// job proves the bench gate like a gate shard; docs/ci.md).
    #[arg(long, value_name = "DIR", requires = "run_id")]
    pub verdicts: Option<PathBuf>,
    /// The pipeline run the verdict records belong to.
    #[arg(long, value_name = "ID", requires = "verdicts")]
    pub run_id: Option<String>,
}

/// Runs `bench`.
pub(crate) async fn run(
    cfg: &Config,
    args: BenchArgs,
    cancel: watch::Receiver<bool>,
) -> Result<ExitCode, Error> {
    let scenarios = select(cfg, &args.scenarios)?;
    let baseline_path = args
        .baseline
        .clone()
        .unwrap_or_else(|| cfg.root.join(BASELINE));
    let baseline = read_baseline(&baseline_path, args.update_baseline)?;
    run::preflight()?;
    let opts = RunOptions {
        run_id: crate::app::run_id(),
        accel: None,
        boot_timeout: None,
        test_timeout: None,
        silence_timeout: None,
        // The icount figures do not depend on what else runs; one at a time keeps the
        // shared host usable.
        jobs: 1,
        no_build: args.no_build,
        cancel: Some(cancel.clone()),
    };
    let (results, mut code) = crate::app::run_and_report(
        cfg,
        &scenarios,
        &opts,
        cancel,
        args.junit.as_deref(),
        None,
        false,
    )
    .await?;
    if let (Some(dir), Some(id)) = (&args.verdicts, &args.run_id) {
        crate::app::write_records(dir, id, &scenarios, &results, None, false)?;
    }
    let mut runs = Vec::new();
    for r in &results {
        let path = r.state_dir.join(run::BENCH_JSON);
        match std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BenchRun>(&b).ok())
        {
            Some(b) => runs.push(b),
            None => {
                println!("{}: no figures ({} missing)", r.name, path.display());
                code = code.worst(ExitCode::ProductFailed);
            }
        }
    }
    let mut regressed = false;
    for b in &runs {
        for p in &b.problems {
            println!("{}: bad figure line: {p}", b.scenario);
        }
        let c = baseline::compare(&baseline, b);
        regressed |= c.regressed();
        print!("{}", table(&baseline_path, &c, b));
    }
    if args.update_baseline {
        if code != ExitCode::Success {
            println!("baseline not updated: the run did not pass");
            return Ok(code);
        }
        let note = args
            .note
            .unwrap_or_else(|| "measured by xsc-release bench --update-baseline".into());
        let updated = baseline.updated(&runs, &note);
        write_baseline(&baseline_path, &updated)?;
        println!("baseline updated: {}", baseline_path.display());
        return Ok(code);
    }
    if regressed {
        println!("bench: a figure regressed past its threshold (exit 1)");
        code = code.worst(ExitCode::ProductFailed);
    }
    Ok(code)
}

/// The bench gates of `candidate` (issue 12): every icount scenario in
/// `scenarios/bench/`; none when the directory does not exist (a project without benches).
pub(crate) fn gates(cfg: &Config) -> Result<Vec<Scenario>, Error> {
    let dir = cfg.scenarios_dir.join(BENCH_DIR);
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let files = scenario::files_in(&dir).map_err(Error::io(&dir))?;
    Ok(scenario::load_all(&files, &run::guest_tests_dir(cfg))?
        .into_iter()
        .filter(|s| s.clock == Clock::Icount)
        .collect())
}

/// The bench gate's verdict over the gates' results: each bench scenario's figures (from
/// its serial log, which a verdict record carries; else from its `bench.*` properties, as
/// a cached verdict has them) against `benches/baseline.json`, the table printed. Returns
/// the figures that regressed or went missing, as `scenario/figure`.
pub(crate) fn gate_regressions(
    cfg: &Config,
    benches: &[Scenario],
    results: &[crate::observe::verdict::ScenarioResult],
) -> Result<Vec<String>, Error> {
    if benches.is_empty() {
        return Ok(vec![]);
    }
    let path = cfg.root.join(BASELINE);
    let baseline = read_baseline(&path, false)?;
    let mut regressed = Vec::new();
    for r in results
        .iter()
        .filter(|r| benches.iter().any(|b| b.name == r.name))
    {
        let console = std::fs::read(&r.serial_log).map_or_else(
            |_| {
                r.properties
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix("bench.")
                            .map(|n| format!("{}{n} {v}\n", crate::observe::bench::PREFIX))
                    })
                    .collect::<String>()
            },
            |b| String::from_utf8_lossy(&b).into_owned(),
        );
        let b = BenchRun::new(&r.name, &r.properties, &console);
        let c = baseline::compare(&baseline, &b);
        print!("{}", table(&path, &c, &b));
        regressed.extend(
            c.rows
                .iter()
                .filter(|row| row.status.fails())
                .map(|row| format!("{}/{}", r.name, row.name)),
        );
    }
    Ok(regressed)
}

/// The scenarios to run: named ones, or every `scenarios/bench/*.toml` on the icount
/// clock. A named wall-clock scenario is refused: its figures move with the host's load
/// and cannot be held to a 2 % threshold.
fn select(cfg: &Config, names: &[String]) -> Result<Vec<Scenario>, Error> {
    let dir = cfg.scenarios_dir.join(BENCH_DIR);
    let files: Vec<PathBuf> = if names.is_empty() {
        scenario::files_in(&dir).map_err(Error::io(&dir))?
    } else {
        names
            .iter()
            .map(|n| {
                let in_bench = dir.join(format!("{n}.toml"));
                if in_bench.is_file() {
                    Ok(in_bench)
                } else {
                    crate::app::scenario_files(cfg, std::slice::from_ref(n))
                        .map(|mut v| v.remove(0))
                }
            })
            .collect::<Result<_, _>>()?
    };
    let all = scenario::load_all(&files, &run::guest_tests_dir(cfg))?;
    if !names.is_empty() {
        if let Some(s) = all.iter().find(|s| s.clock != Clock::Icount) {
            return Err(Error::Usage(format!(
                "scenario {} runs on the host clock: its figures are wall time and cannot be \
                 gated; run it with `xsc-release test` (bench needs [machine] clock = \"icount\")",
                s.name
            )));
        }
    }
    let picked: Vec<Scenario> = all
        .into_iter()
        .filter(|s| s.clock == Clock::Icount)
        .collect();
    if picked.is_empty() {
        return Err(Error::Usage(format!(
            "no icount bench scenario in {}",
            dir.display()
        )));
    }
    Ok(picked)
}

/// The baseline file; a missing one is empty only when it is about to be written.
fn read_baseline(path: &Path, updating: bool) -> Result<Baseline, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Usage(format!("{}: invalid baseline: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && updating => Ok(Baseline::empty()),
        Err(_) => Err(Error::InputMissing {
            what: "baseline",
            path: path.to_path_buf(),
        }),
    }
}

fn write_baseline(path: &Path, b: &Baseline) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(b).expect("a baseline serialises") + "\n";
    std::fs::write(path, text).map_err(Error::io(path))
}

/// The table of one scenario: a header naming what it was measured on and what differs
/// from the baseline's, a row per figure, then the ring-vs-trap rows.
fn table(baseline_path: &Path, c: &Comparison, run: &BenchRun) -> String {
    let mut out = format!(
        "\n{} — clock {}, QEMU {}, cpu {}, kernel {} (baseline {})\n",
        c.scenario,
        run.clock,
        run.qemu_version,
        run.cpu_model,
        run.kernel_key
            .as_deref()
            .map_or("none", |k| &k[..k.len().min(12)]),
        baseline_path.display()
    );
    for d in &c.differences {
        out.push_str(&format!(
            "  measured on other inputs than the baseline: {d}\n"
        ));
    }
    out.push_str(&format!(
        "  {:<20} {:>10} {:>10} {:>7} {:>6}  {:<9} {}\n",
        "figure", "baseline", "now", "ratio", "limit", "verdict", "unit"
    ));
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for r in &c.rows {
        out.push_str(&format!(
            "  {:<20} {:>10} {:>10} {:>7} {:>5}%  {:<9} {}\n",
            r.name,
            num(r.base),
            num(r.now),
            r.ratio.map_or("-".to_string(), |x| format!("{x:.3}")),
            r.threshold_pct,
            r.status.as_str(),
            display_unit(&r.unit, &run.clock)
        ));
    }
    let goals: Vec<String> = GOALS
        .iter()
        .filter_map(|(ring, direct, goal)| {
            let (r, d) = (run.figure(ring)?, run.figure(direct)?);
            (d.value > 0.0).then(|| {
                format!(
                    "  {:<20} {:>7.1} vs {:<16} {:>7.1}  ring/direct {:.2}  {}\n",
                    ring,
                    r.value,
                    direct,
                    d.value,
                    r.value / d.value,
                    if goal.is_empty() {
                        String::new()
                    } else {
                        format!("(goal: {goal})")
                    }
                )
            })
        })
        .collect();
    if !goals.is_empty() {
        out.push_str("  ring at batch 64 vs the trap:\n");
        out.extend(goals);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::bench::{Better, Figure};

    fn run_with(figs: &[(&str, f64)], kernel: &str) -> BenchRun {
        BenchRun {
            scenario: "xsc-ring-icount".into(),
            clock: "icount".into(),
            qemu_version: "7.2.22".into(),
            cpu_model: "Nehalem-v1".into(),
            kernel_key: Some(kernel.into()),
            glibc_key: None,
            initrd_sha256: None,
            figures: figs
                .iter()
                .map(|(n, v)| Figure {
                    name: (*n).into(),
                    value: *v,
                    unit: "ns/op".into(),
                    better: Better::Lower,
                })
                .collect(),
            problems: vec![],
        }
    }

    #[test]
    fn the_table_shows_ratios_verdicts_inputs_and_the_goal_rows() {
        let base = Baseline::empty().updated(
            &[run_with(
                &[("ring.getpid.b64", 300.0), ("direct.getpid", 200.0)],
                "aaaa",
            )],
            "n",
        );
        let now = run_with(
            &[("ring.getpid.b64", 309.0), ("direct.getpid", 200.0)],
            "bbbb",
        );
        let c = baseline::compare(&base, &now);
        let t = table(Path::new("benches/baseline.json"), &c, &now);
        let line = |start: &str| {
            t.lines()
                .find(|l| l.trim_start().starts_with(start))
                .unwrap_or_else(|| panic!("no {start:?} in\n{t}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            line("ring.getpid.b64 "),
            [
                "ring.getpid.b64",
                "300.0",
                "309.0",
                "1.030",
                "2%",
                "REGRESSED",
                "instr/op"
            ]
        );
        assert_eq!(line("direct.getpid")[5], "ok");
        assert!(t.contains("measured on other inputs than the baseline: kernel: aaaa → bbbb"));
        assert!(
            t.contains("ring/direct 1.54  (goal: ring/direct <= 0.50)"),
            "{t}"
        );
    }
}
