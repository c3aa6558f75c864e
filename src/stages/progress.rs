//! What a build stage tells its caller while it runs, and the compact stderr display of it.
//!
//! The build emits events and never prints; the CLI chooses the display (a rewritten line
//! on a terminal, an occasional plain line in CI logs), the test runner may ignore them.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One thing that happened during a build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BuildEvent {
    /// The key was computed and found in the cache: no build.
    CacheHit {
        /// The entry directory.
        dir: PathBuf,
    },
    /// A step started (`unpack`, `quilt push`, `configure`, `make bzImage`, …).
    Step {
        /// Short name.
        name: String,
        /// Extra detail (a path, "incremental").
        detail: String,
    },
    /// make is running: lines of output so far and the last target line.
    Make {
        /// The step (`make bzImage`).
        step: String,
        /// Lines written to the log by this step so far.
        lines: u64,
        /// Last kbuild short-output line (`CC kernel/fork.o`).
        last: Option<String>,
    },
    /// The full log of this build.
    Log {
        /// Its path.
        path: PathBuf,
    },
}

/// A progress sink that writes compact lines to stderr: on a terminal one line rewritten
/// in place, otherwise steps plus a make line at most every 30 s (CI logs stay short).
pub(crate) fn stderr_progress(stage: &'static str) -> impl FnMut(&BuildEvent) + Send {
    let tty = std::io::stderr().is_terminal();
    let mut last_print: Option<Instant> = None;
    let mut open_line = false;
    move |event: &BuildEvent| {
        let mut err = std::io::stderr().lock();
        let text = match event {
            BuildEvent::Make { step, lines, last } => {
                let now = Instant::now();
                if !tty
                    && last_print.is_some_and(|t| now.duration_since(t) < Duration::from_secs(30))
                {
                    return;
                }
                last_print = Some(now);
                let line = format!(
                    "  {step}: {lines} lines{}",
                    last.as_ref().map(|l| format!(", {l}")).unwrap_or_default()
                );
                if tty {
                    let _ = write!(err, "\r\x1b[2K{}", truncate(&line, 100));
                    open_line = true;
                    return;
                }
                line
            }
            BuildEvent::Step { name, detail } if detail.is_empty() => format!("{stage}: {name}"),
            BuildEvent::Step { name, detail } => format!("{stage}: {name} ({detail})"),
            BuildEvent::CacheHit { dir } => format!("{stage}: cache hit: {}", dir.display()),
            BuildEvent::Log { path } => format!("{stage}: full log: {}", path.display()),
        };
        if open_line {
            let _ = write!(err, "\r\x1b[2K");
            open_line = false;
        }
        let _ = writeln!(err, "{text}");
    }
}

/// [`stderr_progress`] for a build that another command asked for (a scenario needs the
/// image): silent on a cache hit; before the first sign of a build, one `announce` line
/// saying what is built and why.
pub(crate) fn announced_progress(
    stage: &'static str,
    announce: String,
) -> impl FnMut(&BuildEvent) + Send {
    let mut inner = stderr_progress(stage);
    let mut announced = false;
    move |event: &BuildEvent| {
        if matches!(event, BuildEvent::CacheHit { .. }) {
            return;
        }
        if !announced {
            announced = true;
            let _ = writeln!(std::io::stderr().lock(), "{announce}");
        }
        inner(event);
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).chain(['…']).collect()
    }
}
