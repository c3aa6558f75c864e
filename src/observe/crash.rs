//! Kernel crash scanner (placeholder: being written).

/// Extra crash regexes from a scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashPatterns {
    /// Fatal patterns.
    pub fatal: Vec<String>,
    /// Failing patterns.
    pub fail: Vec<String>,
    /// Ignored patterns.
    pub ignore: Vec<String>,
}
use crate::observe::verdict::Crash;
/// Scanner.
pub struct CrashScanner;
impl CrashScanner {
    /// New.
    pub fn new(_extra: &CrashPatterns) -> Result<Self, regex::Error> {
        Ok(CrashScanner)
    }
    /// Feed.
    pub fn feed(&mut self, _line: &str) -> Option<Crash> {
        None
    }
    /// Finish.
    pub fn finish(self) -> Vec<Crash> {
        vec![]
    }
}
