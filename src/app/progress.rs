//! How a running build looks on stderr: the rendering of [`BuildEvent`]s, and the build
//! durations that give the bar its length.
//!
//! On a terminal (and not under CI) a long stage is an indicatif bar whose length is the
//! previous build of the same stage (`<cache>/host/durations.json`), with step lines
//! printed above it; without a previous build it is a spinner. Elsewhere (CI logs, a pipe)
//! the output is plain lines: every step, and a make line at most every 30 s, so CI logs
//! stay short. Stages only emit events; this is the one place that draws them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stages::progress::BuildEvent;

/// How events are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// An indicatif bar (or spinner) on the terminal.
    Bar,
    /// Plain lines, for logs.
    Plain,
}

impl Mode {
    /// Bar when stderr is a terminal and `CI` is unset (CI runners often fake a tty).
    pub(crate) fn detect() -> Mode {
        Mode::choose(
            std::io::stderr().is_terminal(),
            std::env::var_os("CI").is_some_and(|v| !v.is_empty()),
        )
    }

    /// The pure rule behind [`Mode::detect`].
    pub(crate) fn choose(stderr_is_terminal: bool, ci: bool) -> Mode {
        if stderr_is_terminal && !ci {
            Mode::Bar
        } else {
            Mode::Plain
        }
    }
}

/// The plain line for an event, `None` when it is not shown; `last_make` is when the
/// previous make line was shown (make lines are throttled to one per 30 s).
pub(crate) fn plain_line(
    stage: &str,
    event: &BuildEvent,
    now: Instant,
    last_make: &mut Option<Instant>,
) -> Option<String> {
    Some(match event {
        BuildEvent::Make { step, lines, last } => {
            if last_make.is_some_and(|t| now.duration_since(t) < Duration::from_secs(30)) {
                return None;
            }
            *last_make = Some(now);
            make_line(step, *lines, last.as_deref())
        }
        BuildEvent::Step { name, detail } if detail.is_empty() => format!("{stage}: {name}"),
        BuildEvent::Step { name, detail } => format!("{stage}: {name} ({detail})"),
        BuildEvent::CacheHit { dir } => format!("{stage}: cache hit: {}", dir.display()),
        BuildEvent::Log { path } => format!("{stage}: full log: {}", path.display()),
    })
}

fn make_line(step: &str, lines: u64, last: Option<&str>) -> String {
    format!(
        "  {step}: {lines} lines{}",
        last.map(|l| format!(", {l}")).unwrap_or_default()
    )
}

/// The display of one stage's build: plain lines or a bar sized by `estimate`.
pub(crate) struct StageProgress {
    stage: &'static str,
    mode: Mode,
    estimate: Option<Duration>,
    started: Instant,
    last_make: Option<Instant>,
    bar: Option<ProgressBar>,
}

impl StageProgress {
    /// A display for `stage`; `estimate` is the previous build's duration.
    pub(crate) fn new(stage: &'static str, mode: Mode, estimate: Option<Duration>) -> Self {
        StageProgress {
            stage,
            mode,
            estimate,
            started: Instant::now(),
            last_make: None,
            bar: None,
        }
    }

    /// Draws one event.
    pub(crate) fn event(&mut self, event: &BuildEvent) {
        if self.mode == Mode::Plain {
            if let Some(line) = plain_line(self.stage, event, Instant::now(), &mut self.last_make) {
                eprintln!("{line}");
            }
            return;
        }
        match event {
            BuildEvent::Make { step, lines, last } => {
                let bar = self.bar();
                bar.set_message(make_line(step, *lines, last.as_deref()).trim().to_string());
                self.tick();
            }
            other => {
                let line =
                    plain_line(self.stage, other, Instant::now(), &mut None).unwrap_or_default();
                // A cache hit draws no bar: nothing is built.
                if matches!(other, BuildEvent::CacheHit { .. }) && self.bar.is_none() {
                    eprintln!("{line}");
                    return;
                }
                self.bar().println(line);
                self.tick();
            }
        }
    }

    /// The bar, made when the first build event arrives.
    fn bar(&mut self) -> &ProgressBar {
        let (stage, estimate, started) = (self.stage, self.estimate, self.started);
        self.bar.get_or_insert_with(|| {
            let bar = match estimate {
                Some(est) => {
                    let style = ProgressStyle::with_template(&format!(
                        "{{prefix}} [{{bar:30}}] {{elapsed}} of ~{} {{wide_msg}}",
                        humantime::format_duration(Duration::from_secs(est.as_secs()))
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    ProgressBar::with_draw_target(
                        Some(est.as_secs().max(1)),
                        ProgressDrawTarget::stderr(),
                    )
                    .with_style(style)
                }
                None => {
                    let style = ProgressStyle::with_template(
                        "{prefix} {spinner} {elapsed} (first build: no estimate) {wide_msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                        .with_style(style)
                }
            };
            bar.set_prefix(stage);
            bar.enable_steady_tick(Duration::from_millis(200));
            // The bar's clock starts with the build, not with its first event.
            bar.set_elapsed(started.elapsed());
            bar
        })
    }

    /// Moves the bar to the elapsed time; past the estimate it stays just short of full.
    fn tick(&mut self) {
        let secs = self.started.elapsed().as_secs();
        if let Some(bar) = &self.bar {
            if let Some(len) = bar.length() {
                bar.set_position(secs.min(len.saturating_sub(1)));
            }
        }
    }
}

impl Drop for StageProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The cache whose `host/durations.json` sizes the bars; set by [`install`].
static CACHE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// The sink of `stage` for this process: a bar sized by the stage's previous build on a
/// terminal, plain lines elsewhere.
pub(crate) fn stderr_progress(stage: &'static str) -> impl FnMut(&BuildEvent) + Send {
    let estimate = CACHE_DIR.get().and_then(|dir| last_duration(dir, stage));
    let mut p = StageProgress::new(stage, Mode::detect(), estimate);
    move |e: &BuildEvent| p.event(e)
}

/// Called once the config is loaded: remembers the cache (bar estimates) and installs the
/// display for stages that build without being handed a sink (`stages::progress::sink`).
/// The first call wins.
pub(crate) fn install(cache_dir: &Path) {
    let _ = CACHE_DIR.set(cache_dir.to_path_buf());
    crate::stages::progress::set_display(Box::new(|stage| Box::new(stderr_progress(stage))));
    // A multi-phase scenario's phase boundaries and installer progress: on stderr, so
    // `test --json` keeps stdout to its document.
    crate::boot::progress::set_display(Box::new(|line| eprintln!("{line}")));
}

/// `<cache>/host/durations.json`: seconds of the last finished build of each stage.
pub(crate) fn durations_file(cache_dir: &Path) -> PathBuf {
    cache_dir.join("host").join("durations.json")
}

fn read_durations(file: &Path) -> BTreeMap<String, f64> {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The duration of the last finished build of `stage`, if one was recorded.
pub(crate) fn last_duration(cache_dir: &Path, stage: &str) -> Option<Duration> {
    read_durations(&durations_file(cache_dir))
        .get(stage)
        .filter(|s| s.is_finite() && **s > 0.0)
        .map(|s| Duration::from_secs_f64(*s))
}

/// Records a finished build of `stage`. Best effort: an unwritable cache costs only the
/// next bar's estimate, so a failure is logged, not returned.
pub(crate) fn record_duration(cache_dir: &Path, stage: &str, took: Duration) {
    let file = durations_file(cache_dir);
    let mut all = read_durations(&file);
    all.insert(stage.to_string(), took.as_secs_f64());
    let write = || -> std::io::Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A concurrent reader sees the old file or the new, never half.
        crate::sys::atomic_file::write(&file, &serde_json::to_vec_pretty(&all).unwrap_or_default())
    };
    if let Err(e) = write() {
        tracing::warn!(
            "cannot record the build duration in {}: {e}",
            file.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_is_for_a_terminal_outside_ci() {
        assert_eq!(Mode::choose(true, false), Mode::Bar);
        assert_eq!(Mode::choose(true, true), Mode::Plain);
        assert_eq!(Mode::choose(false, false), Mode::Plain);
    }

    #[test]
    fn plain_lines_are_as_before_and_make_lines_are_throttled() {
        let t0 = Instant::now();
        let mut last = None;
        let step = BuildEvent::Step {
            name: "configure".into(),
            detail: String::new(),
        };
        assert_eq!(
            plain_line("kernel", &step, t0, &mut last).as_deref(),
            Some("kernel: configure")
        );
        let make = BuildEvent::Make {
            step: "make bzImage".into(),
            lines: 12,
            last: Some("CC kernel/fork.o".into()),
        };
        assert_eq!(
            plain_line("kernel", &make, t0, &mut last).as_deref(),
            Some("  make bzImage: 12 lines, CC kernel/fork.o")
        );
        assert_eq!(
            plain_line("kernel", &make, t0 + Duration::from_secs(29), &mut last),
            None
        );
        assert!(plain_line("kernel", &make, t0 + Duration::from_secs(31), &mut last).is_some());
        let hit = BuildEvent::CacheHit { dir: "/c/e".into() };
        assert_eq!(
            plain_line("glibc", &hit, t0, &mut last).as_deref(),
            Some("glibc: cache hit: /c/e")
        );
    }

    #[test]
    fn a_bar_takes_every_event_and_outlives_its_estimate() {
        // stderr is not a terminal under the test harness: indicatif draws nothing, but
        // the bar's state is exercised all the same.
        let mut p = StageProgress::new("kernel", Mode::Bar, Some(Duration::from_secs(1)));
        p.event(&BuildEvent::Log {
            path: "/l/build.log".into(),
        });
        p.event(&BuildEvent::Step {
            name: "make bzImage".into(),
            detail: String::new(),
        });
        std::thread::sleep(Duration::from_millis(1100));
        p.event(&BuildEvent::Make {
            step: "make bzImage".into(),
            lines: 3,
            last: None,
        });
        let bar = p.bar.as_ref().expect("a build event makes the bar");
        assert_eq!(bar.length(), Some(1));
        assert!(
            bar.position() < 1,
            "past the estimate the bar is never full"
        );
        // A cache hit alone draws no bar.
        let mut hit = StageProgress::new("glibc", Mode::Bar, None);
        hit.event(&BuildEvent::CacheHit { dir: "/c/e".into() });
        assert!(hit.bar.is_none());
    }

    #[test]
    fn durations_are_remembered_per_stage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last_duration(dir.path(), "kernel"), None);
        record_duration(dir.path(), "kernel", Duration::from_secs(90));
        record_duration(dir.path(), "glibc", Duration::from_secs(30));
        record_duration(dir.path(), "kernel", Duration::from_secs(120));
        assert_eq!(
            last_duration(dir.path(), "kernel"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            last_duration(dir.path(), "glibc"),
            Some(Duration::from_secs(30))
        );
        // A damaged file is no estimate, not an error.
        std::fs::write(durations_file(dir.path()), "{").unwrap();
        assert_eq!(last_duration(dir.path(), "kernel"), None);
    }
}
