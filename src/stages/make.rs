//! `make` for the kernel: the reproducible-build environment (KBUILD_BUILD_*, from the
//! stage's epoch, `sys::epoch`), the make command lines, and following the build log to
//! show compact progress.
//!
//! The full output goes to the log via `process::run`; progress is read back from that
//! log while make runs, so the one place that runs programs stays `process`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::BuildError;
use super::progress::BuildEvent;
use crate::sys::process::{self, Captured, Cmd, ProcessError};

/// The environment that makes two builds of the same inputs bit-identical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BuildEnv {
    /// Seconds since the epoch used as the build time.
    pub epoch: i64,
    /// `-j` value.
    pub jobs: usize,
}

impl BuildEnv {
    /// An environment for `epoch` with `jobs` (default: the number of CPUs).
    pub(crate) fn new(epoch: i64, jobs: Option<usize>) -> BuildEnv {
        let jobs = jobs
            .filter(|j| *j > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        BuildEnv { epoch, jobs }
    }

    /// The KBUILD_* variables (name, value).
    pub(crate) fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KBUILD_BUILD_TIMESTAMP", kbuild_timestamp(self.epoch)),
            ("KBUILD_BUILD_USER", "xsc".into()),
            ("KBUILD_BUILD_HOST", "xsc-release".into()),
            ("KBUILD_BUILD_VERSION", "1".into()),
        ]
    }

    /// Adds the variables to a command.
    pub(crate) fn apply(&self, mut cmd: Cmd) -> Cmd {
        for (k, v) in self.vars() {
            cmd = cmd.env(k, v);
        }
        cmd
    }
}

/// `date`'s default format in UTC (`Thu Jan  1 00:00:00 UTC 1970`), what kbuild would
/// have printed itself; computed here so the host's TZ and locale cannot leak in.
pub(crate) fn kbuild_timestamp(epoch: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m - 1).unwrap_or(0)];
    format!(
        "{weekday} {month} {d:>2} {:02}:{:02}:{:02} UTC {y}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `20261130T020304Z` for log names.
pub(crate) fn compact_utc(epoch: i64) -> String {
    let (days, secs) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil: (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `make -j<N> <targets…>` with the reproducible environment.
pub(crate) fn make_cmd(tree: &Path, env: &BuildEnv, targets: &[&str]) -> Cmd {
    let mut argv = vec!["make".to_string(), format!("-j{}", env.jobs)];
    argv.extend(targets.iter().map(|t| (*t).to_string()));
    env.apply(Cmd::new(argv).cwd(tree))
}

/// `make -s kernelrelease`.
pub(crate) fn kernelrelease_cmd(tree: &Path, env: &BuildEnv) -> Cmd {
    env.apply(Cmd::new(["make", "-s", "kernelrelease"]).cwd(tree))
}

/// `make modules_install INSTALL_MOD_PATH=<dest> INSTALL_MOD_STRIP=1`.
pub(crate) fn modules_install_cmd(tree: &Path, env: &BuildEnv, dest: &Path) -> Cmd {
    env.apply(
        Cmd::new([
            "make".to_string(),
            "modules_install".to_string(),
            format!("INSTALL_MOD_PATH={}", dest.display()),
            "INSTALL_MOD_STRIP=1".to_string(),
        ])
        .cwd(tree),
    )
}

/// Reads what a log gained since the last call: line count and the last kbuild target
/// line (`  CC      kernel/fork.o` → `CC kernel/fork.o`).
#[derive(Debug)]
pub(crate) struct LogFollower {
    path: PathBuf,
    offset: u64,
    partial: String,
    /// Lines seen so far.
    pub lines: u64,
    /// The last kbuild short-output line.
    pub last_target: Option<String>,
}

impl LogFollower {
    /// Follows `path` from its current end.
    pub(crate) fn from_end(path: &Path) -> LogFollower {
        let offset = std::fs::metadata(path).map_or(0, |m| m.len());
        LogFollower {
            path: path.to_path_buf(),
            offset,
            partial: String::new(),
            lines: 0,
            last_target: None,
        }
    }

    /// Reads new bytes; true when any new complete line arrived.
    pub(crate) fn poll(&mut self) -> bool {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return false;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return false;
        }
        let mut buf = Vec::new();
        let Ok(n) = f.read_to_end(&mut buf) else {
            return false;
        };
        self.offset += n as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let mut changed = false;
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            self.lines += 1;
            changed = true;
            if let Some(t) = target_line(line.trim_end()) {
                self.last_target = Some(t);
            }
        }
        changed
    }
}

/// `  CC      kernel/fork.o` → `CC kernel/fork.o` (kbuild); `make[2]: Entering directory
/// '/w/glibc/build/io'` → `dir io` and `gcc x.c -c … -o /w/build/io/x.o …` → `CC io/x.o`
/// (glibc, which prints whole command lines);
/// `None` for other lines.
pub(crate) fn target_line(line: &str) -> Option<String> {
    if line.starts_with("gcc ") {
        // glibc prints whole compiler lines: show the object, relative to its directory.
        let mut words = line.split_whitespace();
        words.find(|w| *w == "-o")?;
        let out = words.next()?;
        let mut parts = out.rsplit('/');
        let file = parts.next()?;
        return Some(match parts.next() {
            Some(dir) if !dir.is_empty() => format!("CC {dir}/{file}"),
            _ => format!("CC {file}"),
        });
    }
    if let Some(rest) = line.strip_prefix("make[") {
        let dir = rest
            .split_once("]: Entering directory '")?
            .1
            .strip_suffix('\'')?;
        let last = dir.rsplit('/').next().filter(|d| !d.is_empty())?;
        return Some(format!("dir {last}"));
    }
    let rest = line.strip_prefix("  ")?;
    let (tag, path) = rest.split_once(char::is_whitespace)?;
    let path = path.trim();
    let tag_ok = !tag.is_empty()
        && tag.len() <= 12
        && tag
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"_-[]".contains(&b));
    (tag_ok && !path.is_empty() && !path.contains(' ')).then(|| format!("{tag} {path}"))
}

/// Runs `cmd` with its output appended to `log`, reporting [`BuildEvent::Make`] progress
/// from the log every half second.
pub(crate) async fn run_following(
    cmd: &Cmd,
    log: &Path,
    step: &str,
    progress: &mut (dyn FnMut(&BuildEvent) + Send),
) -> Result<Captured, BuildError> {
    let mut follower = LogFollower::from_end(log);
    let start = follower.offset;
    let run = process::run(cmd, Some(log));
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let result: Result<Captured, ProcessError> = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = tick.tick() => {
                if follower.poll() {
                    progress(&BuildEvent::Make { step: step.to_string(), lines: follower.lines, last: follower.last_target.clone() });
                }
            }
        }
    };
    follower.poll();
    progress(&BuildEvent::Make {
        step: step.to_string(),
        lines: follower.lines,
        last: follower.last_target.clone(),
    });
    result.map_err(|source| match source {
        ProcessError::Failed { .. } => {
            let bytes = std::fs::read(log).unwrap_or_default();
            let from = usize::try_from(start).unwrap_or(0).min(bytes.len());
            BuildError::MakeFailed {
                step: step.to_string(),
                errors: first_errors(&String::from_utf8_lossy(&bytes[from..]), 5),
                source: Box::new(source),
            }
        }
        other => BuildError::Step {
            step: step.to_string(),
            source: other,
        },
    })
}

/// The first `max` compiler/linker error lines of make output, else make's `***` lines.
pub(crate) fn first_errors(output: &str, max: usize) -> Vec<String> {
    let pick = |f: &dyn Fn(&str) -> bool| -> Vec<String> {
        output
            .lines()
            .filter(|l| f(l))
            .take(max)
            .map(|l| l.trim().to_string())
            .collect()
    };
    let errors = pick(&|l: &str| {
        l.contains(" error: ") || l.contains(": error: ") || l.contains("undefined reference")
    });
    if errors.is_empty() {
        pick(&|l: &str| l.starts_with("make") && l.contains("***"))
    } else {
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_date_s_format() {
        assert_eq!(kbuild_timestamp(0), "Thu Jan  1 00:00:00 UTC 1970");
        // `TZ=UTC date -d @1764468183` → Sun Nov 30 02:03:03 UTC 2025
        assert_eq!(
            kbuild_timestamp(1_764_468_183),
            "Sun Nov 30 02:03:03 UTC 2025"
        );
        assert_eq!(
            kbuild_timestamp(951_782_400),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        assert_eq!(compact_utc(1_764_468_183), "20251130T020303Z");
    }

    #[test]
    fn make_carries_the_reproducible_environment() {
        let env = BuildEnv { epoch: 0, jobs: 2 };
        let cmd = make_cmd(Path::new("/w/linux"), &env, &["bzImage", "modules"]);
        assert_eq!(
            cmd.to_string(),
            "(cd /w/linux && KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 1970' KBUILD_BUILD_USER=xsc \
             KBUILD_BUILD_HOST=xsc-release KBUILD_BUILD_VERSION=1 make -j2 bzImage modules)"
        );
        assert_eq!(
            kernelrelease_cmd(Path::new("/w"), &env).argv,
            ["make", "-s", "kernelrelease"].map(std::ffi::OsString::from)
        );
        assert_eq!(
            modules_install_cmd(Path::new("/w"), &env, Path::new("/e/modules")).argv[1..],
            [
                "modules_install",
                "INSTALL_MOD_PATH=/e/modules",
                "INSTALL_MOD_STRIP=1"
            ]
            .map(std::ffi::OsString::from)
        );
        assert!(BuildEnv::new(0, None).jobs >= 1);
        assert_eq!(BuildEnv::new(0, Some(3)).jobs, 3);
    }

    #[test]
    fn compiler_errors_are_lifted_out_of_the_log() {
        let out = "  CC      drivers/xsc/xsc_ops_fs.o\n\
                   drivers/xsc/xsc_internal.h:12:28: warning: \"/*\" within comment [-Wcomment]\n\
                   drivers/xsc/xsc_ops_fs.c:30:51: error: implicit declaration of function 'ARRAY_SIZE'\n\
                   make[3]: *** [scripts/Makefile.build:255: drivers/xsc/xsc_ops_fs.o] Error 1\n";
        assert_eq!(
            first_errors(out, 5),
            [
                "drivers/xsc/xsc_ops_fs.c:30:51: error: implicit declaration of function 'ARRAY_SIZE'"
            ]
        );
        assert_eq!(
            first_errors("make: *** [Makefile:2065: .] Error 2\n", 5),
            ["make: *** [Makefile:2065: .] Error 2"]
        );
    }

    #[tokio::test]
    async fn a_failing_make_names_its_first_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        std::fs::write(&log, "earlier: error: not this run\n").unwrap();
        std::fs::write(
            dir.path().join("Makefile"),
            "all:\n\t@echo 'x.c:1:2: error: boom' >&2; exit 1\n",
        )
        .unwrap();
        let cmd = Cmd::new(["make", "-s"]).cwd(dir.path());
        let mut events = Vec::new();
        let err = run_following(&cmd, &log, "make all", &mut |e: &BuildEvent| {
            events.push(e.clone());
        })
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BuildFailed);
        assert!(
            err.to_string()
                .starts_with("make all failed:\n  x.c:1:2: error: boom"),
            "{err}"
        );
        assert!(
            matches!(events.last(), Some(BuildEvent::Make { lines, .. }) if *lines >= 2),
            "{events:?}"
        );
    }

    #[test]
    fn target_lines_are_recognised() {
        assert_eq!(
            target_line("  CC      kernel/fork.o").as_deref(),
            Some("CC kernel/fork.o")
        );
        assert_eq!(target_line("  LD [M]  drivers/x.ko").as_deref(), None); // two words: not a path
        assert_eq!(
            target_line("  HOSTCC  scripts/basic/fixdep").as_deref(),
            Some("HOSTCC scripts/basic/fixdep")
        );
        assert_eq!(
            target_line("Kernel: arch/x86/boot/bzImage is ready  (#1)"),
            None
        );
        assert_eq!(target_line("make[1]: Entering directory"), None);
        assert_eq!(
            target_line("make[2]: Entering directory '/w/glibc/src/nptl'").as_deref(),
            Some("dir nptl")
        );
        assert_eq!(
            target_line("make[2]: Leaving directory '/w/glibc/src/nptl'"),
            None
        );
    }

    #[test]
    fn the_follower_counts_only_new_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("b.log");
        std::fs::write(&log, "old\n").unwrap();
        let mut f = LogFollower::from_end(&log);
        assert!(!f.poll());
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(
            &mut file,
            b"  CC      init/main.o\n  AR      init/built-in.a\npart",
        )
        .unwrap();
        assert!(f.poll());
        assert_eq!(
            (f.lines, f.last_target.as_deref()),
            (2, Some("AR init/built-in.a"))
        );
        std::io::Write::write_all(&mut file, b"ial\n").unwrap();
        assert!(f.poll());
        assert_eq!(f.lines, 3);
    }
}
