//! JUnit writer (placeholder: being written).
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::observe::verdict::ScenarioResult;

/// Run info.
pub struct RunInfo {
    /// Name.
    pub name: String,
    /// Start.
    pub started: SystemTime,
    /// Duration.
    pub duration: Duration,
    /// Interrupted.
    pub interrupted: bool,
}
/// Error.
#[derive(Debug, thiserror::Error)]
#[error("junit")]
pub struct JunitError;
/// Write.
pub fn write(_path: &Path, _results: &[ScenarioResult], _run: &RunInfo) -> Result<(), JunitError> {
    Ok(())
}
