//! Benchmark figures: the one KTAP diagnostic line a guest program reports a figure in,
//! its parser, and the per-run record (`bench.json`) the figures are kept in.
//!
//! The line is a KTAP diagnostic, so every KTAP consumer ignores it:
//!
//! ```text
//! # bench: NAME VALUE UNIT better=lower|higher
//! ```
//!
//! `NAME` is `[a-z0-9_.-]+` (unique within a run), `VALUE` a finite decimal, `UNIT` one
//! word (`ns/op`; under the icount clock a guest nanosecond is an instruction). Leading
//! whitespace (a subtest's indentation) is ignored. docs/bench.md is the reference.

use serde::{Deserialize, Serialize};

/// What starts a figure line (after indentation).
pub(crate) const PREFIX: &str = "# bench: ";

/// Which direction is an improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Better {
    /// A cost: smaller is better.
    Lower,
    /// A rate: larger is better.
    Higher,
}

impl Better {
    /// The spelling in the line and the JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
        }
    }
}

/// One reported figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Figure {
    /// Unique name within the run (`ring.getpid.b64`).
    pub name: String,
    /// The measurement.
    pub value: f64,
    /// Its unit as the program wrote it.
    pub unit: String,
    /// Which direction is better.
    pub better: Better,
}

/// Parses one console line: `None` if it is not a figure line at all, `Some(Err)` if it
/// starts like one but is malformed (a typo must not silently drop a figure).
pub(crate) fn parse_line(line: &str) -> Option<Result<Figure, String>> {
    let rest = line.trim_start().strip_prefix(PREFIX)?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let [name, value, unit, better] = words[..] else {
        return Some(Err(format!(
            "expected `{PREFIX}NAME VALUE UNIT better=lower|higher`, got {:?}",
            line.trim()
        )));
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
    {
        return Some(Err(format!(
            "invalid figure name {name:?} (use [a-z0-9_.-])"
        )));
    }
    let value = match value.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => return Some(Err(format!("{name}: invalid value {value:?}"))),
    };
    let better = match better {
        "better=lower" => Better::Lower,
        "better=higher" => Better::Higher,
        other => {
            return Some(Err(format!(
                "{name}: expected better=lower or better=higher, got {other:?}"
            )));
        }
    };
    Some(Ok(Figure {
        name: name.to_string(),
        value,
        unit: unit.to_string(),
        better,
    }))
}

/// Every figure in a console transcript, and what was wrong with the malformed or
/// duplicated ones.
pub(crate) fn scan(console: &str) -> (Vec<Figure>, Vec<String>) {
    let mut figures: Vec<Figure> = Vec::new();
    let mut problems = Vec::new();
    for line in console.lines() {
        match parse_line(line) {
            None => {}
            Some(Err(p)) => problems.push(p),
            Some(Ok(f)) if figures.iter().any(|g| g.name == f.name) => {
                problems.push(format!("{}: reported twice; the first is kept", f.name));
            }
            Some(Ok(f)) => figures.push(f),
        }
    }
    (figures, problems)
}

/// What one scenario run measured and on what: the `bench.json` in its run directory,
/// and the unit `xsc-release bench` compares with the baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BenchRun {
    /// Scenario name.
    pub scenario: String,
    /// `icount` (figures are instruction counts) or `host` (wall time).
    pub clock: String,
    /// `qemu --version`'s version.
    pub qemu_version: String,
    /// The `-cpu` model.
    pub cpu_model: String,
    /// The XSC kernel's cache key, if the run booted one.
    pub kernel_key: Option<String>,
    /// The XSC glibc's cache key, if a program linked it.
    pub glibc_key: Option<String>,
    /// The initramfs (init + the bench programs as compiled).
    pub initrd_sha256: Option<String>,
    /// The figures, in the order reported.
    pub figures: Vec<Figure>,
    /// Malformed or duplicated figure lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl BenchRun {
    /// The record of a run from its properties (as JUnit has them) and its console.
    pub(crate) fn new(scenario: &str, properties: &[(String, String)], console: &str) -> Self {
        let prop = |k: &str| {
            properties
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let (figures, problems) = scan(console);
        BenchRun {
            scenario: scenario.to_string(),
            clock: prop("clock").unwrap_or_else(|| "host".into()),
            qemu_version: prop("qemu.version").unwrap_or_else(|| "unknown".into()),
            cpu_model: prop("cpu.model").unwrap_or_else(|| "unknown".into()),
            kernel_key: prop("kernel.key"),
            glibc_key: prop("glibc.key"),
            initrd_sha256: prop("initrd.sha256"),
            figures,
            problems,
        }
    }

    /// The JUnit properties of the figures: `bench.NAME` = `VALUE UNIT better=…`.
    pub(crate) fn properties(&self) -> Vec<(String, String)> {
        self.figures
            .iter()
            .map(|f| {
                (
                    format!("bench.{}", f.name),
                    format!("{} {} better={}", f.value, f.unit, f.better.as_str()),
                )
            })
            .collect()
    }

    /// A figure by name.
    pub(crate) fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }
}

/// The unit a figure is shown in: under the icount clock a guest nanosecond is one guest
/// instruction (`shift=0`), so `ns/…` reads as `instr/…`.
pub(crate) fn display_unit(unit: &str, clock: &str) -> String {
    match (clock, unit.strip_prefix("ns")) {
        ("icount", Some(rest)) => format!("instr{rest}"),
        _ => unit.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_line_inside_a_subtest() {
        assert_eq!(
            parse_line("  # bench: ring.nop.b64 188.3 ns/op better=lower"),
            Some(Ok(Figure {
                name: "ring.nop.b64".into(),
                value: 188.3,
                unit: "ns/op".into(),
                better: Better::Lower,
            }))
        );
        let f = parse_line("# bench: ops_per_s 1e6 op/s better=higher")
            .unwrap()
            .unwrap();
        assert_eq!((f.value, f.better), (1e6, Better::Higher));
    }

    #[test]
    fn other_lines_are_not_figures() {
        for l in [
            "ok 1 nop",
            "# ratio nop batch=64 direct/ring=1.20x",
            "# benchmark: x 1 ns better=lower",
            "[    0.1] # bench: x 1 ns better=lower",
            "",
        ] {
            assert_eq!(parse_line(l), None, "{l:?}");
        }
    }

    #[test]
    fn malformed_figure_lines_are_problems() {
        for (l, why) in [
            ("# bench: x 1 ns", "expected `# bench: NAME"),
            (
                "# bench: x 1 ns better=lower extra",
                "expected `# bench: NAME",
            ),
            ("# bench: Ring.Nop 1 ns better=lower", "invalid figure name"),
            (
                "# bench: x fast ns better=lower",
                "x: invalid value \"fast\"",
            ),
            ("# bench: x NaN ns better=lower", "invalid value"),
            ("# bench: x inf ns better=lower", "invalid value"),
            ("# bench: x 1 ns better=less", "expected better=lower or"),
        ] {
            let e = parse_line(l).unwrap().unwrap_err();
            assert!(e.contains(why), "{l:?}: {e}");
        }
    }

    #[test]
    fn scan_keeps_the_first_of_a_duplicate_and_says_so() {
        let (f, p) = scan(
            "boot noise\n  # bench: a 1 ns/op better=lower\n  # bench: b 2 ns/op better=lower\n\
             # bench: a 3 ns/op better=lower\n# bench: broken\n",
        );
        assert_eq!(
            f.iter()
                .map(|f| (f.name.as_str(), f.value))
                .collect::<Vec<_>>(),
            [("a", 1.0), ("b", 2.0)]
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("a: reported twice"));
    }

    #[test]
    fn a_run_record_carries_what_it_was_measured_on() {
        let props = vec![
            ("clock".to_string(), "icount".to_string()),
            ("qemu.version".to_string(), "7.2.22".to_string()),
            ("cpu.model".to_string(), "Nehalem-v1".to_string()),
            ("kernel.key".to_string(), "abc".to_string()),
        ];
        let r = BenchRun::new(
            "s",
            &props,
            "  # bench: ring.nop.b1 715.0 ns/op better=lower\n",
        );
        assert_eq!(
            (
                r.clock.as_str(),
                r.cpu_model.as_str(),
                r.kernel_key.as_deref()
            ),
            ("icount", "Nehalem-v1", Some("abc"))
        );
        assert_eq!(r.glibc_key, None);
        assert_eq!(
            r.properties(),
            [(
                "bench.ring.nop.b1".to_string(),
                "715 ns/op better=lower".to_string()
            )]
        );
        let back: BenchRun = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn icount_nanoseconds_are_instructions() {
        assert_eq!(display_unit("ns/op", "icount"), "instr/op");
        assert_eq!(display_unit("ns/op", "host"), "ns/op");
        assert_eq!(display_unit("op/s", "icount"), "op/s");
    }
}
