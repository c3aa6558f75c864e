//! Streaming KTAP v1 parser: turns the guest's console into [`CaseResult`]s, one per leaf test,
//! plus the synthetic cases that keep a broken run from looking green (a parent that failed on
//! its own, planned tests that never reported, suites cut off by a crash).
//!
//! Two KTAP streams share the console and are parsed independently, so they can interleave:
//! - the *user* stream: lines without a printk prefix, printed by the guest PID 1, which wraps
//!   each guest program as a top-level test and indents the program's own KTAP;
//! - the *kernel* stream: printk lines (`[    1.234567] …`) with the prefix removed, where
//!   in-kernel KUnit prints its KTAP among unrelated kernel messages.
//!
//! Nesting is read from indentation relative to the enclosing block (KTAP says two spaces per
//! level, KUnit uses four; both work), so a missing `KTAP version` line in a subtest is fine.
//! Also accepted: `TAP version 13/14`, the TAP13/KUnit `# Subtest: name` header (before or
//! after the version line, at the parent's or the child's indentation), a plan at the end,
//! kselftest's `ok N # SKIP msg` order, and `Bail out!`. Unknown lines are ignored, as KTAP
//! requires, except that indented ones inside a subtest are kept as diagnostics.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::observe::crash::{clean_console_line, split_printk};
use crate::observe::verdict::{CaseResult, CaseStatus, FailureKind};

/// What a finished parse produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KtapOutcome {
    /// Leaf cases and synthetic ones, in console order; names are unique.
    pub cases: Vec<CaseResult>,
    /// True if any `KTAP version`/`TAP version` line was seen.
    pub saw_ktap: bool,
    /// Protocol problems worth a warning: duplicate or out-of-order numbers, plan mismatches,
    /// results after `Bail out!`, renamed duplicates.
    pub problems: Vec<String>,
}

/// Streaming parser; feed console lines, then [`KtapParser::finish`].
#[derive(Debug, Default)]
pub(crate) struct KtapParser {
    user: Stream,
    kernel: Stream,
    /// Finished documents: (start order, cases), merged by start order in `finish`.
    closed: Vec<(u64, Vec<CaseResult>)>,
    next_doc: u64,
    problems: Vec<String>,
}

impl KtapParser {
    /// An empty parser.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// One console line without its terminator. May hold CR, ANSI escapes, binary garbage, and
    /// kernel printk lines interleaved (e.g. `[    1.234567] random: crng init done`).
    pub(crate) fn feed(&mut self, line: &str) {
        let cleaned = clean_console_line(line);
        let mut sink = Sink {
            closed: &mut self.closed,
            next_doc: &mut self.next_doc,
            problems: &mut self.problems,
        };
        match split_printk(&cleaned) {
            Some((_, msg)) => self.kernel.feed(msg, &mut sink),
            None => self.user.feed(&cleaned, &mut sink),
        }
    }

    /// True once a top-level result line has been seen for every planned top-level test of the
    /// guest's own (user-stream) KTAP, or it bailed out. Kernel KUnit output does not count: it
    /// runs during boot, long before the guest programs are done.
    #[cfg(test)]
    pub(crate) fn complete(&self) -> bool {
        match self.user.levels.first() {
            Some(root) => {
                self.user.levels.len() == 1
                    && (root.bailed.is_some() || root.plan.is_some_and(|n| root.numbers.len() >= n))
            }
            None => self.user.finished_docs > 0,
        }
    }

    /// Finish. `abort` = `Some((kind, reason))` when the run ended abnormally (crash, timeout,
    /// QEMU died): every planned-but-unreported case and every open suite becomes
    /// [`CaseStatus::Errored`] with that kind and reason, never silently passed. Without an
    /// abort, the same cases are still errored (kind `Assertion`): the output was incomplete.
    pub(crate) fn finish(mut self, abort: Option<(FailureKind, &str)>) -> KtapOutcome {
        let saw_ktap = self.user.saw_ktap || self.kernel.saw_ktap;
        let why = match abort {
            Some((kind, reason)) => End {
                kind,
                reason: reason.to_string(),
                aborted: true,
            },
            None => End {
                kind: FailureKind::Assertion,
                reason: "the KTAP output ended before this test reported a result".into(),
                aborted: false,
            },
        };
        let mut sink = Sink {
            closed: &mut self.closed,
            next_doc: &mut self.next_doc,
            problems: &mut self.problems,
        };
        self.kernel.close_document(&why, &mut sink);
        self.user.close_document(&why, &mut sink);
        self.closed.sort_by_key(|(seq, _)| *seq);
        let mut cases: Vec<CaseResult> = self.closed.into_iter().flat_map(|(_, c)| c).collect();
        dedupe_names(&mut cases, &mut self.problems);
        KtapOutcome {
            cases,
            saw_ktap,
            problems: self.problems,
        }
    }
}

/// Where a stream puts finished documents and problems (borrowed from the parser so the two
/// streams can share them).
struct Sink<'a> {
    closed: &'a mut Vec<(u64, Vec<CaseResult>)>,
    next_doc: &'a mut u64,
    problems: &'a mut Vec<String>,
}

/// Why open suites and unreported tests are being closed.
struct End {
    kind: FailureKind,
    reason: String,
    /// True when the run itself ended abnormally (not just a KTAP protocol gap).
    aborted: bool,
}

/// Keep at most this many diagnostic lines per case, the last ones (closest to the failure).
const MAX_DIAGNOSTICS: usize = 200;

/// One KTAP document on one stream.
#[derive(Debug, Default)]
struct Stream {
    /// The open blocks, outermost first; empty outside a document.
    levels: Vec<Level>,
    /// Start order of the open document.
    doc_seq: u64,
    saw_ktap: bool,
    finished_docs: usize,
}

/// One open block: a document or a subtest whose result line has not come yet.
#[derive(Debug, Default)]
struct Level {
    indent: usize,
    /// Named by a `# Subtest:` header.
    name: Option<String>,
    /// A `# Subtest:` at this block's own indentation names the *next* child (TAP13 style).
    next_child_name: Option<String>,
    has_version: bool,
    plan: Option<usize>,
    numbers: HashSet<u32>,
    last_number: u32,
    /// Results so far, names relative to this block.
    cases: Vec<CaseResult>,
    /// Diagnostics waiting for the next result line.
    pending: Vec<String>,
    /// The last case a result line produced directly (leaf or parent's own case): target for a
    /// later `# name: …` diagnostic.
    last_case: Option<(String, usize)>,
    /// True if the last direct case failed and no diagnostic after it has been attached yet.
    last_case_bad_undescribed: bool,
    bailed: Option<String>,
    /// Some case here came from a bad result line (not from a synthetic missing-test case).
    any_bad_result: bool,
}

impl Level {
    fn new(indent: usize) -> Self {
        Level {
            indent,
            ..Level::default()
        }
    }

    fn fresh(&self) -> bool {
        self.plan.is_none() && self.numbers.is_empty() && self.cases.is_empty()
    }
}

/// A parsed line.
enum Line<'a> {
    Version,
    Plan(usize),
    Result(ResultLine<'a>),
    Subtest(&'a str),
    Diag(&'a str),
    Bail(&'a str),
    Other(&'a str),
}

struct ResultLine<'a> {
    ok: bool,
    number: u32,
    name: &'a str,
    /// Text after `#`, if any.
    directive: Option<&'a str>,
}

static VERSION_RE: LazyLock<Regex> = LazyLock::new(|| re(r"^K?TAP version \d+$"));
static PLAN_RE: LazyLock<Regex> = LazyLock::new(|| re(r"^1\.\.(\d+)(?:\s*#.*)?$"));
static RESULT_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(ok|not ok)\s+(\d+)\b\s*(?:-\s+)?([^#]*?)\s*(?:#\s*(.*?))?\s*$"));
static SUBTEST_RE: LazyLock<Regex> = LazyLock::new(|| re(r"^#\s*Subtest:\s*(.*?)\s*$"));

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("invariant: KTAP regexes are valid literals")
}

fn parse_line(body: &str) -> Line<'_> {
    if VERSION_RE.is_match(body) {
        return Line::Version;
    }
    if let Some(c) = PLAN_RE.captures(body) {
        if let Ok(n) = c[1].parse() {
            return Line::Plan(n);
        }
    }
    if let Some(c) = RESULT_RE.captures(body) {
        let number = c[2].parse().ok();
        if let (Some(number), Some(name)) = (number, c.get(3)) {
            return Line::Result(ResultLine {
                ok: &c[1] == "ok",
                number,
                name: name.as_str(),
                directive: c.get(4).map(|m| m.as_str()),
            });
        }
    }
    if let Some(c) = SUBTEST_RE.captures(body) {
        if let Some(m) = c.get(1) {
            return Line::Subtest(m.as_str());
        }
    }
    if let Some(rest) = body.strip_prefix('#') {
        return Line::Diag(rest.strip_prefix(' ').unwrap_or(rest));
    }
    if let Some(rest) = body.strip_prefix("Bail out!") {
        return Line::Bail(rest.trim());
    }
    Line::Other(body)
}

/// What a result line says about its own test (children aside).
struct Verdict {
    status: CaseStatus,
    /// For expected failures: shown although the case passed.
    note: Option<String>,
}

fn verdict(r: &ResultLine<'_>) -> Verdict {
    let text = r.directive.unwrap_or("").trim();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim();
    let word = word.to_ascii_uppercase();
    let or = |s: &str, default: &str| {
        if s.is_empty() {
            default.to_string()
        } else {
            s.to_string()
        }
    };
    let plain = |status| Verdict { status, note: None };
    if word.starts_with("SKIP") {
        return plain(CaseStatus::Skipped {
            reason: or(rest, "skipped"),
        });
    }
    if word == "TODO" || word == "XFAIL" {
        let note = if r.ok {
            format!(
                "{word} test passed unexpectedly: {}",
                or(rest, "no reason given")
            )
        } else {
            format!("expected failure ({word}): {}", or(rest, "no reason given"))
        };
        return Verdict {
            status: CaseStatus::Passed,
            note: Some(note),
        };
    }
    if r.ok {
        return plain(CaseStatus::Passed);
    }
    let status = match word.as_str() {
        "TIMEOUT" => CaseStatus::Failed {
            kind: FailureKind::Timeout,
            message: text.to_string(),
        },
        "ERROR" => CaseStatus::Errored {
            kind: FailureKind::Assertion,
            message: text.to_string(),
        },
        _ if text.is_empty() => CaseStatus::Failed {
            kind: FailureKind::Assertion,
            message: "not ok".into(),
        },
        _ => CaseStatus::Failed {
            kind: kind_from_message(text),
            message: text.to_string(),
        },
    };
    plain(status)
}

/// The wrapper reports `exit=N` for a program that failed and `signal=N` for one that was
/// killed; a killed test program is a crash (a segfault is what glibc regressions look like).
fn kind_from_message(text: &str) -> FailureKind {
    static SIGNAL_RE: LazyLock<Regex> =
        LazyLock::new(|| re(r"\bsignal[= ]|\bSIG[A-Z]{2,}\b|\bkilled by\b"));
    if SIGNAL_RE.is_match(text) {
        FailureKind::Crash
    } else {
        FailureKind::Assertion
    }
}

fn push_capped(diags: &mut Vec<String>, line: String) {
    diags.push(line);
    if diags.len() > MAX_DIAGNOSTICS {
        let excess = diags.len() - MAX_DIAGNOSTICS;
        diags.drain(..excess);
    }
}

impl Stream {
    fn feed(&mut self, text: &str, sink: &mut Sink<'_>) {
        let body = text.trim_start();
        if body.is_empty() {
            return;
        }
        let indent = text.len() - body.len();
        let line = parse_line(body);

        if self.levels.is_empty() {
            // Outside a document only a version line matters; everything else is console noise.
            if matches!(line, Line::Version) {
                self.start_document(indent, sink);
            }
            return;
        }

        let inner = self.levels.len() - 1;
        let target = self.target(indent);
        // A version line at the root's indentation after results starts the next document.
        if matches!(line, Line::Version)
            && indent <= self.levels[0].indent
            && (!self.levels[0].fresh() || self.levels[0].bailed.is_some())
        {
            let end = End {
                kind: FailureKind::Assertion,
                reason: "a new KTAP document began before this test reported a result".into(),
                aborted: false,
            };
            self.close_document(&end, sink);
            self.start_document(indent, sink);
            return;
        }
        if let Some(b) = self.levels[..=target]
            .iter()
            .position(|l| l.bailed.is_some())
        {
            // Lines belonging to a bailed-out block are void; the parent's result still counts.
            let closes = matches!(line, Line::Result(_)) && indent < self.levels[b].indent;
            if !closes {
                if matches!(line, Line::Result(_)) {
                    sink.problems
                        .push(format!("result line after Bail out!: {body:?}"));
                }
                return;
            }
        }

        let deeper = indent > self.levels[inner].indent;
        match line {
            Line::Version => {
                if deeper {
                    self.open_child(indent);
                    self.top().has_version = true;
                } else {
                    self.orphan_deeper_than(target, sink);
                    let level = self.top();
                    if level.fresh() && !level.has_version {
                        level.has_version = true;
                    } else if !level.fresh() {
                        sink.problems
                            .push(format!("unexpected {body:?} inside a subtest"));
                    }
                }
            }
            Line::Subtest(name) => {
                if deeper {
                    self.open_child(indent);
                    self.top().name = Some(name.to_string());
                } else {
                    self.orphan_deeper_than(target, sink);
                    let is_root = self.levels.len() == 1;
                    let level = self.top();
                    if level.fresh() && level.name.is_none() && !is_root {
                        level.name = Some(name.to_string());
                    } else {
                        level.next_child_name = Some(name.to_string());
                    }
                }
            }
            Line::Plan(n) => {
                if deeper {
                    self.open_child(indent);
                } else {
                    self.orphan_deeper_than(target, sink);
                }
                let level = self.top();
                if level.plan.is_some() {
                    sink.problems.push(format!("second plan {body:?} ignored"));
                } else {
                    level.plan = Some(n);
                }
            }
            Line::Result(r) => {
                if deeper {
                    self.open_child(indent);
                    let t = self.levels.len() - 1;
                    self.record(t, &r, None, sink);
                } else {
                    // Blocks deeper than the target's child lost their result line.
                    self.orphan_deeper_than(target + 1, sink);
                    let child = if self.levels.len() > target + 1 {
                        self.levels.pop()
                    } else {
                        None
                    };
                    self.record(target, &r, child, sink);
                }
            }
            Line::Bail(reason) => {
                if deeper {
                    self.open_child(indent);
                } else {
                    self.orphan_deeper_than(target, sink);
                }
                let level = self.top();
                let reason = if reason.is_empty() {
                    "Bail out!".to_string()
                } else {
                    format!("Bail out! {reason}")
                };
                push_capped(&mut level.pending, reason.clone());
                level.bailed = Some(reason);
            }
            Line::Diag(text) => {
                if deeper {
                    self.open_child(indent);
                }
                let t = if deeper {
                    self.levels.len() - 1
                } else {
                    target
                };
                self.diagnostic(t, text);
            }
            Line::Other(text) => {
                // Inside a subtest, indented unknown lines are the program's own messages
                // (KUnit's `Expected … but` lines, a perror); at the root they are noise.
                if self.levels[target].indent > 0 && indent >= self.levels[target].indent {
                    let level = &mut self.levels[target];
                    push_capped(&mut level.pending, text.to_string());
                }
            }
        }
    }

    fn top(&mut self) -> &mut Level {
        self.levels
            .last_mut()
            .expect("invariant: called only while a document is open")
    }

    /// The deepest open block whose indentation is at most `indent` (the root if none).
    fn target(&self, indent: usize) -> usize {
        self.levels
            .iter()
            .rposition(|l| l.indent <= indent)
            .unwrap_or(0)
    }

    fn start_document(&mut self, indent: usize, sink: &mut Sink<'_>) {
        self.saw_ktap = true;
        self.doc_seq = *sink.next_doc;
        *sink.next_doc += 1;
        let mut root = Level::new(indent);
        root.has_version = true;
        self.levels.push(root);
    }

    fn open_child(&mut self, indent: usize) {
        let name = self.top().next_child_name.take();
        let mut child = Level::new(indent);
        child.name = name;
        self.levels.push(child);
    }

    /// A diagnostic naming the last case (`# write_basic: expected 5 got -14`) belongs to it;
    /// one right after a failing case also does; anything else waits for the next case.
    fn diagnostic(&mut self, t: usize, text: &str) {
        let level = &mut self.levels[t];
        if let Some((name, idx)) = &level.last_case {
            let names_it = text
                .strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with(':'));
            if names_it {
                let case = &mut level.cases[*idx];
                if case.status.is_bad() {
                    push_capped(&mut case.diagnostics, text.to_string());
                }
                return;
            }
        }
        push_capped(&mut level.pending, text.to_string());
    }

    /// Close every block deeper than index `keep` whose result line never came: each becomes an
    /// errored test of its parent.
    fn orphan_deeper_than(&mut self, keep: usize, sink: &mut Sink<'_>) {
        let end = End {
            kind: FailureKind::Assertion,
            reason: "the subtest ended without a result line".into(),
            aborted: false,
        };
        self.close_open(keep, &end, sink);
    }

    fn close_open(&mut self, keep: usize, end: &End, sink: &mut Sink<'_>) {
        while self.levels.len() > keep + 1 {
            let child = self.levels.pop().expect("invariant: len > keep + 1 >= 1");
            let parent = self.levels.len() - 1;
            let number = self.levels[parent].last_number + 1;
            let name = child
                .name
                .clone()
                .or_else(|| self.levels[parent].next_child_name.take());
            let name = name.unwrap_or_else(|| format!("#{number}"));
            if !end.aborted {
                sink.problems
                    .push(format!("subtest {name} has no result line"));
            }
            let status = CaseStatus::Errored {
                kind: end.kind,
                message: end.reason.clone(),
            };
            let r = ResultLine {
                ok: false,
                number,
                name: &name,
                directive: None,
            };
            self.record_with(
                parent,
                &r,
                Verdict { status, note: None },
                Some(child),
                true,
                sink,
            );
        }
    }

    /// Close the whole document: open blocks and unreported top-level tests become errored.
    fn close_document(&mut self, end: &End, sink: &mut Sink<'_>) {
        if self.levels.is_empty() {
            return;
        }
        self.close_open(0, end, sink);
        let root = self.levels.pop().expect("invariant: the root is open");
        // A bail-out is the program's own verdict, whatever ended the run later.
        let kind = if root.bailed.is_some() {
            FailureKind::Assertion
        } else {
            end.kind
        };
        let missing = missing_cases(&root, kind, |n| match &root.bailed {
            Some(bail) => format!("not run: {bail}"),
            None if end.aborted => end.reason.clone(),
            None => format!("planned (1..{n}) but never reported"),
        });
        if !missing.is_empty() && !end.aborted && root.bailed.is_none() {
            let n = root.plan.unwrap_or(0);
            sink.problems.push(format!(
                "plan mismatch: planned 1..{n}, {} reported",
                root.numbers.len()
            ));
        }
        let mut cases = root.cases;
        cases.extend(missing);
        sink.closed.push((self.doc_seq, cases));
        self.finished_docs += 1;
    }

    /// Record a result line as printed: its verdict comes from the line itself.
    fn record(&mut self, t: usize, r: &ResultLine<'_>, child: Option<Level>, sink: &mut Sink<'_>) {
        let v = verdict(r);
        self.record_with(t, r, v, child, false, sink);
    }

    /// Record a result line at block `t`, folding in its closed child block. `forced`: emit
    /// the parent's own case even if a child failed (an open suite cut off by the end).
    fn record_with(
        &mut self,
        t: usize,
        r: &ResultLine<'_>,
        v: Verdict,
        child: Option<Level>,
        forced: bool,
        sink: &mut Sink<'_>,
    ) {
        let level = &mut self.levels[t];
        if !level.numbers.insert(r.number) {
            sink.problems.push(format!(
                "duplicate result number {} ({:?})",
                r.number, r.name
            ));
        } else if r.number != level.last_number + 1 && !forced {
            sink.problems.push(format!(
                "result number {} ({:?}) out of order, expected {}",
                r.number,
                r.name,
                level.last_number + 1
            ));
        }
        level.last_number = level.last_number.max(r.number);
        let name = if r.name.is_empty() {
            format!("#{}", r.number)
        } else {
            r.name.to_string()
        };
        let Verdict { status, note } = v;

        let mut diagnostics = std::mem::take(&mut level.pending);
        // Diagnostics between a failing case and a passing one most likely explain the failure
        // (programs often print them after `not ok`).
        if !status.is_bad() && level.last_case_bad_undescribed && !diagnostics.is_empty() {
            if let Some((_, idx)) = &level.last_case {
                level.cases[*idx].diagnostics.append(&mut diagnostics);
            }
        }
        level.last_case_bad_undescribed = false;

        let (child_cases, child_bad, leftover) = match child {
            Some(c) => fold_child(c, &name, &status, sink),
            None => (Vec::new(), false, Vec::new()),
        };
        diagnostics.extend(leftover);
        let had_children = !child_cases.is_empty();
        level.cases.extend(child_cases);
        level.any_bad_result |= child_bad || status.is_bad();

        // A leaf; or a parent that failed on its own (timeout, crash, exit code) without any
        // failing child to show for it; or a suite cut off by the end of the run.
        if !had_children || forced || (status.is_bad() && !child_bad) {
            let bad = status.is_bad();
            let mut case = CaseResult {
                name: name.clone(),
                status,
                diagnostics: Vec::new(),
            };
            if bad {
                case.diagnostics = diagnostics;
            } else if let Some(note) = note {
                case.diagnostics = vec![note];
            }
            level.last_case_bad_undescribed = bad && case.diagnostics.is_empty();
            level.cases.push(case);
            level.last_case = Some((name, level.cases.len() - 1));
        } else {
            level.last_case = None;
        }
    }
}

/// Turn a closed child block into cases named under `parent`. Returns the cases, whether any
/// came from a bad result line, and diagnostics left over for the parent's own case.
fn fold_child(
    mut child: Level,
    parent: &str,
    parent_status: &CaseStatus,
    sink: &mut Sink<'_>,
) -> (Vec<CaseResult>, bool, Vec<String>) {
    let (kind, why) = match parent_status {
        CaseStatus::Failed { kind, message } | CaseStatus::Errored { kind, message } => (
            *kind,
            format!("not reported before {parent} ended: {message}"),
        ),
        _ => (FailureKind::Assertion, String::new()),
    };
    let kind = if child.bailed.is_some() {
        FailureKind::Assertion
    } else {
        kind
    };
    let missing = missing_cases(&child, kind, |n| match &child.bailed {
        Some(bail) => format!("not run: {bail}"),
        None if !why.is_empty() => why.clone(),
        None => format!("planned (1..{n}) but never reported"),
    });
    if !missing.is_empty() && child.bailed.is_none() {
        let n = child.plan.unwrap_or(0);
        sink.problems.push(format!(
            "plan mismatch in {parent}: planned 1..{n}, {} reported",
            child.numbers.len()
        ));
    }
    if let Some(n) = child.plan {
        if child.numbers.len() > n {
            sink.problems.push(format!(
                "plan mismatch in {parent}: planned 1..{n}, {} reported",
                child.numbers.len()
            ));
        }
    }
    let mut leftover = std::mem::take(&mut child.pending);
    if let Some(last) = child.cases.last_mut() {
        // Trailing diagnostics of a block describe its last case if that one failed.
        if last.status.is_bad() {
            last.diagnostics.append(&mut leftover);
        }
        leftover.clear();
    }
    // A bail-out explains the parent's own failure too.
    if let Some(bail) = &child.bailed {
        leftover.push(bail.clone());
    }
    let mut cases = child.cases;
    cases.extend(missing);
    for c in &mut cases {
        c.name = format!("{parent}.{}", c.name);
    }
    (cases, child.any_bad_result, leftover)
}

/// Errored cases `#N` for each planned number that never reported.
fn missing_cases(
    level: &Level,
    kind: FailureKind,
    message: impl Fn(usize) -> String,
) -> Vec<CaseResult> {
    let Some(n) = level.plan else {
        return Vec::new();
    };
    (1..=n)
        .filter(|k| u32::try_from(*k).is_ok_and(|k| !level.numbers.contains(&k)))
        .map(|k| CaseResult::errored(format!("#{k}"), kind, message(n)))
        .collect()
}

/// Make names unique: a repeated name gets `#2`, `#3` … (GitLab keeps only the first of equal
/// names, so a duplicate would hide a result).
fn dedupe_names(cases: &mut [CaseResult], problems: &mut Vec<String>) {
    let mut seen: HashSet<String> = HashSet::new();
    for case in cases.iter_mut() {
        if seen.insert(case.name.clone()) {
            continue;
        }
        let mut k = 2;
        let unique = loop {
            let candidate = format!("{}#{k}", case.name);
            if !seen.contains(&candidate) {
                break candidate;
            }
            k += 1;
        };
        problems.push(format!(
            "duplicate test name {:?} reported as {unique:?}",
            case.name
        ));
        seen.insert(unique.clone());
        case.name = unique;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, abort: Option<(FailureKind, &str)>) -> KtapOutcome {
        let mut p = KtapParser::new();
        for line in text.lines() {
            p.feed(line);
        }
        p.finish(abort)
    }

    /// (name, short status) for compact assertions.
    fn summary(o: &KtapOutcome) -> Vec<(String, String)> {
        o.cases
            .iter()
            .map(|c| (c.name.clone(), short(&c.status)))
            .collect()
    }

    fn short(s: &CaseStatus) -> String {
        match s {
            CaseStatus::Passed => "pass".into(),
            CaseStatus::Skipped { .. } => "skip".into(),
            CaseStatus::Failed { kind, .. } => format!("fail:{}", kind.as_str()),
            CaseStatus::Errored { kind, .. } => format!("error:{}", kind.as_str()),
        }
    }

    fn expect(o: &KtapOutcome, want: &[(&str, &str)]) {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        assert_eq!(summary(o), want, "problems: {:?}", o.problems);
    }

    fn case<'a>(o: &'a KtapOutcome, name: &str) -> &'a CaseResult {
        o.cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name} in {:?}", summary(o)))
    }

    fn message(c: &CaseResult) -> &str {
        match &c.status {
            CaseStatus::Failed { message, .. } | CaseStatus::Errored { message, .. } => message,
            CaseStatus::Skipped { reason } => reason,
            CaseStatus::Passed => "",
        }
    }

    const BRIEF: &str = "\
KTAP version 1
1..2
  KTAP version 1
  1..2
    KTAP version 1
    1..3
    ok 1 read_basic
    not ok 2 write_basic
    # write_basic: expected 5 got -14
    ok 3 lseek # SKIP no big files
  ok 1 fs
  ok 2 timer
ok 1 xsc_ring_test
  KTAP version 1
  1..1
not ok 2 fault # TIMEOUT after 3s";

    const BRIEF_EXPECTED: &[(&str, &str)] = &[
        ("xsc_ring_test.fs.read_basic", "pass"),
        ("xsc_ring_test.fs.write_basic", "fail:assertion"),
        ("xsc_ring_test.fs.lseek", "skip"),
        ("xsc_ring_test.timer", "pass"),
        ("fault.#1", "error:timeout"),
        ("fault", "fail:timeout"),
    ];

    #[test]
    fn nested_example_from_the_design() {
        let o = parse(BRIEF, None);
        assert!(o.saw_ktap);
        expect(&o, BRIEF_EXPECTED);
        assert_eq!(
            case(&o, "xsc_ring_test.fs.write_basic").diagnostics,
            vec!["write_basic: expected 5 got -14"]
        );
        assert_eq!(message(case(&o, "xsc_ring_test.fs.lseek")), "no big files");
        assert_eq!(message(case(&o, "fault")), "TIMEOUT after 3s");
        assert_eq!(
            message(case(&o, "fault.#1")),
            "not reported before fault ended: TIMEOUT after 3s"
        );
        // Passing cases carry no diagnostics.
        assert!(
            case(&o, "xsc_ring_test.fs.read_basic")
                .diagnostics
                .is_empty()
        );
    }

    #[test]
    fn complete_tracks_the_top_level_plan() {
        let mut p = KtapParser::new();
        assert!(!p.complete());
        let lines: Vec<&str> = BRIEF.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            p.feed(line);
            assert_eq!(p.complete(), i == lines.len() - 1, "after line {i}: {line}");
        }
        // The abort is ignored for a finished document: nothing is left to error.
        let o = p.finish(Some((FailureKind::Crash, "kernel panic")));
        expect(&o, BRIEF_EXPECTED);
    }

    #[test]
    fn interleaved_printk_crlf_ansi_and_garbage() {
        let mut text = String::new();
        for (i, line) in BRIEF.lines().enumerate() {
            text.push_str(&format!("[    {i}.{i:06}] random: noise line {i}\r\n"));
            text.push_str(&format!("\x1b[0m{line}\x1b[K\r\r\n"));
            text.push_str("\u{fffd}\u{fffd}\x00\x07\x1b[2J\r\n");
        }
        let o = parse(&text, None);
        expect(&o, BRIEF_EXPECTED);
        assert!(
            o.problems.iter().all(|p| !p.contains("duplicate")),
            "{:?}",
            o.problems
        );
    }

    #[test]
    fn indented_printk_noise_inside_a_subtest_is_not_a_diagnostic() {
        let text = "\
KTAP version 1
1..1
  KTAP version 1
  1..1
[    1.0] xsc: ring 3 created
  not ok 1 a
ok 1 prog";
        let o = parse(text, None);
        expect(&o, &[("prog.a", "fail:assertion")]);
        assert!(case(&o, "prog.a").diagnostics.is_empty());
    }

    #[test]
    fn truncated_mid_suite_with_abort() {
        let text = "\
KTAP version 1
1..2
  KTAP version 1
  1..3
  ok 1 a
  not ok 2 b";
        let o = parse(
            text,
            Some((FailureKind::Crash, "kernel panic: Fatal exception")),
        );
        expect(
            &o,
            &[
                ("#1.a", "pass"),
                ("#1.b", "fail:assertion"),
                ("#1.#3", "error:crash"),
                ("#1", "error:crash"),
                ("#2", "error:crash"),
            ],
        );
        assert_eq!(message(case(&o, "#1")), "kernel panic: Fatal exception");
        assert_eq!(message(case(&o, "#2")), "kernel panic: Fatal exception");
        assert_eq!(
            message(case(&o, "#1.#3")),
            "not reported before #1 ended: kernel panic: Fatal exception"
        );
    }

    #[test]
    fn truncated_without_abort_is_still_errored() {
        let text = "KTAP version 1\n1..3\nok 1 a\n";
        let o = parse(text, None);
        expect(
            &o,
            &[
                ("a", "pass"),
                ("#2", "error:assertion"),
                ("#3", "error:assertion"),
            ],
        );
        assert!(
            o.problems.iter().any(|p| p.contains("plan mismatch")),
            "{:?}",
            o.problems
        );
    }

    #[test]
    fn timeout_abort_names_open_suite_from_subtest_header() {
        let text = "\
KTAP version 1
1..1
# Subtest: xsc_ring_test
  KTAP version 1
  1..2
  ok 1 a";
        let mut p = KtapParser::new();
        for l in text.lines() {
            p.feed(l);
        }
        assert!(!p.complete());
        let o = p.finish(Some((
            FailureKind::Timeout,
            "test timeout: the guest program ran past 30s",
        )));
        expect(
            &o,
            &[
                ("xsc_ring_test.a", "pass"),
                ("xsc_ring_test.#2", "error:timeout"),
                ("xsc_ring_test", "error:timeout"),
            ],
        );
    }

    #[test]
    fn missing_plans_are_allowed() {
        let text = "\
KTAP version 1
  KTAP version 1
  ok 1 a
  ok 2 b
ok 1 prog
ok 2 other";
        let mut p = KtapParser::new();
        for l in text.lines() {
            p.feed(l);
        }
        // Without a top-level plan the parser cannot know the guest is done.
        assert!(!p.complete());
        let o = p.finish(None);
        expect(
            &o,
            &[("prog.a", "pass"), ("prog.b", "pass"), ("other", "pass")],
        );
        assert!(o.problems.is_empty(), "{:?}", o.problems);
    }

    #[test]
    fn trailing_plan() {
        let o = parse("TAP version 13\nok 1 a\nnot ok 2 b\n1..2\n", None);
        expect(&o, &[("a", "pass"), ("b", "fail:assertion")]);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
    }

    #[test]
    fn directives() {
        let text = "\
KTAP version 1
1..10
ok 1 plain # rcode=0
ok 2 skipped # SKIP no /dev/xsc
not ok 3 skipped_not_ok # skip not supported here
not ok 4 todo # TODO known bug 17
ok 5 xpass # TODO fixed already
not ok 6 xfail # XFAIL broken on TCG
not ok 7 slow # TIMEOUT 30 seconds
not ok 8 broken # ERROR could not mmap ring
not ok 9 died # signal=11
not ok 10 bare";
        let o = parse(text, None);
        expect(
            &o,
            &[
                ("plain", "pass"),
                ("skipped", "skip"),
                ("skipped_not_ok", "skip"),
                ("todo", "pass"),
                ("xpass", "pass"),
                ("xfail", "pass"),
                ("slow", "fail:timeout"),
                ("broken", "error:assertion"),
                ("died", "fail:crash"),
                ("bare", "fail:assertion"),
            ],
        );
        assert_eq!(message(case(&o, "skipped")), "no /dev/xsc");
        assert_eq!(
            case(&o, "todo").diagnostics,
            vec!["expected failure (TODO): known bug 17"]
        );
        assert_eq!(
            case(&o, "xpass").diagnostics,
            vec!["TODO test passed unexpectedly: fixed already"]
        );
        assert_eq!(message(case(&o, "slow")), "TIMEOUT 30 seconds");
        assert_eq!(message(case(&o, "broken")), "ERROR could not mmap ring");
        assert_eq!(message(case(&o, "died")), "signal=11");
        assert_eq!(message(case(&o, "bare")), "not ok");
    }

    #[test]
    fn parent_failure_kinds_from_the_wrapper() {
        let text = "\
KTAP version 1
1..3
  KTAP version 1
  1..1
  ok 1 a
not ok 1 exits # exit=1
  KTAP version 1
  1..1
  ok 1 a
not ok 2 segv # signal=11
  KTAP version 1
  1..1
  not ok 1 a
not ok 3 fails # exit=1";
        let o = parse(text, None);
        expect(
            &o,
            &[
                ("exits.a", "pass"),
                ("exits", "fail:assertion"),
                ("segv.a", "pass"),
                ("segv", "fail:crash"),
                // A failing child explains the parent: no extra case.
                ("fails.a", "fail:assertion"),
            ],
        );
    }

    #[test]
    fn tap13_subtest_form_kselftest() {
        let o = parse(
            include_str!("../../tests/fixtures/ktap/kselftest-tap13.log"),
            None,
        );
        expect(
            &o,
            &[
                ("xsc_guard.guard_errno", "pass"),
                ("xsc_guard.guard_sigsys", "fail:assertion"),
                ("xsc_guard.#3", "skip"),
                ("xsc_bench.bench_nop", "pass"),
                ("xsc_bench.bench_read", "pass"),
                ("xsc_bench", "fail:crash"),
                ("xsc_probe", "pass"),
            ],
        );
        assert_eq!(
            message(case(&o, "xsc_guard.#3")),
            "guard_ptrace: no CAP_SYS_PTRACE"
        );
        assert_eq!(
            case(&o, "xsc_guard.guard_sigsys").diagnostics,
            vec!["guard_sigsys: got signal 0, expected SIGSYS (31)"]
        );
        assert!(o.problems.is_empty(), "{:?}", o.problems);
    }

    #[test]
    fn subtest_header_before_version_line() {
        let text = "\
KTAP version 1
1..1
    # Subtest: suite
    KTAP version 1
    1..1
    not ok 1 t
not ok 1 suite";
        let mut p = KtapParser::new();
        for l in text.lines() {
            p.feed(l);
        }
        assert!(p.complete());
        let o = p.finish(None);
        expect(&o, &[("suite.t", "fail:assertion")]);
    }

    #[test]
    fn kernel_kunit_with_timestamps_and_user_stream() {
        let o = parse(
            include_str!("../../tests/fixtures/ktap/kunit-6.1.log"),
            None,
        );
        expect(
            &o,
            &[
                ("example.example_simple_test", "pass"),
                ("example.example_skip_test", "skip"),
                ("example.example_mark_skipped_test", "skip"),
                ("example.example_all_expect_macros_test", "pass"),
                ("example.example_params_test.example value 3", "skip"),
                ("example.example_params_test.example value 2", "pass"),
                ("example.example_params_test.example value 1", "pass"),
                ("example.example_params_test.example value 0", "skip"),
                ("xsc_abi.xsc_abi_struct_sizes", "pass"),
                ("xsc_abi.xsc_abi_ioctl_numbers", "fail:assertion"),
                ("xsc_abi.xsc_abi_version", "pass"),
                ("xsc_ring_test.probe", "pass"),
                ("xsc_ring_test.setup_defaults", "pass"),
            ],
        );
        assert_eq!(
            case(&o, "xsc_abi.xsc_abi_ioctl_numbers").diagnostics,
            vec![
                "xsc_abi_ioctl_numbers: EXPECTATION FAILED at drivers/xsc/xsc_abi_test.c:41",
                "Expected XSC_IOC_PROBE == 0x80507804, but",
                "XSC_IOC_PROBE == 2152757252 (0x80507904)",
                "0x80507804 == 2152757252 (0x80507804)",
            ]
        );
        assert!(o.problems.is_empty(), "{:?}", o.problems);
    }

    #[test]
    fn kernel_ktap_with_caller_ids_does_not_complete_the_guest() {
        let text = "\
[    0.39][    T1] KTAP version 1
[    0.39][    T1] 1..1
[    0.39][    T1]     KTAP version 1
[    0.39][    T1]     # Subtest: s
[    0.39][    T1]     1..1
[    0.39][    T1]     ok 1 t
[    0.39][    T1] ok 1 s";
        let mut p = KtapParser::new();
        for l in text.lines() {
            p.feed(l);
        }
        assert!(!p.complete(), "kernel KTAP must not end the guest's run");
        expect(&p.finish(None), &[("s.t", "pass")]);
    }

    #[test]
    fn printk_lines_never_feed_the_user_document() {
        let text = "\
KTAP version 1
1..2
[    1.0] ok 1 fake_from_kernel
[    1.1] not ok 2 fake_from_kernel
ok 1 real
ok 2 real2";
        let o = parse(text, None);
        expect(&o, &[("real", "pass"), ("real2", "pass")]);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
    }

    #[test]
    fn fixture_ring_test_nested() {
        let mut p = KtapParser::new();
        for l in include_str!("../../tests/fixtures/ktap/ring-test-nested.log").lines() {
            p.feed(l);
        }
        assert!(p.complete());
        expect(&p.finish(None), BRIEF_EXPECTED);
    }

    #[test]
    fn fixture_truncated_by_panic() {
        let o = parse(
            include_str!("../../tests/fixtures/ktap/truncated-panic.log"),
            Some((FailureKind::Crash, "the guest kernel panicked")),
        );
        expect(
            &o,
            &[
                ("xsc_ring_test.setup", "pass"),
                ("xsc_ring_test.sqpoll.sqpoll_setup", "pass"),
                ("xsc_ring_test.sqpoll.sqpoll_wakeup", "fail:assertion"),
                ("xsc_ring_test.sqpoll.#3", "error:crash"),
                ("xsc_ring_test.sqpoll.#4", "error:crash"),
                ("xsc_ring_test.sqpoll", "error:crash"),
                ("xsc_ring_test.#3", "error:crash"),
                ("xsc_ring_test", "error:crash"),
                ("#2", "error:crash"),
            ],
        );
        assert_eq!(
            case(&o, "xsc_ring_test.sqpoll.sqpoll_wakeup").diagnostics,
            vec!["sqpoll_wakeup: cqe.res=-11 expected 0"]
        );
    }

    #[test]
    fn bail_out_nested_and_top() {
        let text = "\
KTAP version 1
1..2
  KTAP version 1
  1..3
  ok 1 a
  Bail out! no /dev/xsc
  ok 2 ignored
not ok 1 prog # exit=4
Bail out! init lost its console";
        let mut p = KtapParser::new();
        for l in text.lines() {
            p.feed(l);
        }
        assert!(p.complete());
        let o = p.finish(Some((FailureKind::Timeout, "silence")));
        expect(
            &o,
            &[
                ("prog.a", "pass"),
                ("prog.#2", "error:assertion"),
                ("prog.#3", "error:assertion"),
                ("prog", "fail:assertion"),
                ("#2", "error:assertion"),
            ],
        );
        assert_eq!(
            message(case(&o, "prog.#2")),
            "not run: Bail out! no /dev/xsc"
        );
        assert_eq!(
            message(case(&o, "#2")),
            "not run: Bail out! init lost its console"
        );
        assert_eq!(case(&o, "prog").diagnostics, vec!["Bail out! no /dev/xsc"]);
        assert!(
            o.problems.iter().any(|p| p.contains("after Bail out")),
            "{:?}",
            o.problems
        );
    }

    #[test]
    fn duplicates_and_out_of_order() {
        let text = "\
KTAP version 1
1..4
ok 1 same
ok 1 same
ok 3 same
not ok 4 same # the description ends at '#'";
        let o = parse(text, None);
        expect(
            &o,
            &[
                ("same", "pass"),
                ("same#2", "pass"),
                ("same#3", "pass"),
                ("same#4", "fail:assertion"),
                ("#2", "error:assertion"),
            ],
        );
        let joined = o.problems.join("\n");
        assert!(joined.contains("duplicate result number 1"), "{joined}");
        assert!(joined.contains("duplicate test name"), "{joined}");
    }

    #[test]
    fn diagnostics_before_after_and_between() {
        let text = "\
KTAP version 1
1..4
# setting up a
# a: about to fail
not ok 1 a
ok 2 b
not ok 3 c
# errno was EFAULT
# while writing 5 bytes
ok 4 d";
        let o = parse(text, None);
        assert_eq!(
            case(&o, "a").diagnostics,
            vec!["setting up a", "a: about to fail"]
        );
        assert_eq!(
            case(&o, "c").diagnostics,
            vec!["errno was EFAULT", "while writing 5 bytes"]
        );
        assert!(case(&o, "d").diagnostics.is_empty());
    }

    #[test]
    fn headerless_four_space_nesting() {
        let text = "\
TAP version 14
1..2
    ok 1 x
    not ok 2 y
not ok 1 group
        ok 1 deep
ok 2 other";
        let o = parse(text, None);
        // `deep` is a headerless subtest of `other`, two levels of indentation down.
        expect(
            &o,
            &[
                ("group.x", "pass"),
                ("group.y", "fail:assertion"),
                ("other.deep", "pass"),
            ],
        );
    }

    #[test]
    fn unknown_indented_lines_explain_a_failure_but_root_noise_does_not() {
        let text = "\
KTAP version 1
1..2
starting the guest programs
  KTAP version 1
  1..1
  xsc_ring_test: open(/dev/xsc): No such file or directory
  not ok 1 open_device
not ok 1 xsc_ring_test # exit=1
random console text
not ok 2 second";
        let o = parse(text, None);
        assert_eq!(
            case(&o, "xsc_ring_test.open_device").diagnostics,
            vec!["xsc_ring_test: open(/dev/xsc): No such file or directory"]
        );
        assert!(case(&o, "second").diagnostics.is_empty());
    }

    #[test]
    fn orphaned_subtest_without_result_line() {
        // The program's sub-suite never printed its own result line before the wrapper's.
        let text = "\
KTAP version 1
1..1
  KTAP version 1
  1..1
    KTAP version 1
    1..1
    ok 1 deep
ok 1 prog";
        let o = parse(text, None);
        expect(
            &o,
            &[("prog.#1.deep", "pass"), ("prog.#1", "error:assertion")],
        );
        assert_eq!(
            message(case(&o, "prog.#1")),
            "the subtest ended without a result line"
        );
        assert!(
            o.problems.iter().any(|p| p.contains("no result line")),
            "{:?}",
            o.problems
        );
    }

    #[test]
    fn stray_version_line_inside_a_block() {
        let text = "\
KTAP version 1
1..2
  KTAP version 1
  1..1
  ok 1 a
  KTAP version 1
ok 2 b";
        let o = parse(text, None);
        expect(&o, &[("b.a", "pass"), ("#1", "error:assertion")]);
        assert!(
            o.problems.iter().any(|p| p.contains("unexpected")),
            "{:?}",
            o.problems
        );
    }

    #[test]
    fn second_document_on_the_same_stream() {
        let text = "\
KTAP version 1
1..2
ok 1 a
KTAP version 1
1..1
ok 1 a";
        let o = parse(text, None);
        expect(
            &o,
            &[("a", "pass"), ("#2", "error:assertion"), ("a#2", "pass")],
        );
    }

    #[test]
    fn no_ktap_at_all() {
        let text = "[    0.1] Linux version 6.1.0\nok 1 not in a document\nBail out! neither\n";
        let o = parse(text, Some((FailureKind::Timeout, "boot timeout")));
        assert!(!o.saw_ktap);
        assert!(o.cases.is_empty());
    }

    #[test]
    fn version_only_then_abort() {
        let o = parse(
            "KTAP version 1\n",
            Some((FailureKind::Infra, "QEMU died: exit status 1")),
        );
        assert!(o.saw_ktap);
        assert!(o.cases.is_empty());
        let o = parse(
            "KTAP version 1\n1..1\n  KTAP version 1\n",
            Some((FailureKind::Infra, "QEMU died")),
        );
        expect(&o, &[("#1", "error:infra")]);
    }

    #[test]
    fn diagnostics_are_capped() {
        let mut text = String::from("KTAP version 1\n1..1\n");
        for i in 0..1000 {
            text.push_str(&format!("# line {i}\n"));
        }
        text.push_str("not ok 1 noisy\n");
        let o = parse(&text, None);
        let d = &case(&o, "noisy").diagnostics;
        assert_eq!(d.len(), MAX_DIAGNOSTICS);
        assert_eq!(d.last().map(String::as_str), Some("line 999"));
    }

    #[test]
    fn dash_separator_and_numbers_only() {
        let o = parse("TAP version 13\n1..2\nok 1 - with dash\nnot ok 2\n", None);
        expect(&o, &[("with dash", "pass"), ("#2", "fail:assertion")]);
    }
}
