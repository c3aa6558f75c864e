//! The documented exit codes of every `xsc-release` command, and how mixed results combine.
//!
//! This table is an API: CI scripts branch on it. README.md repeats it and
//! tests/integration/exit_codes.rs causes every row for real through the binary. A failing guest test is a *result* (1), never an
//! error; an error says which part of the pipeline could not do its job (2–5).

use std::process::ExitCode as StdExitCode;

/// One documented process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// 0: everything asked for passed.
    Success,
    /// 1: the product failed: a case failed, the guest panicked, oopsed, hung or went silent,
    /// or a release did not verify.
    ProductFailed,
    /// 2: bad input: command line, config or scenario, or a file they name is missing.
    BadInput,
    /// 3: a build failed (or a needed image is missing under `--no-build`).
    BuildFailed,
    /// 4: the harness could not do its job: QEMU would not start or died, QMP broke, a host
    /// tool is missing, the disk is full.
    Harness,
    /// 5: a release was refused: red gate, version exists, unsafe key, lock held.
    ReleaseRefused,
    /// 130: interrupted by SIGINT.
    Interrupted,
    /// 143: terminated by SIGTERM.
    Terminated,
}

impl ExitCode {
    /// Every code, in table order (for docs and tests).
    pub const ALL: [ExitCode; 8] = [
        ExitCode::Success,
        ExitCode::ProductFailed,
        ExitCode::BadInput,
        ExitCode::BuildFailed,
        ExitCode::Harness,
        ExitCode::ReleaseRefused,
        ExitCode::Interrupted,
        ExitCode::Terminated,
    ];

    /// The numeric status the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::ProductFailed => 1,
            ExitCode::BadInput => 2,
            ExitCode::BuildFailed => 3,
            ExitCode::Harness => 4,
            ExitCode::ReleaseRefused => 5,
            ExitCode::Interrupted => 130,
            ExitCode::Terminated => 143,
        }
    }

    /// One-line meaning, as printed in README and `--help`.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitCode::Success => "all passed",
            ExitCode::ProductFailed => {
                "the product failed (a case failed, the guest panicked, oopsed, hung or went silent; a release did not verify)"
            }
            ExitCode::BadInput => {
                "bad input (command line, config, scenario, a file they name that does not exist)"
            }
            ExitCode::BuildFailed => "a build failed (or an image is missing under --no-build)",
            ExitCode::Harness => {
                "the harness could not do its job (QEMU will not start or died, QMP broke, a tool is missing, disk full)"
            }
            ExitCode::ReleaseRefused => {
                "a release was refused (red gate, version exists, unsafe key, lock held)"
            }
            ExitCode::Interrupted => "interrupted (SIGINT)",
            ExitCode::Terminated => "terminated (SIGTERM)",
        }
    }

    /// Severity used to combine mixed results: interrupt > 4 > 3 > 1 (then 5, 2, 0).
    ///
    /// A harness failure outranks a build failure because it means the verdicts that were
    /// produced cannot be trusted either; any product failure outranks success.
    fn severity(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::ProductFailed => 1,
            ExitCode::BadInput => 2,
            ExitCode::ReleaseRefused => 3,
            ExitCode::BuildFailed => 4,
            ExitCode::Harness => 5,
            ExitCode::Terminated => 6,
            ExitCode::Interrupted => 7,
        }
    }

    /// The more severe of two outcomes.
    #[must_use]
    pub fn worst(self, other: ExitCode) -> ExitCode {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl From<ExitCode> for StdExitCode {
    fn from(code: ExitCode) -> Self {
        StdExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::ExitCode::*;
    use super::*;

    #[test]
    fn numbers_match_the_documented_table() {
        let table: Vec<u8> = ExitCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(table, [0, 1, 2, 3, 4, 5, 130, 143]);
    }

    #[test]
    fn most_severe_wins() {
        assert_eq!(ProductFailed.worst(Harness), Harness);
        assert_eq!(Harness.worst(BuildFailed), Harness);
        assert_eq!(BuildFailed.worst(ProductFailed), BuildFailed);
        assert_eq!(Harness.worst(Interrupted), Interrupted);
        assert_eq!(Success.worst(ProductFailed), ProductFailed);
        assert_eq!(Success.worst(Success), Success);
    }

    #[test]
    fn readme_lists_every_code() {
        let readme = include_str!("../README.md");
        for code in ExitCode::ALL {
            let row = format!("| {} |", code.code());
            assert!(readme.contains(&row), "README exit-code table lacks {row}");
        }
    }
}
