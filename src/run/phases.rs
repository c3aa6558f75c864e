//! Multi-phase scenarios (`[[phase]]`, docs/scenarios.md): a blank qcow2 disk in the
//! scenario's run directory, then each phase as a machine run of its own with that disk as
//! `/dev/vda` (and, under UEFI, one OVMF VARS copy for all phases, where an installer's
//! boot entry lives). Phase 1 typically boots an ISO that installs onto the disk and powers
//! off; phase 2 boots the disk and runs the self-test. A phase that does not pass ends the
//! scenario; the phases' results become one result whose cases are `<phase>.<case>`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use regex::Regex;
use tokio::sync::watch;

use crate::boot::progress::{self, ConsoleProgress};
use crate::boot::qemu_args::Boot;
use crate::error::Error;
use crate::input::scenario::{Expect, PhaseBoot, Scenario};
use crate::observe::verdict::{CaseResult, CaseStatus, ScenarioResult};
use crate::run::{Ctx, MachineSetup, PreparedImage, boot_one, prepare, uefi_vars};
use crate::sys::process::{self, Cmd};

/// The disk's file name in the scenario's run directory.
pub(crate) const DISK_FILE: &str = "disk.qcow2";

/// Creating a sparse qcow2 file takes well under a second; a minute means trouble.
const QEMU_IMG_DEADLINE: Duration = Duration::from_secs(60);

/// `qemu-img create` of the blank disk: qcow2, so it grows only as the guest writes.
pub(crate) fn create_disk_cmd(path: &Path, size_mb: u64) -> Cmd {
    Cmd::new([
        "qemu-img".into(),
        "create".into(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        path.as_os_str().to_owned(),
        format!("{size_mb}M").into(),
    ])
    .deadline(QEMU_IMG_DEADLINE)
}

/// Runs every phase of `scenario` in order on one fresh disk. `image` is the scenario's
/// prepared image when the caller has it (a gate's, keyed for its verdict): an ISO for
/// the phases that boot the image, or the first phase's kernel and initramfs.
pub(crate) async fn run(
    ctx: &Ctx<'_>,
    scenario: &Scenario,
    image: Option<PreparedImage>,
    cancel: watch::Receiver<bool>,
) -> Result<ScenarioResult, Error> {
    let started = SystemTime::now();
    let dir = ctx.cfg.run_dir(&ctx.opts.run_id).join(&scenario.name);
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let size_mb = scenario.disk.map_or(1024, |d| d.size_mb);
    let disk = dir.join(DISK_FILE);
    let _ = std::fs::remove_file(&disk);
    if process::which("qemu-img").is_none() {
        return Err(Error::MissingTool {
            tool: "qemu-img".into(),
            package: "qemu-utils",
            why: format!(
                "scenario {} boots its phases on a blank disk",
                scenario.name
            ),
        });
    }
    let log = dir.join("qemu-img.log");
    process::run(&create_disk_cmd(&disk, size_mb), Some(&log))
        .await
        .map_err(|e| Error::Io {
            path: disk.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let ovmf = uefi_vars(scenario, &dir)?;
    let iso = scenario.image.is_iso();
    let mut image = image;
    let mut done: Vec<(String, ScenarioResult)> = Vec::new();
    let mut stopped_by: Option<String> = None;
    for (i, phase) in scenario.phases.iter().enumerate() {
        if stopped_by.is_some() {
            break;
        }
        let ps = scenario.phase_scenario(i);
        let img = match phase.boot {
            PhaseBoot::Disk => PreparedImage {
                boot: Boot::FromDisk,
                probe_kernel: None,
                properties: vec![],
                built: vec![],
            },
            // An ISO is the same for every phase that boots it: prepared once.
            PhaseBoot::Image if iso => match &image {
                Some(img) => img.clone(),
                None => {
                    let img = prepare(ctx.cfg, ctx.cache, &ps, ctx.opts).await?;
                    image = Some(img.clone());
                    img
                }
            },
            // A kernel boots each phase's own programs.
            PhaseBoot::Image => match image.take().filter(|_| i == 0) {
                Some(img) => img,
                None => prepare(ctx.cfg, ctx.cache, &ps, ctx.opts).await?,
            },
        };
        let state_dir = dir.join(&phase.name);
        std::fs::create_dir_all(&state_dir).map_err(Error::io(&state_dir))?;
        let label = format!("{}/{}", scenario.name, phase.name);
        progress::show(&format!(
            "  {label}: phase {} of {} starts ({})",
            i + 1,
            scenario.phases.len(),
            match phase.boot {
                PhaseBoot::Image if iso => "the ISO, with the disk",
                PhaseBoot::Image => "the kernel, with the disk",
                PhaseBoot::Disk => "the disk",
            }
        ));
        let pattern = match &phase.progress {
            Some(re) => Some(
                Regex::new(re).map_err(|e| Error::Usage(format!("invalid progress regex: {e}")))?,
            ),
            None => None,
        };
        let setup = MachineSetup {
            state_dir,
            ovmf: ovmf.clone(),
            disk: Some(disk.clone()),
            progress: pattern.map(|pattern| ConsoleProgress {
                label: label.clone(),
                pattern,
            }),
            ktap_required: phase.expect == Expect::Ktap,
        };
        let r = boot_one(ctx, &ps, &img, setup, cancel.clone(), SystemTime::now()).await?;
        let verdict = if r.passed() { "passed" } else { "did not pass" };
        progress::show(&format!(
            "  {label}: {verdict} ({:.1}s) — {}",
            r.duration.as_secs_f64(),
            r.end.describe()
        ));
        if !r.passed() || *cancel.borrow() {
            stopped_by = Some(phase.name.clone());
        }
        done.push((phase.name.clone(), r));
    }
    let not_run: Vec<String> = scenario.phases[done.len()..]
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let why = match (&stopped_by, *cancel.borrow()) {
        (_, true) => "not run: interrupted".to_string(),
        (Some(p), false) => format!("not run: phase {p} did not pass"),
        (None, false) => String::new(),
    };
    Ok(merge(
        &scenario.name,
        started,
        dir,
        &disk,
        done,
        (&not_run, &why),
    ))
}

/// One result from the phases' results: cases renamed `<phase>.<case>` (each phase's own
/// `boot` first), phases never run as skipped `<phase>.boot` cases saying `why` (the
/// phase that stopped the scenario, or the interrupt), the end, console and logs of the last phase that ran, and per
/// phase its end, time, serial log and QEMU command line as properties.
pub(crate) fn merge(
    name: &str,
    started: SystemTime,
    state_dir: PathBuf,
    disk: &Path,
    phases: Vec<(String, ScenarioResult)>,
    (not_run, why): (&[String], &str),
) -> ScenarioResult {
    let mut cases: Vec<CaseResult> = Vec::new();
    let mut crashes = Vec::new();
    let mut properties = vec![
        (
            "phases".to_string(),
            phases
                .iter()
                .map(|(p, _)| p.as_str())
                .chain(not_run.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("disk".to_string(), disk.display().to_string()),
    ];
    let mut duration = Duration::ZERO;
    let mut last: Option<ScenarioResult> = None;
    for (phase, r) in phases {
        let rename = |c: &CaseResult| CaseResult {
            name: format!("{phase}.{}", c.name),
            ..c.clone()
        };
        cases.extend(r.all_cases().map(rename));
        crashes.extend(r.crashes.iter().cloned());
        duration += r.duration;
        for (k, v) in [
            ("end", r.end.describe()),
            ("time", format!("{:.1}s", r.duration.as_secs_f64())),
            ("serial-log", r.serial_log.display().to_string()),
            ("qemu-cmdline", r.qemu_cmdline.clone()),
        ] {
            properties.push((format!("phase.{phase}.{k}"), v));
        }
        last = Some(r);
    }
    for p in not_run {
        cases.push(CaseResult {
            name: format!("{p}.boot"),
            status: CaseStatus::Skipped {
                reason: why.to_string(),
            },
            diagnostics: vec![],
        });
    }
    let last = last.expect("a multi-phase scenario runs at least its first phase");
    // The last phase's machine facts (accel, QEMU, image) stand for the scenario.
    properties.extend(last.properties.iter().cloned());
    let mut cases = cases.into_iter();
    let boot = cases.next().expect("every phase has a boot case");
    ScenarioResult {
        name: name.to_string(),
        started,
        duration,
        boot,
        cases: cases.collect(),
        end: last.end,
        crashes,
        properties,
        console_tail: last.console_tail,
        serial_log: last.serial_log,
        screendump: last.screendump,
        state_dir,
        qemu_cmdline: last.qemu_cmdline,
        flaky_first_attempt: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::verdict::{FailureKind, RunEnd};

    fn phase_result(end: RunEnd, cases: Vec<CaseResult>, log: &str) -> ScenarioResult {
        ScenarioResult {
            name: "s".into(),
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_secs(2),
            boot: CaseResult::passed("boot"),
            cases,
            end,
            crashes: vec![],
            properties: vec![("accel".into(), "tcg".into())],
            console_tail: format!("tail of {log}"),
            serial_log: PathBuf::from(log),
            screendump: None,
            state_dir: PathBuf::new(),
            qemu_cmdline: format!("qemu {log}"),
            flaky_first_attempt: None,
        }
    }

    #[test]
    fn the_disk_is_a_qcow2_file_of_the_given_size() {
        assert_eq!(
            create_disk_cmd(Path::new("/o/r/s/disk.qcow2"), 12288).to_string(),
            "qemu-img create -q -f qcow2 /o/r/s/disk.qcow2 12288M"
        );
    }

    #[test]
    fn phases_merge_into_one_result_with_phase_named_cases() {
        let install = phase_result(RunEnd::PoweredOff, vec![], "/r/s/install/serial.log");
        let selftest = phase_result(
            RunEnd::PoweredOff,
            vec![CaseResult::passed("xsc_ring_test.nop")],
            "/r/s/selftest/serial.log",
        );
        let r = merge(
            "s",
            SystemTime::UNIX_EPOCH,
            "/r/s".into(),
            Path::new("/r/s/disk.qcow2"),
            vec![("install".into(), install), ("selftest".into(), selftest)],
            (&[], ""),
        );
        let names: Vec<&str> = r.all_cases().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "install.boot",
                "selftest.boot",
                "selftest.xsc_ring_test.nop"
            ]
        );
        assert!(r.passed());
        assert_eq!(r.duration, Duration::from_secs(4));
        assert_eq!(r.serial_log, PathBuf::from("/r/s/selftest/serial.log"));
        let prop = |k: &str| {
            r.properties
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(prop("phases"), Some("install,selftest"));
        assert_eq!(
            prop("phase.install.serial-log"),
            Some("/r/s/install/serial.log")
        );
        assert_eq!(prop("phase.selftest.end"), Some("the guest powered off"));
        assert_eq!(prop("accel"), Some("tcg"));
    }

    #[test]
    fn a_failed_phase_stops_the_scenario_and_later_phases_are_not_run() {
        let install = phase_result(
            RunEnd::Silent(Duration::from_secs(1800)),
            vec![CaseResult::failed("run", FailureKind::Timeout, "silence")],
            "/r/s/install/serial.log",
        );
        let r = merge(
            "s",
            SystemTime::UNIX_EPOCH,
            "/r/s".into(),
            Path::new("/r/s/disk.qcow2"),
            vec![("install".into(), install)],
            (&["selftest".into()], "not run: phase install did not pass"),
        );
        assert!(!r.passed());
        assert_eq!(r.end, RunEnd::Silent(Duration::from_secs(1800)));
        let last = r.cases.last().unwrap();
        assert_eq!(last.name, "selftest.boot");
        assert_eq!(
            last.status,
            CaseStatus::Skipped {
                reason: "not run: phase install did not pass".into()
            }
        );
        assert_eq!(r.cases[0].name, "install.run");
    }
}
