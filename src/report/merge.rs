//! Many JUnit reports made one: the shards of a CI gate matrix merged for a single JUnit
//! reporter, and their suite times read back for the durations file.
//!
//! Rules that shape the code:
//! - A duplicate test is judged the way GitLab judges it, by (classname, name) across every
//!   file, not by suite: GitLab keeps only the first of duplicated tests, so a duplicate
//!   could hide a failure. It is an error naming both files.
//! - Suites are copied whole (properties, system-out, reruns); totals are summed by
//!   quick-junit as suites are added, and the root `time` is the sum of the files' times
//!   (runner time, not wall time: the shards ran in parallel).
//! - A shard's report names its shard in `<testsuites name="xsc-release shard K/N">`, also
//!   when it selected nothing, so `--expect-shards` can tell a missing file from an empty
//!   shard.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::Report;

use crate::exit_code::ExitCode;
use crate::input::shard::Shard;
use crate::report::junit::{self, REPORT_NAME};

/// Why the merge refused.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not JUnit XML.
    #[error("{} is not a JUnit report: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where in the document.
        #[source]
        source: quick_junit::DeserializeError,
    },
    /// The same (classname, name) twice: GitLab would show only the first.
    #[error(
        "duplicate test (classname {classname:?}, name {name:?}) in {} and {}: a JUnit reporter keeps only one of them",
        first.display(),
        second.display()
    )]
    Duplicate {
        /// The test's classname.
        classname: String,
        /// The test's name.
        name: String,
        /// Where it was seen first.
        first: PathBuf,
        /// Where it was seen again.
        second: PathBuf,
    },
    /// `--expect-shards N` and a file is no shard of N.
    #[error("{} is not a shard of {expected}: its report is named {found:?}", path.display())]
    NotAShard {
        /// The file.
        path: PathBuf,
        /// N.
        expected: usize,
        /// The `<testsuites name>` found.
        found: String,
    },
    /// `--expect-shards N` and a shard appears twice.
    #[error("shard {shard} twice: {} and {}", first.display(), second.display())]
    ShardTwice {
        /// The shard.
        shard: Shard,
        /// The first file.
        first: PathBuf,
        /// The second.
        second: PathBuf,
    },
    /// `--expect-shards N` and some shard has no file.
    #[error("missing shard(s) {} of {expected}: their JUnit files were not given (did a shard job fail before writing it?)", missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Missing {
        /// The missing shard numbers.
        missing: Vec<usize>,
        /// N.
        expected: usize,
    },
    /// Serialising the result failed.
    #[error("cannot serialise the merged report: {0}")]
    Write(#[from] quick_junit::SerializeError),
}

impl MergeError {
    /// Files that are missing, unreadable as JUnit or that do not fit together are bad
    /// input (2); only failing to write the result is the harness's (4).
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            MergeError::Write(_) => ExitCode::Harness,
            MergeError::Read { source, .. } if source.kind() != std::io::ErrorKind::NotFound => {
                ExitCode::Harness
            }
            _ => ExitCode::BadInput,
        }
    }
}

/// Reads one JUnit file.
pub(crate) fn read(path: &Path) -> Result<Report, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Report::deserialize_from_str(&text).map_err(|source| MergeError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The shard a report names (`xsc-release shard K/N`).
pub(crate) fn shard_of(report: &Report) -> Option<Shard> {
    let name = report.name.as_deref()?;
    name.strip_prefix(REPORT_NAME)?
        .strip_prefix(" shard ")?
        .parse()
        .ok()
}

/// Scenario suites and their times, for `report durations`: suites that carry the
/// `scenario.sha256` property (an interrupted run's extra suite and `report ktap` suites
/// do not), with the time the harness measured.
pub(crate) fn scenario_times(report: &Report) -> Vec<(String, f64)> {
    report
        .test_suites
        .iter()
        .filter(|s| {
            s.properties
                .iter()
                .any(|p| p.name.as_str() == "scenario.sha256")
        })
        .filter_map(|s| Some((s.name.to_string(), s.time?.as_secs_f64())))
        .collect()
}

/// Merges the reports read from `files` (in the order given).
pub(crate) fn merge(
    files: &[(PathBuf, Report)],
    expect_shards: Option<usize>,
) -> Result<Report, MergeError> {
    if let Some(n) = expect_shards {
        check_shards(files, n)?;
    }
    let mut seen: HashMap<(String, String), &Path> = HashMap::new();
    let mut out = Report::new(REPORT_NAME);
    let mut time = Duration::ZERO;
    for (path, report) in files {
        for suite in &report.test_suites {
            for case in &suite.test_cases {
                let key = (
                    case.classname.as_deref().unwrap_or("").to_string(),
                    case.name.to_string(),
                );
                if let Some(first) = seen.get(&key) {
                    return Err(MergeError::Duplicate {
                        classname: key.0,
                        name: key.1,
                        first: first.to_path_buf(),
                        second: path.clone(),
                    });
                }
                seen.insert(key, path);
            }
        }
        time += report.time.unwrap_or_default();
        out.add_test_suites(report.test_suites.iter().cloned());
    }
    out.set_time(time);
    Ok(out)
}

fn check_shards(files: &[(PathBuf, Report)], expected: usize) -> Result<(), MergeError> {
    let mut found: HashMap<usize, &Path> = HashMap::new();
    for (path, report) in files {
        let shard = shard_of(report)
            .filter(|s| s.total == expected)
            .ok_or_else(|| MergeError::NotAShard {
                path: path.clone(),
                expected,
                found: report.name.as_deref().unwrap_or("").to_string(),
            })?;
        if let Some(first) = found.insert(shard.index, path) {
            return Err(MergeError::ShardTwice {
                shard,
                first: first.to_path_buf(),
                second: path.clone(),
            });
        }
    }
    let missing: BTreeSet<usize> = (1..=expected).filter(|k| !found.contains_key(k)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MergeError::Missing {
            missing: missing.into_iter().collect(),
            expected,
        })
    }
}

/// The merged report as XML text (the same schema fix-up as a run's report).
pub(crate) fn to_xml(report: &Report) -> Result<String, MergeError> {
    let xml = report.to_string()?;
    Ok(junit::strip_root_skipped(xml))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_junit::{TestCase, TestCaseStatus, TestSuite};

    fn shard_report(shard: &str, cases: &[(&str, &str, bool)]) -> Report {
        let mut r = Report::new(format!("{REPORT_NAME} shard {shard}"));
        r.set_time(Duration::from_secs(10));
        for (suite_name, case, ok) in cases {
            let mut s = TestSuite::new(*suite_name);
            s.set_time(Duration::from_secs(3));
            s.add_property(quick_junit::Property::new("shard", shard));
            s.add_property(quick_junit::Property::new("scenario.sha256", "ab"));
            let status = if *ok {
                TestCaseStatus::success()
            } else {
                let mut st = TestCaseStatus::non_success(quick_junit::NonSuccessKind::Failure);
                st.set_type("assertion");
                st
            };
            let mut c = TestCase::new(*case, status);
            c.set_classname(format!("xsc.{suite_name}"));
            s.add_test_case(c);
            r.add_test_suite(s);
        }
        r
    }

    fn files(reports: Vec<Report>) -> Vec<(PathBuf, Report)> {
        reports
            .into_iter()
            .enumerate()
            .map(|(i, r)| (PathBuf::from(format!("junit-{}.xml", i + 1)), r))
            .collect()
    }

    #[test]
    fn sums_totals_keeps_properties_and_round_trips() {
        let f = files(vec![
            shard_report("1/3", &[("a", "boot", true), ("b", "boot", false)]),
            shard_report("2/3", &[("c", "boot", true)]),
            shard_report("3/3", &[]),
        ]);
        let m = merge(&f, Some(3)).unwrap();
        assert_eq!((m.tests, m.failures, m.errors), (3, 1, 0));
        assert_eq!(m.time, Some(Duration::from_secs(30)));
        let xml = to_xml(&m).unwrap();
        let back = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(back.test_suites.len(), 3);
        assert!(
            back.test_suites[2]
                .properties
                .iter()
                .any(|p| p.value.as_str() == "2/3")
        );
        assert!(!xml[..xml.find('>').unwrap() + 60].contains(" skipped="));
        assert_eq!(
            scenario_times(&back),
            vec![("a".into(), 3.0), ("b".into(), 3.0), ("c".into(), 3.0)]
        );
    }

    #[test]
    fn duplicate_by_classname_and_name_names_both_files() {
        // Different suite names, same (classname, name): still a duplicate, as GitLab sees it.
        let mut second = shard_report("2/2", &[("other", "boot", true)]);
        second.test_suites[0].test_cases[0].set_classname("xsc.a");
        let f = files(vec![shard_report("1/2", &[("a", "boot", true)]), second]);
        let e = merge(&f, None).unwrap_err().to_string();
        assert!(
            e.contains("junit-1.xml") && e.contains("junit-2.xml") && e.contains("xsc.a"),
            "{e}"
        );
    }

    #[test]
    fn expect_shards_finds_missing_twice_and_foreign() {
        let f = files(vec![
            shard_report("1/3", &[("a", "boot", true)]),
            shard_report("3/3", &[]),
        ]);
        let e = merge(&f, Some(3)).unwrap_err();
        assert!(
            matches!(&e, MergeError::Missing { missing, expected: 3 } if missing == &[2]),
            "{e}"
        );
        // Without the expectation the same files merge.
        assert!(merge(&f, None).is_ok());

        let f = files(vec![shard_report("1/2", &[]), shard_report("1/2", &[])]);
        assert!(matches!(
            merge(&f, Some(2)),
            Err(MergeError::ShardTwice { .. })
        ));

        let f = files(vec![shard_report("1/2", &[]), Report::new(REPORT_NAME)]);
        let e = merge(&f, Some(2)).unwrap_err().to_string();
        assert!(
            e.contains("junit-2.xml") && e.contains("not a shard of 2"),
            "{e}"
        );
    }

    #[test]
    fn shard_names() {
        assert_eq!(
            shard_of(&Report::new("xsc-release shard 2/5")),
            Some(Shard { index: 2, total: 5 })
        );
        assert_eq!(shard_of(&Report::new("xsc-release")), None);
        assert_eq!(shard_of(&Report::new("other shard 1/2")), None);
    }
}
