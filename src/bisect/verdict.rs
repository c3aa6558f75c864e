//! What one bisect step says about its commit or prefix, from the exit code the same run
//! would have under `test`: pass = good, product failure = fails, bad input or a failed
//! build = cannot test (like `git bisect skip`), anything the harness itself broke = abort
//! (it says nothing about the commit). A failure is rerun once; the two runs are settled
//! here too, so the rules are data a test can read.

use crate::exit_code::ExitCode;

/// A step's verdict, as the search consumes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The scenario passed.
    Good,
    /// The product failed (exit 1): a case failed, the guest crashed, hung or went silent.
    Fails,
    /// The step cannot be judged: its build failed (3), its inputs are not readable by
    /// this harness (2), or its two runs disagreed (flaky). The text says which.
    Skip(String),
}

impl Verdict {
    /// The word the step line and the JUnit property use.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Fails => "fails",
            Verdict::Skip(_) => "skip",
        }
    }
}

/// A step whose run says nothing about the product: the bisect stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Abort(pub ExitCode);

/// The verdict of one run that ended with `code`; `why` is the note a skip carries
/// (the error message of the build or of the input).
pub(crate) fn classify(code: ExitCode, why: &str) -> Result<Verdict, Abort> {
    match code {
        ExitCode::Success => Ok(Verdict::Good),
        ExitCode::ProductFailed => Ok(Verdict::Fails),
        ExitCode::BadInput => Ok(Verdict::Skip(format!("cannot test (bad input): {why}"))),
        ExitCode::BuildFailed => Ok(Verdict::Skip(format!("cannot test (build failed): {why}"))),
        ExitCode::Harness
        | ExitCode::ReleaseRefused
        | ExitCode::Interrupted
        | ExitCode::Terminated => Err(Abort(code)),
    }
}

/// True when a first run with this verdict gets one rerun: only a failure can be flaky
/// (a pass is trusted, a skip is a build or input problem that a rerun would repeat).
pub(crate) fn needs_rerun(first: &Verdict) -> bool {
    *first == Verdict::Fails
}

/// The verdict of a step whose first run failed and was rerun: two failures fail; a pass
/// on the rerun means the step is flaky, which says nothing reliable about the commit, so
/// it is skipped with a note; a rerun that cannot test is that skip.
pub(crate) fn settle(first: Verdict, rerun: Verdict) -> Verdict {
    match (first, rerun) {
        (Verdict::Fails, Verdict::Fails) => Verdict::Fails,
        (Verdict::Fails, Verdict::Good) => {
            Verdict::Skip("flaky: failed, then passed on the rerun".into())
        }
        (_, Verdict::Skip(why)) => Verdict::Skip(why),
        (first, _) => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_verdicts_or_an_abort() {
        assert_eq!(classify(ExitCode::Success, ""), Ok(Verdict::Good));
        assert_eq!(classify(ExitCode::ProductFailed, ""), Ok(Verdict::Fails));
        assert_eq!(
            classify(ExitCode::BuildFailed, "0004 does not apply"),
            Ok(Verdict::Skip(
                "cannot test (build failed): 0004 does not apply".into()
            ))
        );
        assert_eq!(
            classify(ExitCode::BadInput, "smoke.toml:3: key"),
            Ok(Verdict::Skip(
                "cannot test (bad input): smoke.toml:3: key".into()
            ))
        );
        for code in [
            ExitCode::Harness,
            ExitCode::ReleaseRefused,
            ExitCode::Interrupted,
            ExitCode::Terminated,
        ] {
            assert_eq!(classify(code, ""), Err(Abort(code)));
        }
    }

    #[test]
    fn only_a_failure_is_rerun_and_disagreement_is_a_skip() {
        assert!(needs_rerun(&Verdict::Fails));
        assert!(!needs_rerun(&Verdict::Good));
        assert!(!needs_rerun(&Verdict::Skip("x".into())));
        assert_eq!(settle(Verdict::Fails, Verdict::Fails), Verdict::Fails);
        let flaky = settle(Verdict::Fails, Verdict::Good);
        assert_eq!(flaky.word(), "skip");
        assert!(matches!(&flaky, Verdict::Skip(n) if n.starts_with("flaky")));
        assert_eq!(
            settle(Verdict::Fails, Verdict::Skip("build".into())),
            Verdict::Skip("build".into())
        );
    }
}
