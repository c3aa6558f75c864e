//! Release gates: the scenarios tagged `release-gate`, run for `candidate` with two rules a
//! plain `test` does not have. A gate already green for the same image, scenario and
//! harness is not run again (its verdict is cached by those hashes); and a gate that fails
//! gets exactly one rerun — passing then makes it *flaky*, recorded as such, never green.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use crate::boot::qemu_args::Boot;
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::input::scenario::Scenario;
use crate::observe::verdict::ScenarioResult;
use crate::report::summary;
use crate::run::prepare::BuiltImage;
use crate::run::{self, RunOptions};
use crate::sys::cache::{Cache, KeyBuilder, sha256_file};

/// Identity of this harness build: the SHA-256 of the running executable. A rebuilt
/// harness may judge differently, so its verdicts are not reused.
pub(crate) fn harness_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| sha256_file(&p).ok())
            .unwrap_or_else(|| format!("unknown-{}", env!("CARGO_PKG_VERSION")))
    })
}

/// The verdict key of a gate: image files, scenario file, harness.
pub(crate) fn verdict_key(boot: &Boot, scenario: &Scenario) -> Result<String, Error> {
    let mut k = KeyBuilder::new();
    k.str("recipe", "gate-verdict-v1")
        .str("scenario", &scenario.hash)
        .str("harness", harness_id());
    let files: Vec<&Path> = match boot {
        Boot::Kernel {
            kernel,
            initrd,
            append,
        } => {
            k.str("append", append);
            std::iter::once(kernel.as_path())
                .chain(initrd.as_deref())
                .collect()
        }
        Boot::Cdrom(iso) | Boot::Disk(iso) => vec![iso.as_path()],
        // A disk an earlier phase wrote: the scenario and that phase's image say it all.
        Boot::FromDisk => vec![],
    };
    for f in files {
        k.file("image", f).map_err(Error::io(f))?;
    }
    Ok(k.finish())
}

fn verdict_file(cache: &Cache, key: &str) -> PathBuf {
    cache.root().join("verdicts").join(format!("{key}.json"))
}

/// A green verdict stored earlier for `key`.
pub(crate) fn cached_green(cache: &Cache, key: &str) -> Option<ScenarioResult> {
    let r: ScenarioResult =
        serde_json::from_slice(&std::fs::read(verdict_file(cache, key)).ok()?).ok()?;
    (r.passed() && r.flaky_first_attempt.is_none()).then_some(r)
}

fn store_green(cache: &Cache, key: &str, r: &ScenarioResult) {
    let file = verdict_file(cache, key);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(file.parent().expect("verdict files live in a directory"))?;
        crate::sys::atomic_file::write(
            &file,
            &serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?,
        )
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, file = %file.display(), "cannot store the gate verdict");
    }
}

/// What running the gates produced.
pub(crate) struct GateRun {
    /// One result per gate, in scenario order (after an interrupt: per gate that ran).
    pub results: Vec<ScenarioResult>,
    /// What this project built that each gate booted, in gate order (what a release ships;
    /// nothing for a gate that was not applicable).
    pub built: Vec<Vec<BuiltImage>>,
    /// Names of gates that passed only on their rerun.
    pub flaky: Vec<String>,
    /// The combined exit code.
    pub code: ExitCode,
}

/// Where the gate run's lines for people go (the app prints them).
pub(crate) type Say = Arc<dyn Fn(String) + Send + Sync>;

/// Runs the gates: cached green verdicts are reused unless `retest`; failures get one rerun.
/// Each finished gate, cached verdict and rerun is told through `say`.
pub(crate) async fn run(
    cfg: &Config,
    gates: &[Scenario],
    opts: &RunOptions,
    cancel: watch::Receiver<bool>,
    retest: bool,
    say: Say,
) -> Result<GateRun, Error> {
    run::preflight()?;
    let cache = Cache::new(&cfg.cache_dir);
    let mut keys = Vec::new();
    // Each gate's image, prepared once: keyed here, booted below (rerun included).
    let mut prepared = Vec::new();
    let mut results: Vec<Option<ScenarioResult>> = Vec::new();
    for g in gates {
        // Not applicable here (an EL gate without its base ISO): reported as not run,
        // never prepared, never cached, never rerun.
        if let Some(why) = run::not_applicable(cfg, g) {
            say(format!("{:<5} {} — not applicable: {why}", "N/A", g.name));
            results.push(Some(ScenarioResult::not_applicable(
                &g.name,
                &why,
                cfg.run_dir(&opts.run_id).join(&g.name),
            )));
            keys.push(String::new());
            prepared.push(None);
            continue;
        }
        let image = run::prepare(cfg, &cache, g, opts).await?;
        let key = verdict_key(&image.boot, g)?;
        let cached = if retest {
            None
        } else {
            cached_green(&cache, &key)
        };
        if let Some(r) = &cached {
            say(format!(
                "{:<5} {} (cached verdict: same image, scenario and harness; --retest to run again)",
                "PASS", r.name
            ));
        }
        results.push(cached);
        keys.push(key);
        prepared.push(Some((g.clone(), image)));
    }
    let todo: Vec<(Scenario, run::PreparedImage)> = prepared
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_none())
        .filter_map(|(p, _)| p.clone())
        .collect();
    let mut code = ExitCode::Success;
    if !todo.is_empty() {
        let line = |say: &Say| {
            let say = say.clone();
            move |r: &ScenarioResult| say(summary::scenario_line(r))
        };
        let first = run::run_prepared(cfg, &todo, opts, cancel.clone(), line(&say)).await;
        let mut rerun = Vec::new();
        for ((g, image), outcome) in todo.iter().zip(first) {
            let r = match outcome {
                Ok(r) => r,
                // Never started: the user stopped the run; the gates that finished are
                // still reported (and written to JUnit by the caller).
                Err(Error::Interrupted(_)) => continue,
                Err(e) => return Err(e),
            };
            let slot = gates
                .iter()
                .position(|x| x.name == g.name)
                .expect("todo comes from gates");
            // Only a product failure earns a rerun: a broken harness is not flakiness.
            if !r.passed() && !r.is_harness_failure() && !*cancel.borrow() {
                rerun.push((slot, (g.clone(), image.clone()), r));
            } else {
                results[slot] = Some(r);
            }
        }
        if !rerun.is_empty() {
            let again: Vec<(Scenario, run::PreparedImage)> =
                rerun.iter().map(|(_, p, _)| p.clone()).collect();
            say(format!("rerunning {} failed gate(s) once", again.len()));
            let second = run::run_prepared(cfg, &again, opts, cancel.clone(), line(&say)).await;
            for ((slot, _, first), outcome) in rerun.into_iter().zip(second) {
                results[slot] = Some(match outcome {
                    Ok(second) => after_rerun(first, second),
                    Err(Error::Interrupted(_)) => first,
                    Err(e) => return Err(e),
                });
            }
        }
    }
    let mut flaky = Vec::new();
    for (r, key) in results.iter().zip(&keys) {
        // Only a gate the interrupt kept from starting has no result.
        let Some(r) = r else {
            code = code.worst(ExitCode::Interrupted);
            continue;
        };
        code = code.worst(run::exit_code_of(r));
        if r.flaky_first_attempt.is_some() {
            flaky.push(r.name.clone());
        } else if r.passed() && !key.is_empty() {
            store_green(&cache, key, r);
        }
    }
    Ok(GateRun {
        results: results.into_iter().flatten().collect(),
        built: prepared
            .into_iter()
            .map(|p| p.map(|(_, image)| image.built).unwrap_or_default())
            .collect(),
        flaky,
        code,
    })
}

/// The gates' verdicts from the records CI shards wrote (`candidate --verdicts DIR
/// --run-id ID`): each gate's image is prepared as for a run (never built: the stages come
/// from the CI cache) but nothing boots; each record must match it and its own serial log
/// (run/verdict_record.rs). A missing or mismatched record refuses the whole candidate
/// (exit 5) rather than booting the gate here: the signing job proves nothing itself, so
/// a shard that did not prove a gate is a broken pipeline, never a reason to re-test.
pub(crate) async fn from_records(
    cfg: &Config,
    gates: &[Scenario],
    opts: &RunOptions,
    dir: &Path,
    run_id: &str,
    say: Say,
) -> Result<GateRun, Error> {
    use crate::run::verdict_record::{self, Expected};
    let cache = Cache::new(&cfg.cache_dir);
    let opts = RunOptions {
        no_build: true,
        ..opts.clone()
    };
    let mut results = Vec::new();
    let mut built = Vec::new();
    let mut refused = Vec::new();
    for g in gates {
        // As a run decides it (an EL gate without its base ISO): no shard boots it, so no
        // record proves it, and it ships nothing.
        if let Some(why) = run::not_applicable(cfg, g) {
            say(format!("{:<5} {} — not applicable: {why}", "N/A", g.name));
            results.push(ScenarioResult::not_applicable(
                &g.name,
                &why,
                cfg.run_dir(&opts.run_id).join(&g.name),
            ));
            built.push(Vec::new());
            continue;
        }
        let image = run::prepare(cfg, &cache, g, &opts).await?;
        let want = Expected {
            run_id,
            scenario: g,
            image: &verdict_record::image_of(&image.properties),
            harness_sha256: harness_id(),
        };
        match verdict_record::accept(dir, &want) {
            Ok(r) => {
                say(format!(
                    "{} (verdict record of run {run_id}: hashes match, its serial log judges the same)",
                    summary::scenario_line(&r)
                ));
                results.push(r);
                built.push(image.built);
            }
            Err(e) => refused.push(e.to_string()),
        }
    }
    if !refused.is_empty() {
        return Err(Error::Refused(format!(
            "{} gate(s) without an acceptable verdict record (nothing was booted or published):\n  {}",
            refused.len(),
            refused.join("\n  ")
        )));
    }
    let code = results
        .iter()
        .fold(ExitCode::Success, |c, r| c.worst(run::exit_code_of(r)));
    Ok(GateRun {
        results,
        built,
        flaky: vec![],
        code,
    })
}

/// The verdict of a gate that failed and was run once more: a pass on the rerun is flaky
/// (carrying the first failure); a second failure keeps the first attempt's evidence.
pub(crate) fn after_rerun(first: ScenarioResult, mut second: ScenarioResult) -> ScenarioResult {
    if second.passed() {
        second.flaky_first_attempt = Some(summary::scenario_line(&first));
        second
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, passed: bool) -> ScenarioResult {
        use crate::observe::verdict::{CaseResult, FailureKind, RunEnd};
        ScenarioResult {
            name: name.into(),
            started: std::time::SystemTime::UNIX_EPOCH,
            duration: std::time::Duration::ZERO,
            boot: CaseResult::passed("boot"),
            cases: if passed {
                vec![]
            } else {
                vec![CaseResult::failed("t.a", FailureKind::Assertion, "boom")]
            },
            end: RunEnd::PoweredOff,
            crashes: vec![],
            properties: vec![],
            console_tail: String::new(),
            serial_log: PathBuf::new(),
            screendump: None,
            state_dir: PathBuf::new(),
            qemu_cmdline: String::new(),
            flaky_first_attempt: None,
        }
    }

    #[test]
    fn a_pass_on_the_rerun_is_flaky_not_green() {
        let r = after_rerun(result("g", false), result("g", true));
        assert!(r.passed());
        assert!(
            r.flaky_first_attempt
                .as_deref()
                .is_some_and(|f| f.contains("t.a")),
            "{:?}",
            r.flaky_first_attempt
        );
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        store_green(&cache, "k", &r);
        assert!(
            cached_green(&cache, "k").is_none(),
            "a flaky verdict is never reused as green"
        );
        store_green(&cache, "k2", &result("g", true));
        assert!(cached_green(&cache, "k2").is_some());
    }

    #[test]
    fn two_failures_keep_the_first_attempt() {
        let mut first = result("g", false);
        first.console_tail = "first".into();
        let r = after_rerun(first, result("g", false));
        assert!(!r.passed() && r.console_tail == "first" && r.flaky_first_attempt.is_none());
    }

    #[test]
    fn verdict_keys_follow_the_image_and_the_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("bzImage");
        std::fs::write(&k, "kernel").unwrap();
        let boot = Boot::Kernel {
            kernel: k.clone(),
            initrd: None,
            append: "console=ttyS0".into(),
        };
        let gt = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-tests");
        let smoke = crate::input::scenario::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml"),
            &gt,
        )
        .unwrap();
        let a = verdict_key(&boot, &smoke).unwrap();
        assert_eq!(a, verdict_key(&boot, &smoke).unwrap());
        std::fs::write(&k, "kernel2").unwrap();
        assert_ne!(a, verdict_key(&boot, &smoke).unwrap());
        let mut other = smoke.clone();
        other.hash = "different".into();
        assert_ne!(
            verdict_key(&boot, &smoke).unwrap(),
            verdict_key(&boot, &other).unwrap()
        );
    }
}
