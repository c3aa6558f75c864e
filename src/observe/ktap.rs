//! KTAP v1 parser (placeholder: being written).
use crate::observe::verdict::{CaseResult, FailureKind};

/// Parser.
#[derive(Default)]
pub struct KtapParser {
    lines: Vec<String>,
}
/// Outcome.
pub struct KtapOutcome {
    /// Cases.
    pub cases: Vec<CaseResult>,
    /// Saw KTAP.
    pub saw_ktap: bool,
    /// Problems.
    pub problems: Vec<String>,
}
impl KtapParser {
    /// New.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feed.
    pub fn feed(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }
    /// Complete.
    pub fn complete(&self) -> bool {
        false
    }
    /// Finish.
    pub fn finish(self, _abort: Option<(FailureKind, &str)>) -> KtapOutcome {
        KtapOutcome {
            cases: vec![],
            saw_ktap: !self.lines.is_empty(),
            problems: vec![],
        }
    }
}
