//! The committed scenario durations file (`scenarios/durations.json`): how long each
//! scenario is expected to take, so `test --shard` can balance shards by time.
//! `report durations` refreshes it from JUnit `time` attributes; a scenario it does not
//! name gets `default_seconds`. A missing file means every scenario gets the default
//! (sharding still partitions; it only balances worse).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name inside the scenarios directory.
pub(crate) const FILE_NAME: &str = "durations.json";

/// Used when the file is missing and no default is given.
const FALLBACK_DEFAULT_SECONDS: f64 = 60.0;

/// Expected seconds per scenario name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Durations {
    /// For scenarios the file does not name.
    pub default_seconds: f64,
    /// Scenario name → seconds (sorted, so refreshes give small diffs).
    pub seconds: BTreeMap<String, f64>,
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            default_seconds: FALLBACK_DEFAULT_SECONDS,
            seconds: BTreeMap::new(),
        }
    }
}

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DurationsError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the format above (strict: unknown keys are errors).
    #[error("{}: invalid durations file: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, with line and column.
        #[source]
        source: serde_json::Error,
    },
}

impl Durations {
    /// The default path for a scenarios directory.
    pub(crate) fn path_in(scenarios_dir: &Path) -> PathBuf {
        scenarios_dir.join(FILE_NAME)
    }

    /// Reads `path`; a missing file is the default (every scenario unknown).
    pub(crate) fn load(path: &Path) -> Result<Durations, DurationsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Durations::default()),
            Err(source) => {
                return Err(DurationsError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        serde_json::from_str(&text).map_err(|source| DurationsError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Expected seconds of one scenario.
    pub(crate) fn of(&self, scenario: &str) -> f64 {
        self.seconds
            .get(scenario)
            .copied()
            .unwrap_or(self.default_seconds)
    }

    /// Replaces the entries measured again (rounded to 0.1 s: the partition needs no more,
    /// and the committed file then changes only when a time really moves).
    pub(crate) fn update(&mut self, measured: impl IntoIterator<Item = (String, f64)>) {
        for (name, secs) in measured {
            self.seconds.insert(name, (secs * 10.0).round() / 10.0);
        }
    }

    /// Pretty JSON with a final newline.
    pub(crate) fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes the file (a temporary file renamed over it).
    pub(crate) fn save(&self, path: &Path) -> Result<(), DurationsError> {
        let io = |source| DurationsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
        std::fs::write(&tmp, self.to_json()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_the_default_and_unknown_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = Durations::load(&dir.path().join("nope.json")).unwrap();
        assert_eq!(d.of("anything"), FALLBACK_DEFAULT_SECONDS);
    }

    #[test]
    fn round_trip_update_and_strictness() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        let mut d = Durations {
            default_seconds: 30.0,
            seconds: BTreeMap::from([("old".into(), 5.0), ("smoke".into(), 99.0)]),
        };
        d.update([("smoke".to_string(), 12.345), ("new".to_string(), 7.06)]);
        d.save(&p).unwrap();
        let back = Durations::load(&p).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.of("smoke"), 12.3);
        assert_eq!(back.of("new"), 7.1);
        assert_eq!(back.of("old"), 5.0);
        assert_eq!(back.of("unknown"), 30.0);

        std::fs::write(&p, r#"{"default_seconds": 1, "seconds": {}, "extra": 1}"#).unwrap();
        let e = Durations::load(&p).unwrap_err().to_string();
        assert!(e.contains("extra") && e.contains(FILE_NAME), "{e}");
    }
}
