//! What a build stage tells its caller while it runs ([`BuildEvent`]) and the sink type
//! that receives it. Stages never print: the app chooses the display (src/app/progress.rs:
//! a bar on a terminal, plain lines in CI logs), the test runner may ignore events.
//!
//! Callers pass a sink to `build_kernel`/`build_glibc`. Code that builds a stage without
//! being handed one (the Debian stage's own kernel and glibc builds, the runner's prepare
//! step) asks [`sink`] for the display the app installed with [`set_display`]: stages
//! depend on this hook, never on the app.

use std::path::PathBuf;
use std::sync::OnceLock;

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

/// A progress sink: what `build_*` calls with each event.
pub(crate) type Sink = Box<dyn FnMut(&BuildEvent) + Send>;

/// Makes the sink of one stage (`kernel`, `glibc`, `debian`).
pub(crate) type Display = Box<dyn Fn(&'static str) -> Sink + Send + Sync>;

/// The display the app installed; unset in unit tests and library use (events dropped).
static DISPLAY: OnceLock<Display> = OnceLock::new();

/// Installs the process's display (the first call wins: one display per process).
pub(crate) fn set_display(display: Display) {
    let _ = DISPLAY.set(display);
}

/// The installed display's sink for `stage`, or one that drops events.
pub(crate) fn sink(stage: &'static str) -> Sink {
    match DISPLAY.get() {
        Some(display) => display(stage),
        None => Box::new(|_: &BuildEvent| {}),
    }
}

/// [`stderr_progress`] for a build that another command asked for (a scenario needs the
/// image): silent on a cache hit; before the first sign of a build, one `announce` line
/// saying what is built and why.
pub(crate) fn announced_progress(
    stage: &'static str,
    announce: String,
) -> impl FnMut(&BuildEvent) + Send {
    let mut inner = sink(stage);
    let mut announced = false;
    move |event: &BuildEvent| {
        if matches!(event, BuildEvent::CacheHit { .. }) {
            return;
        }
        if !announced {
            announced = true;
            // The announcement is a step like any other: the app's display prints it.
            inner(&BuildEvent::Step {
                name: announce.clone(),
                detail: String::new(),
            });
        }
        inner(event);
    }
}

/// The old name of [`sink`], kept while callers that predate the display hook
/// (stages/debian.rs, run/prepare.rs) still use it; it prints nothing itself.
pub(crate) fn stderr_progress(stage: &'static str) -> impl FnMut(&BuildEvent) + Send {
    sink(stage)
}
