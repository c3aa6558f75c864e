//! The JUnit report of `patchcheck`: one suite per series, one case per patch (its prefix
//! applies with fuzz 0, builds, and with `--boot` passes the scenario).

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::report::junit::{strip_root_skipped, xml_text};

/// One patch's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PatchCase {
    /// The patch name (the last patch of its prefix).
    pub patch: String,
    /// Time for the step (build and boot).
    pub duration: Duration,
    /// `(type, message)` when the prefix did not apply, build or pass: type is `build` or
    /// `boot`.
    pub failure: Option<(String, String)>,
}

/// The report as XML text (pure).
pub(crate) fn to_xml(series: &str, cases: &[PatchCase]) -> String {
    let mut report = Report::new("xsc-release patchcheck");
    let mut suite = TestSuite::new(format!("patchcheck.{series}"));
    for c in cases {
        let status = match &c.failure {
            None => TestCaseStatus::success(),
            Some((ty, message)) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_type(ty.as_str())
                    .set_message(xml_text(message.lines().next().unwrap_or_default()))
                    .set_description(xml_text(message));
                s
            }
        };
        let mut case = TestCase::new(xml_text(&c.patch), status);
        case.set_classname(format!("xsc.patchcheck.{series}"))
            .set_time(c.duration);
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    strip_root_skipped(report.to_string().unwrap_or_default())
}

/// Writes the report to `path`.
pub(crate) fn write(path: &Path, series: &str, cases: &[PatchCase]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, to_xml(series, cases))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_case_per_patch_failures_typed() {
        let xml = to_xml(
            "kernel",
            &[
                PatchCase {
                    patch: "0001-a.patch".into(),
                    duration: Duration::from_secs(3),
                    failure: None,
                },
                PatchCase {
                    patch: "0002-b.patch".into(),
                    duration: Duration::from_secs(1),
                    failure: Some(("build".into(), "0002-b.patch does not apply\nhunk 2".into())),
                },
            ],
        );
        let r = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        let s = &r.test_suites[0];
        assert_eq!(s.name.as_str(), "patchcheck.kernel");
        assert_eq!(s.test_cases.len(), 2);
        assert!(matches!(
            s.test_cases[0].status,
            TestCaseStatus::Success { .. }
        ));
        match &s.test_cases[1].status {
            TestCaseStatus::NonSuccess { ty, message, .. } => {
                assert_eq!(ty.as_ref().unwrap().as_str(), "build");
                assert_eq!(
                    message.as_ref().unwrap().as_str(),
                    "0002-b.patch does not apply"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
