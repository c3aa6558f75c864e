//! The judging rules, once: what a run observed (how it ended, whether the ready marker
//! appeared, the KTAP cases, console crashes) becomes the `boot` case and the scenario's
//! cases. The live runner and `report ktap` both call [`judge`], so a guest judged in QEMU
//! and a console log captured elsewhere cannot be judged differently. Pure: no I/O.

use crate::input::scenario::{Gate, RunUntil};
use crate::observe::ktap::KtapOutcome;
use crate::observe::verdict::{CaseResult, CaseStatus, Crash, FailureKind, RunEnd, crash_cases};

/// What the observers saw of one run.
#[derive(Debug)]
pub(crate) struct Observed<'a> {
    /// How the run ended.
    pub end: &'a RunEnd,
    /// The ready marker appeared (a captured log counts as booted).
    pub ready: bool,
    /// The finished KTAP parse.
    pub ktap: KtapOutcome,
    /// Kernel problems on the console.
    pub crashes: &'a [Crash],
}

/// What the scenario demands beyond "nothing failed".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules<'a> {
    /// When a run ends successfully.
    pub until: RunUntil,
    /// Release-gate requirements, if any.
    pub gate: Option<&'a Gate>,
    /// A run that powers off must have printed KTAP; false for a phase that only has to
    /// power off (an installer).
    pub ktap_required: bool,
}

impl Rules<'_> {
    /// The rules for a console log captured elsewhere: it must have run to its end.
    pub(crate) const LOG: Rules<'static> = Rules {
        until: RunUntil::Poweroff,
        gate: None,
        ktap_required: true,
    };
}

/// The judged cases of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The synthetic `boot` case.
    pub boot: CaseResult,
    /// KTAP cases in console order, then synthetic ones (crashes, end of run, gate).
    pub cases: Vec<CaseResult>,
}

/// Judges one run.
pub(crate) fn judge(obs: Observed<'_>, rules: Rules<'_>) -> Verdict {
    let end = obs.end;
    let boot = if obs.ready {
        CaseResult::passed("boot")
    } else {
        boot_failure(end)
    };
    let mut cases = obs.ktap.cases;
    let mut extra = crash_cases(obs.crashes);
    if obs.ready {
        extra.extend(end_case(end, rules.until, !obs.crashes.is_empty()));
        // Only a run that ended normally can be blamed for reporting nothing: a crash or a
        // clock already fails it, and says why better.
        if matches!(end, RunEnd::PoweredOff) && rules.ktap_required {
            if !obs.ktap.saw_ktap {
                extra.push(CaseResult::failed(
                    "ktap",
                    FailureKind::Assertion,
                    "no KTAP results on the console: a run that reports nothing is not a pass",
                ));
            } else if cases.is_empty() {
                // `1..0`: a plan of nothing is still nothing.
                extra.push(CaseResult::failed(
                    "ktap",
                    FailureKind::Assertion,
                    "KTAP reported no test cases: a run where no case ran is not a pass",
                ));
            }
        }
    }
    // An interrupted run was cut short by the user: counting its cases against the gate
    // would report assertions about tests that never got the chance to run.
    if let Some(gate) = rules.gate.filter(|_| !matches!(end, RunEnd::Interrupted)) {
        extra.extend(gate_cases(&cases, gate));
    }
    cases.extend(extra);
    Verdict { boot, cases }
}

/// The `boot` case of a run that never reached the ready marker.
fn boot_failure(end: &RunEnd) -> CaseResult {
    match end {
        RunEnd::BootTimeout(_) | RunEnd::Silent(_) => {
            CaseResult::failed("boot", FailureKind::Timeout, end.describe())
        }
        RunEnd::Panicked | RunEnd::Reset => {
            CaseResult::failed("boot", FailureKind::Crash, end.describe())
        }
        RunEnd::PoweredOff => CaseResult::failed(
            "boot",
            FailureKind::Assertion,
            "the guest powered off before the ready marker",
        ),
        // Only the ready marker stops a run at ready; without it the harness is to blame,
        // as it is for the rest.
        RunEnd::QemuDied { .. }
        | RunEnd::HarnessError { .. }
        | RunEnd::TestTimeout(_)
        | RunEnd::Interrupted
        | RunEnd::StoppedAtReady
        | RunEnd::NotApplicable(_) => {
            CaseResult::errored("boot", FailureKind::Infra, end.describe())
        }
    }
}

/// The `run` case of a booted run that did not end the way the scenario asks, if so.
fn end_case(end: &RunEnd, until: RunUntil, crashed: bool) -> Option<CaseResult> {
    match end {
        RunEnd::PoweredOff => None,
        RunEnd::StoppedAtReady if until == RunUntil::Ready => None,
        RunEnd::StoppedAtReady => Some(CaseResult::errored(
            "run",
            FailureKind::Infra,
            "stopped at the ready marker although the scenario runs until power-off",
        )),
        // The console crash case already says it.
        RunEnd::Panicked if crashed => None,
        RunEnd::Panicked | RunEnd::Reset => Some(CaseResult::failed(
            "run",
            FailureKind::Crash,
            end.describe(),
        )),
        RunEnd::Silent(_) | RunEnd::TestTimeout(_) | RunEnd::BootTimeout(_) => Some(
            CaseResult::failed("run", FailureKind::Timeout, end.describe()),
        ),
        RunEnd::QemuDied { .. }
        | RunEnd::HarnessError { .. }
        | RunEnd::Interrupted
        | RunEnd::NotApplicable(_) => Some(CaseResult::errored(
            "run",
            FailureKind::Infra,
            end.describe(),
        )),
    }
}

/// The gate's own assertions about the reported cases.
fn gate_cases(cases: &[CaseResult], gate: &Gate) -> Vec<CaseResult> {
    let mut out = Vec::new();
    let reported = cases.len();
    let skips = cases
        .iter()
        .filter(|c| matches!(c.status, CaseStatus::Skipped { .. }))
        .count();
    if reported < gate.min_cases {
        out.push(CaseResult::failed(
            "gate.min-cases",
            FailureKind::Assertion,
            format!(
                "{reported} cases reported, the gate needs at least {}",
                gate.min_cases
            ),
        ));
    }
    if skips > gate.max_skips {
        out.push(CaseResult::failed(
            "gate.max-skips",
            FailureKind::Assertion,
            format!("{skips} cases skipped, the gate allows {}", gate.max_skips),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::ktap::KtapParser;

    fn ktap(lines: &str, abort: Option<(FailureKind, &str)>) -> KtapOutcome {
        let mut p = KtapParser::new();
        for l in lines.lines() {
            p.feed(l);
        }
        p.finish(abort)
    }

    fn names(v: &Verdict) -> Vec<(&str, bool)> {
        v.cases
            .iter()
            .map(|c| (c.name.as_str(), c.status.is_bad()))
            .collect()
    }

    const GATE: Gate = Gate {
        min_cases: 60,
        max_skips: 0,
    };

    #[test]
    fn an_empty_plan_is_not_green() {
        let v = judge(
            Observed {
                end: &RunEnd::PoweredOff,
                ready: true,
                ktap: ktap("KTAP version 1\n1..0\n", None),
                crashes: &[],
            },
            Rules::LOG,
        );
        assert_eq!(names(&v), [("ktap", true)]);
        let v = judge(
            Observed {
                end: &RunEnd::PoweredOff,
                ready: true,
                ktap: ktap("hello\n", None),
                crashes: &[],
            },
            Rules::LOG,
        );
        assert_eq!(names(&v), [("ktap", true)]);
        // An installer phase only has to power off: no KTAP is no failure there.
        let installer = Rules {
            ktap_required: false,
            ..Rules::LOG
        };
        let v = judge(
            Observed {
                end: &RunEnd::PoweredOff,
                ready: true,
                ktap: ktap("Installing bash (1/300)\n", None),
                crashes: &[],
            },
            installer,
        );
        assert!(v.cases.is_empty() && !v.boot.status.is_bad(), "{v:?}");
        let v = judge(
            Observed {
                end: &RunEnd::PoweredOff,
                ready: true,
                ktap: ktap("KTAP version 1\n1..1\nok 1 a\n", None),
                crashes: &[],
            },
            Rules::LOG,
        );
        assert_eq!(names(&v), [("a", false)]);
    }

    #[test]
    fn stopping_at_ready_is_green_only_when_asked_for() {
        let at_ready = |until| {
            judge(
                Observed {
                    end: &RunEnd::StoppedAtReady,
                    ready: true,
                    ktap: ktap("", None),
                    crashes: &[],
                },
                Rules {
                    until,
                    gate: None,
                    ktap_required: true,
                },
            )
        };
        assert!(at_ready(RunUntil::Ready).cases.is_empty());
        assert_eq!(names(&at_ready(RunUntil::Poweroff)), [("run", true)]);
    }

    #[test]
    fn an_interrupted_gate_judges_no_gate_assertion() {
        let end = RunEnd::Interrupted;
        let rules = Rules {
            until: RunUntil::Poweroff,
            gate: Some(&GATE),
            ktap_required: true,
        };
        let v = judge(
            Observed {
                end: &end,
                ready: false,
                ktap: ktap("", Some((FailureKind::Infra, "not reported: interrupted"))),
                crashes: &[],
            },
            rules,
        );
        assert!(v.boot.status.is_bad());
        assert!(v.cases.is_empty(), "{:?}", v.cases);
        // A run that ended by itself is held to the gate.
        let v = judge(
            Observed {
                end: &RunEnd::PoweredOff,
                ready: true,
                ktap: ktap("KTAP version 1\n1..1\nok 1 a # SKIP no\n", None),
                crashes: &[],
            },
            rules,
        );
        assert_eq!(
            names(&v),
            [
                ("a", false),
                ("gate.min-cases", true),
                ("gate.max-skips", true)
            ]
        );
    }
}
