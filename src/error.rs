//! The top-level error: every way a command can fail to do its job, each mapped to its
//! documented exit code. A failing guest test is not here: it is a result.

use std::path::PathBuf;

use crate::exit_code::ExitCode;
use crate::input::toml_strict::Problems;

/// A command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Config or scenario files are invalid (every problem listed).
    #[error(transparent)]
    Problems(#[from] Problems),
    /// A command-line combination that makes no sense.
    #[error("{0}")]
    Usage(String),
    /// A guest program or the initramfs did not build.
    #[error(transparent)]
    Guest(#[from] crate::guest::programs::GuestBuildError),
    /// The stock kernel could not be fetched.
    #[error(transparent)]
    StockKernel(#[from] crate::stages::stock_kernel::StockKernelError),
    /// An image a scenario needs is not built and `--no-build` forbids building it.
    #[error("{what} is not built and --no-build was given (build it with `{hint}`)")]
    NotBuilt {
        /// What is missing.
        what: String,
        /// The command that builds it.
        hint: String,
    },
    /// A build stage failed.
    #[error(transparent)]
    Build(#[from] crate::stages::BuildError),
    /// The release half refused or failed.
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
    /// A release-level refusal outside the release module (no gates …).
    #[error("release refused: {0}")]
    Refused(String),
    /// A host tool or file the run needs is not installed.
    #[error("{tool} is missing: {why} (apt-get install {package})")]
    MissingTool {
        /// The binary or file that is not there.
        tool: String,
        /// The Debian package that provides it.
        package: &'static str,
        /// What needs it.
        why: String,
    },
    /// A file named on the command line or in a scenario does not exist (`test` and
    /// `scenarios check` say so before any run starts).
    #[error("{what} {}: no such file", .path.display())]
    InputMissing {
        /// Which input (`kernel`, `initrd`, `iso`, `log`).
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// The user stopped the command (SIGINT/SIGTERM) before this part started; `main`
    /// turns the signal into 130/143.
    #[error("interrupted: {0} did not start")]
    Interrupted(String),
    /// A worker task panicked or was cancelled: a bug in the harness, not the product.
    #[error("internal error: the {task} task failed")]
    TaskPanicked {
        /// Which task.
        task: String,
        /// What tokio said.
        #[source]
        source: tokio::task::JoinError,
    },
    /// JUnit files that do not merge (`report merge`, `report durations`).
    #[error(transparent)]
    Merge(#[from] crate::report::merge::MergeError),
    /// A stage artifact could not be written, or was refused (`build --stage-artifact`,
    /// `cache import`).
    #[error(transparent)]
    StageArtifact(#[from] crate::stages::artifact::ArtifactError),
    /// File-system trouble outside any build.
    #[error("i/o error on {path}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Problems(_) | Error::Usage(_) | Error::InputMissing { .. } => ExitCode::BadInput,
            Error::Guest(e) => e.exit_code(),
            Error::StockKernel(e) => e.exit_code(),
            Error::NotBuilt { .. } => ExitCode::BuildFailed,
            Error::Io { .. } | Error::MissingTool { .. } | Error::TaskPanicked { .. } => {
                ExitCode::Harness
            }
            Error::Interrupted(_) => ExitCode::Interrupted,
            Error::Release(e) => e.exit_code(),
            Error::Build(e) => e.exit_code(),
            Error::Refused(_) => ExitCode::ReleaseRefused,
            Error::Merge(e) => e.exit_code(),
            Error::StageArtifact(e) => e.exit_code(),
        }
    }

    /// Helper for `map_err` on a joined task.
    pub(crate) fn task(task: impl Into<String>) -> impl FnOnce(tokio::task::JoinError) -> Error {
        let task = task.into();
        move |source| Error::TaskPanicked { task, source }
    }

    /// Helper for `map_err`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Formats an error and its causes once, for `main`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = format!("error: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        s.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    s
}
