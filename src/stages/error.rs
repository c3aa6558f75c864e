//! Everything that can stop a build stage, with the context a user needs to act on it
//! (argv, exit status, `file:line`, patch name and hunk), and the exit code each maps to.
//!
//! Messages are lowercase fragments; the chain (`#[source]`) is printed once by `main`.

use std::fmt;
use std::path::PathBuf;

use crate::exit_code::ExitCode;
use crate::sys::process::ProcessError;

/// One hunk quilt could not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HunkFailure {
    /// Hunk number inside the file's diff (`Hunk #2`).
    pub hunk: u32,
    /// Line in the target file where patch looked for it.
    pub line: u32,
    /// The file the hunk belongs to (the last `patching file X` before it).
    pub file: String,
}

/// A requested config option that `olddefconfig` changed or dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionMismatch {
    /// `CONFIG_…` name.
    pub option: String,
    /// What the fragment asked for (`y`, `m`, `n`, `"str"`, `42`).
    pub requested: String,
    /// What `.config` ended up with; `None` when the symbol is absent (dependencies unmet).
    pub actual: Option<String>,
    /// The fragment that asked for it.
    pub file: PathBuf,
    /// 1-based line in that fragment.
    pub line: usize,
}

impl fmt::Display for OptionMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actual = self
            .actual
            .as_deref()
            .unwrap_or("absent (dependencies not met?)");
        write!(
            f,
            "{}:{}: {} requested {} but .config has {}",
            self.file.display(),
            self.line,
            self.option,
            self.requested,
            actual
        )
    }
}

/// Why a build stage could not produce its artifacts.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A host tool the stage needs is not installed.
    #[error("missing host tool{} {}; install with: apt-get install -y {}", plural(.tools.len()), .tools.join(", "), .packages.join(" "))]
    ToolMissing {
        /// Binaries (or headers) not found.
        tools: Vec<String>,
        /// Debian packages that provide them.
        packages: Vec<String>,
    },
    /// An external step ran and failed.
    #[error("{step} failed")]
    Step {
        /// What the harness was doing (`make bzImage`, `tar -xf`, …).
        step: String,
        /// The command's own error: argv, exit status, tail, log.
        #[source]
        source: ProcessError,
    },
    /// make ran and failed; the first compiler errors are lifted out of the log.
    #[error("{step} failed{}", first_errors(.errors))]
    MakeFailed {
        /// The make step (`make -j2 bzImage`).
        step: String,
        /// The first `error:` lines of its output (or make's `***` lines).
        errors: Vec<String>,
        /// The command's own error: argv, exit status, log.
        #[source]
        source: Box<ProcessError>,
    },
    /// A patch of the series did not apply cleanly (fuzz is refused).
    #[error("patch {patch} does not apply: {}{}", describe_hunks(.hunks), log_hint(.log.as_ref()))]
    PatchFailed {
        /// File name of the patch inside the patch directory.
        patch: String,
        /// Hunks that failed, in order.
        hunks: Vec<HunkFailure>,
        /// quilt's summary lines (`1 out of 3 hunks FAILED -- rejects in file x.c`).
        summary: Vec<String>,
        /// The full build log.
        log: Option<PathBuf>,
    },
    /// A config fragment line is not `CONFIG_X=value` or `# CONFIG_X is not set`.
    #[error("{}:{line}: not a config line: {text:?}", .file.display())]
    FragmentSyntax {
        /// The fragment.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The offending text.
        text: String,
    },
    /// Options requested by the fragments are not in the final `.config`.
    #[error("{} requested config option{} not in the final .config:\n  {}", .mismatches.len(), plural(.mismatches.len()), .mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    ConfigDropped {
        /// Each option that was dropped or changed.
        mismatches: Vec<OptionMismatch>,
    },
    /// The source's sha256 is not the pinned one.
    #[error("sha256 of {} is {actual}, but {pinned_in} pins {expected}; if this source is intended, update the pin:\n  {update}", .path.display())]
    SourceDrift {
        /// The tarball that was hashed.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The digest found.
        actual: String,
        /// Where the pin lives (`xsc.toml [sources.linux]` or `--sha256`).
        pinned_in: String,
        /// The exact replacement line(s) for the pin.
        update: String,
    },
    /// A source given on the command line cannot be used as given.
    #[error("bad kernel source {source_arg:?}: {reason}")]
    BadSource {
        /// What the user passed.
        source_arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `[packages]` GPG key cannot sign: a missing file, no or several secret keys,
    /// a fingerprint it does not hold, an unreadable passphrase file.
    #[error("the repository signing key {}: {reason}", .path.display())]
    SigningKey {
        /// The keyring file (`[packages] gpg-keyring`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An input the build needs is not configured (the EL base ISOs): everything else was
    /// built; the message says what to add where.
    #[error("{what} is not configured: {how}")]
    NotConfigured {
        /// What is missing.
        what: String,
        /// How to provide it.
        how: String,
    },
    /// A profile or config base that does not exist.
    #[error("unknown kernel profile {name:?} (expected one of: {})", .known.join(", "))]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: Vec<String>,
    },
    /// A required input file is missing or unreadable.
    #[error("cannot read {what} {}", .path.display())]
    Input {
        /// What the file is (`patch series`, `config fragment`).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The build finished but an expected artifact is not there.
    #[error("build finished but {} is missing{}", .path.display(), log_hint(.log.as_ref()))]
    MissingArtifact {
        /// The artifact's path in the tree.
        path: PathBuf,
        /// The full build log.
        log: Option<PathBuf>,
    },
    /// `--check-repro`: two clean builds differ.
    #[error("kernel build is not reproducible: bzImage sha256 {first} ({}) vs {second} ({})", .first_tree.display(), .second_tree.display())]
    NotReproducible {
        /// Digest of the first build.
        first: String,
        /// Digest of the second build.
        second: String,
        /// Tree of the first build (kept for diffoscope).
        first_tree: PathBuf,
        /// Tree of the second build.
        second_tree: PathBuf,
    },
    /// `build debian --force` over a valid cache entry gave a different ISO.
    #[error("{0}")]
    IsoNotReproducible(Box<IsoMismatch>),
    /// A stage that needs root was run as a user.
    #[error("{what}: not running as root (run it with sudo or as root)")]
    NotRoot {
        /// What needs root.
        what: String,
    },
    /// Ctrl-C or SIGTERM during a build step; mounts and children were cleaned up.
    #[error("build interrupted")]
    Interrupted,
    /// A guest program the stage installs did not compile.
    #[error("guest program {program}: {message}")]
    GuestProgram {
        /// The C file under guest-tests/.
        program: String,
        /// The compile error chain.
        message: String,
    },
    /// `--no-build` and the artifact for the current inputs is not cached.
    #[error(
        "no cached kernel for profile {profile} with key {key} (run `xsc-release build kernel --profile {profile}`)"
    )]
    NotCached {
        /// The profile.
        profile: String,
        /// The key of the current inputs.
        key: String,
    },
    /// Filesystem work of the harness itself failed (disk full, permissions).
    #[error("{what} {}", .path.display())]
    Io {
        /// What was being done (`failed to create`, `failed to copy`…).
        what: String,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn log_hint(log: Option<&PathBuf>) -> String {
    log.map(|p| format!(" (log: {})", p.display()))
        .unwrap_or_default()
}

fn first_errors(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(":\n  {}", errors.join("\n  "))
    }
}

fn describe_hunks(hunks: &[HunkFailure]) -> String {
    if hunks.is_empty() {
        return "quilt refused it (see log)".to_string();
    }
    hunks
        .iter()
        .map(|h| format!("{} hunk #{} FAILED at line {}", h.file, h.hunk, h.line))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Two builds of the Debian ISO from the same inputs that differ.
#[derive(Debug)]
pub struct IsoMismatch {
    /// Digest of the cached ISO.
    pub first: String,
    /// Digest of the rebuilt ISO.
    pub second: String,
    /// The cached entry.
    pub first_tree: PathBuf,
    /// Where the rebuilt entry was kept for comparison.
    pub second_tree: PathBuf,
    /// The rebuild's log.
    pub log: Option<PathBuf>,
    /// diffoscope's report (or the first differing offsets).
    pub differences: String,
}

impl fmt::Display for IsoMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "debian ISO is not reproducible: sha256 {} (cached, {}) vs {} (rebuilt, {}){}; what differs:\n{}",
            self.first,
            self.first_tree.display(),
            self.second,
            self.second_tree.display(),
            log_hint(self.log.as_ref()),
            self.differences
        )
    }
}

impl BuildError {
    /// The documented exit code: 2 bad input, 3 build failed, 4 harness (tool missing, i/o).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            BuildError::ToolMissing { .. } | BuildError::Io { .. } | BuildError::NotRoot { .. } => {
                ExitCode::Harness
            }
            BuildError::Interrupted => ExitCode::Interrupted,
            BuildError::Step { source, .. } if source.is_not_found() => ExitCode::Harness,
            BuildError::Step {
                source: ProcessError::Io { .. },
                ..
            } => ExitCode::Harness,
            BuildError::Step { .. }
            | BuildError::MakeFailed { .. }
            | BuildError::PatchFailed { .. }
            | BuildError::ConfigDropped { .. }
            | BuildError::MissingArtifact { .. }
            | BuildError::NotReproducible { .. }
            | BuildError::IsoNotReproducible(_)
            | BuildError::GuestProgram { .. }
            | BuildError::NotCached { .. }
            | BuildError::NotConfigured { .. } => ExitCode::BuildFailed,
            BuildError::FragmentSyntax { .. }
            | BuildError::SourceDrift { .. }
            | BuildError::BadSource { .. }
            | BuildError::SigningKey { .. }
            | BuildError::UnknownProfile { .. }
            | BuildError::Input { .. } => ExitCode::BadInput,
        }
    }

    /// Wraps a failed command with the step it was.
    pub fn step(step: impl Into<String>) -> impl FnOnce(ProcessError) -> BuildError {
        let step = step.into();
        move |source| BuildError::Step { step, source }
    }

    /// Wraps an i/o error of the harness itself.
    pub fn io(
        what: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BuildError {
        let (what, path) = (what.into(), path.into());
        move |source| BuildError::Io { what, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_table() {
        let tool = BuildError::ToolMissing {
            tools: vec!["quilt".into()],
            packages: vec!["quilt".into()],
        };
        assert_eq!(tool.exit_code(), ExitCode::Harness);
        assert!(
            tool.to_string().ends_with("apt-get install -y quilt"),
            "{tool}"
        );
        let patch = BuildError::PatchFailed {
            patch: "0002-x.patch".into(),
            hunks: vec![HunkFailure {
                hunk: 2,
                line: 123,
                file: "drivers/x.c".into(),
            }],
            summary: vec![],
            log: None,
        };
        assert_eq!(patch.exit_code(), ExitCode::BuildFailed);
        assert_eq!(
            patch.to_string(),
            "patch 0002-x.patch does not apply: drivers/x.c hunk #2 FAILED at line 123"
        );
        let drift = BuildError::SourceDrift {
            path: "/t.tar.xz".into(),
            expected: "a".into(),
            actual: "b".into(),
            pinned_in: "xsc.toml".into(),
            update: "sha256 = \"b\"".into(),
        };
        assert_eq!(drift.exit_code(), ExitCode::BadInput);
    }

    #[test]
    fn debian_stage_errors_map_to_the_table() {
        let root = BuildError::NotRoot {
            what: "build debian".into(),
        };
        assert_eq!(root.exit_code(), ExitCode::Harness);
        assert!(root.to_string().contains("not running as root"), "{root}");
        assert_eq!(BuildError::Interrupted.exit_code(), ExitCode::Interrupted);
        let m = BuildError::IsoNotReproducible(Box::new(IsoMismatch {
            first: "aa".into(),
            second: "bb".into(),
            first_tree: "/c/a".into(),
            second_tree: "/c/b".into(),
            log: Some("/c/b/build.log".into()),
            differences: "├── boot/efiboot.img".into(),
        }));
        assert_eq!(m.exit_code(), ExitCode::BuildFailed);
        let text = m.to_string();
        assert!(
            text.contains("aa (cached, /c/a) vs bb (rebuilt, /c/b)"),
            "{text}"
        );
        assert!(
            text.ends_with("what differs:\n├── boot/efiboot.img"),
            "{text}"
        );
        let g = BuildError::GuestProgram {
            program: "xsc_ring_test.c".into(),
            message: "gcc failed".into(),
        };
        assert_eq!(g.exit_code(), ExitCode::BuildFailed);
        let tools =
            super::super::tools::check_tools(&[("/nonexistent/xsc-tool", "xsc-pkg")]).unwrap_err();
        assert_eq!(tools.exit_code(), ExitCode::Harness);
        assert!(tools.to_string().ends_with("apt-get install -y xsc-pkg"));
    }
}
