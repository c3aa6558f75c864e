//! The committed benchmark baseline (`benches/baseline.json`) and the comparison of a
//! run's figures with it: the ratio of each figure, and whether it regressed past its
//! threshold. Pure: reading, writing and printing belong to `app::bench`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::observe::bench::{BenchRun, Better};

/// The threshold when the baseline names none: instruction counts repeat to well under
/// 0.5 % (docs/bench.md), so 2 % is a real change, not noise.
pub(crate) const DEFAULT_THRESHOLD_PCT: f64 = 2.0;

/// `benches/baseline.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Baseline {
    /// Why the figures are what they are (the last change that moved them).
    pub note: String,
    /// How far a figure may move the bad way, in percent.
    pub threshold_pct: f64,
    /// Per-figure thresholds (`scenario/figure` → percent) overriding `threshold_pct`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, f64>,
    /// One measured run per bench scenario, with what it was measured on.
    pub runs: Vec<BenchRun>,
}

impl Baseline {
    /// An empty baseline (no file yet).
    pub(crate) fn empty() -> Self {
        Baseline {
            note: String::new(),
            threshold_pct: DEFAULT_THRESHOLD_PCT,
            thresholds: BTreeMap::new(),
            runs: vec![],
        }
    }

    /// The baseline run of a scenario.
    pub(crate) fn run(&self, scenario: &str) -> Option<&BenchRun> {
        self.runs.iter().find(|r| r.scenario == scenario)
    }

    /// The threshold of one figure, in percent.
    pub(crate) fn threshold(&self, scenario: &str, figure: &str) -> f64 {
        self.thresholds
            .get(&format!("{scenario}/{figure}"))
            .copied()
            .unwrap_or(self.threshold_pct)
    }

    /// This baseline with `runs` replacing the runs of the same scenarios (others kept).
    pub(crate) fn updated(&self, runs: &[BenchRun], note: &str) -> Baseline {
        let mut b = self.clone();
        for r in runs {
            let mut r = r.clone();
            r.problems.clear();
            match b.runs.iter_mut().find(|o| o.scenario == r.scenario) {
                Some(old) => *old = r,
                None => b.runs.push(r),
            }
        }
        b.note = note.to_string();
        b
    }
}

/// How one figure compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Within its threshold.
    Same,
    /// Better by more than its threshold (the baseline is stale; update it).
    Improved,
    /// Worse by more than its threshold.
    Regressed,
    /// Not in the baseline.
    New,
    /// In the baseline, not reported by the run: a figure that vanishes could hide a
    /// regression, so it counts as one.
    Missing,
}

impl Status {
    /// The word in the table.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Same => "ok",
            Status::Improved => "IMPROVED",
            Status::Regressed => "REGRESSED",
            Status::New => "new",
            Status::Missing => "MISSING",
        }
    }

    /// True when this status fails `bench`.
    pub(crate) fn fails(self) -> bool {
        matches!(self, Status::Regressed | Status::Missing)
    }
}

/// One row of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    /// Figure name.
    pub name: String,
    /// Unit as reported.
    pub unit: String,
    /// The baseline's value.
    pub base: Option<f64>,
    /// This run's value.
    pub now: Option<f64>,
    /// now / base.
    pub ratio: Option<f64>,
    /// Threshold in percent.
    pub threshold_pct: f64,
    /// Verdict.
    pub status: Status,
}

/// One scenario's comparison: its rows, and what differs in what it was measured on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Comparison {
    /// Scenario name.
    pub scenario: String,
    /// Figure rows: the run's order, then figures only the baseline has.
    pub rows: Vec<Row>,
    /// "kernel: abc… → def…" and the like; empty when measured on the same inputs.
    pub differences: Vec<String>,
}

impl Comparison {
    /// True when a figure regressed or went missing.
    pub(crate) fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.status.fails())
    }
}

/// The status of `now` against `base` with `better` and a threshold in percent.
pub(crate) fn judge(base: f64, now: f64, better: Better, threshold_pct: f64) -> Status {
    let t = threshold_pct / 100.0;
    // A zero baseline has no ratio: any growth of a cost is a regression.
    let ratio = if base == 0.0 {
        if now == 0.0 { 1.0 } else { f64::INFINITY }
    } else {
        now / base
    };
    let (worse, better_) = match better {
        Better::Lower => (ratio > 1.0 + t, ratio < 1.0 - t),
        Better::Higher => (ratio < 1.0 - t, ratio > 1.0 + t),
    };
    match (worse, better_) {
        (true, _) => Status::Regressed,
        (_, true) => Status::Improved,
        _ => Status::Same,
    }
}

/// Compares one run with the baseline.
pub(crate) fn compare(baseline: &Baseline, run: &BenchRun) -> Comparison {
    let base = baseline.run(&run.scenario);
    let mut rows = Vec::new();
    for f in &run.figures {
        let threshold_pct = baseline.threshold(&run.scenario, &f.name);
        let b = base.and_then(|b| b.figure(&f.name));
        rows.push(match b {
            Some(b) => Row {
                name: f.name.clone(),
                unit: f.unit.clone(),
                base: Some(b.value),
                now: Some(f.value),
                ratio: (b.value != 0.0).then(|| f.value / b.value),
                threshold_pct,
                status: judge(b.value, f.value, f.better, threshold_pct),
            },
            None => Row {
                name: f.name.clone(),
                unit: f.unit.clone(),
                base: None,
                now: Some(f.value),
                ratio: None,
                threshold_pct,
                status: Status::New,
            },
        });
    }
    for b in base.map(|b| b.figures.as_slice()).unwrap_or_default() {
        if run.figure(&b.name).is_none() {
            rows.push(Row {
                name: b.name.clone(),
                unit: b.unit.clone(),
                base: Some(b.value),
                now: None,
                ratio: None,
                threshold_pct: baseline.threshold(&run.scenario, &b.name),
                status: Status::Missing,
            });
        }
    }
    let mut differences = Vec::new();
    if let Some(b) = base {
        let short = |s: &Option<String>| {
            s.as_deref()
                .map_or("none".to_string(), |s| s.chars().take(12).collect())
        };
        let pairs = [
            ("clock", b.clock.clone(), run.clock.clone()),
            ("qemu", b.qemu_version.clone(), run.qemu_version.clone()),
            ("cpu", b.cpu_model.clone(), run.cpu_model.clone()),
            ("kernel", short(&b.kernel_key), short(&run.kernel_key)),
            ("glibc", short(&b.glibc_key), short(&run.glibc_key)),
            ("initrd", short(&b.initrd_sha256), short(&run.initrd_sha256)),
        ];
        for (what, was, is) in pairs {
            if was != is {
                differences.push(format!("{what}: {was} → {is}"));
            }
        }
    }
    Comparison {
        scenario: run.scenario.clone(),
        rows,
        differences,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::bench::Figure;

    fn run(figs: &[(&str, f64, Better)]) -> BenchRun {
        BenchRun {
            scenario: "s".into(),
            clock: "icount".into(),
            qemu_version: "7.2.22".into(),
            cpu_model: "Nehalem-v1".into(),
            kernel_key: Some("k1".into()),
            glibc_key: None,
            initrd_sha256: Some("i1".into()),
            figures: figs
                .iter()
                .map(|(n, v, b)| Figure {
                    name: (*n).into(),
                    value: *v,
                    unit: "ns/op".into(),
                    better: *b,
                })
                .collect(),
            problems: vec![],
        }
    }

    #[test]
    fn thresholds_cut_both_ways() {
        use Better::*;
        assert_eq!(judge(100.0, 102.0, Lower, 2.0), Status::Same);
        assert_eq!(judge(100.0, 102.1, Lower, 2.0), Status::Regressed);
        assert_eq!(judge(100.0, 97.9, Lower, 2.0), Status::Improved);
        assert_eq!(judge(100.0, 97.9, Higher, 2.0), Status::Regressed);
        assert_eq!(judge(100.0, 102.1, Higher, 2.0), Status::Improved);
        assert_eq!(judge(0.0, 0.0, Lower, 2.0), Status::Same);
        assert_eq!(judge(0.0, 1.0, Lower, 2.0), Status::Regressed);
    }

    #[test]
    fn a_slower_figure_a_new_one_and_a_missing_one() {
        use Better::*;
        let mut base = Baseline::empty();
        base.thresholds.insert("s/b".into(), 1.0);
        base = base.updated(
            &[run(&[
                ("a", 100.0, Lower),
                ("b", 100.0, Lower),
                ("gone", 5.0, Lower),
            ])],
            "measured",
        );
        let mut now = run(&[("a", 101.5, Lower), ("b", 101.5, Lower), ("c", 1.0, Lower)]);
        now.kernel_key = Some("k2".into());
        let c = compare(&base, &now);
        let st: Vec<(&str, Status)> = c.rows.iter().map(|r| (r.name.as_str(), r.status)).collect();
        assert_eq!(
            st,
            [
                ("a", Status::Same),
                ("b", Status::Regressed),
                ("c", Status::New),
                ("gone", Status::Missing)
            ]
        );
        assert!(c.regressed());
        assert_eq!(c.rows[0].ratio, Some(1.015));
        assert_eq!(c.differences, ["kernel: k1 → k2"]);
        // The same figures again: nothing moved, nothing differs.
        let same = compare(&base, &base.runs[0]);
        assert!(!same.regressed() && same.differences.is_empty());
    }

    #[test]
    fn updating_replaces_only_the_measured_scenarios() {
        let mut other = run(&[("x", 1.0, Better::Lower)]);
        other.scenario = "other".into();
        let base = Baseline::empty().updated(&[run(&[]), other], "first");
        let b2 = base.updated(&[run(&[("a", 2.0, Better::Lower)])], "second");
        assert_eq!(b2.runs.len(), 2);
        assert_eq!(b2.run("s").unwrap().figures.len(), 1);
        assert_eq!(b2.run("other").unwrap().figures[0].name, "x");
        assert_eq!(b2.note, "second");
        let text = serde_json::to_string(&b2).unwrap();
        assert_eq!(serde_json::from_str::<Baseline>(&text).unwrap(), b2);
        assert!(
            serde_json::from_str::<Baseline>(&text.replacen("\"note\"", "\"nite\"", 1)).is_err()
        );
    }
}
