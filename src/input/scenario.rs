//! Scenario files (`scenarios/*.toml`): what to boot, which guest programs to run, which
//! clocks and crash patterns apply, and what a release gate demands.
//!
//! Strict like the config: unknown keys are errors and all problems of all files are
//! reported together with `file:line: key`. docs/scenarios.md is the reference; keep it true.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::input::toml_strict::{Doc, Problem, Problems, Tbl};
use crate::stages::el_install_iso::Distro;

/// What boots.
/// Extra crash patterns a scenario adds to the built-ins (`[crash]`); observe::crash compiles them. Each is a regex matched against the printk
/// *message* (the text after the timestamp and caller id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CrashPatterns {
    /// Lines that end the run at once (kind: the built-in kind they also match, else `custom`).
    pub fatal: Vec<String>,
    /// Lines that fail the run but let it finish.
    pub fail: Vec<String>,
    /// Lines never to report, checked before everything else (e.g. a test that WARNs on
    /// purpose).
    pub ignore: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImageSource {
    /// Debian's stock 6.1 kernel, fetched into the cache with apt.
    StockKernel,
    /// The XSC kernel built by the kernel stage (profile from xsc.toml unless given).
    XscKernel {
        /// Build profile override.
        profile: Option<String>,
    },
    /// A kernel image file.
    KernelFile(PathBuf),
    /// An ISO file, booted as CD or disk.
    Iso(PathBuf),
    /// The Debian live ISO of the `debian-iso` stage (built or taken from the cache like
    /// the XSC kernel; `--no-build` makes a missing one exit 3).
    DebianIso,
    /// The remastered EL9 install ISO of `build alma|rocky` (`alma-iso`, `rocky-iso`):
    /// not applicable while the distribution's base ISO is not configured.
    ElIso(Distro),
}

impl ImageSource {
    /// True for the kinds that boot an ISO (firmware → boot loader → the ISO's own kernel).
    pub(crate) fn is_iso(&self) -> bool {
        matches!(
            self,
            ImageSource::Iso(_) | ImageSource::DebianIso | ImageSource::ElIso(_)
        )
    }
}

/// What one phase of a multi-phase scenario boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PhaseBoot {
    /// The scenario's `[image]` (an ISO as its media says, or the kernel and this phase's
    /// initramfs), with the scenario's disk attached.
    Image,
    /// Only the scenario's disk: the firmware boots what an earlier phase put on it.
    Disk,
}

/// What a phase must show to pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// KTAP results, judged like a single-phase scenario (the default).
    Ktap,
    /// Only that the guest powers off by itself within the clocks, without a crash: an
    /// installer prints no KTAP.
    Poweroff,
}

/// One phase of a multi-phase scenario (`[[phase]]`): a machine run of its own on the
/// scenario's machine and disk, judged on its own; a phase that does not pass ends the
/// scenario there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Phase {
    /// Unique within the scenario; its cases are reported as `<name>.<case>`.
    pub name: String,
    /// What it boots.
    pub boot: PhaseBoot,
    /// What it must show.
    pub expect: Expect,
    /// Regex marking the end of its boot (default: the scenario's `ready`).
    pub ready: String,
    /// Console lines matching this regex are shown while the phase runs (an installer's
    /// progress), so a long phase is not silent.
    pub progress: Option<String>,
    /// `-fw_cfg` items (default: the scenario's).
    pub fw_cfg: Vec<(String, String)>,
    /// Clocks (each unset one: the scenario's).
    pub timeouts: Timeouts,
    /// Guest programs (kernel kinds with `boot = "image"`).
    pub programs: Vec<Program>,
}

/// The blank disk of a multi-phase scenario (`[disk]`): a qcow2 file in the run
/// directory, a virtio disk (`/dev/vda`) in every phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Disk {
    /// Virtual size in MiB.
    pub size_mb: u64,
}

/// How an ISO is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Media {
    /// An IDE CD-ROM (El Torito boot).
    Cdrom,
    /// A virtio disk (the isohybrid MBR/GPT path).
    Disk,
}

/// When a run ends successfully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunUntil {
    /// The guest powers off by itself after its programs (the default).
    Poweroff,
    /// The ready marker is the whole test: the harness stops the VM (QMP `quit`) then.
    Ready,
}

/// Firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Firmware {
    /// SeaBIOS.
    Bios,
    /// OVMF.
    Uefi,
}

/// Which clock the guest runs on (`[machine] clock`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The host's clock: guest time follows wall time (the default).
    #[default]
    Host,
    /// QEMU's instruction counter (`-icount shift=0,sleep=off`, TCG, one vCPU): one guest
    /// nanosecond per guest instruction, so guest timings are instruction counts
    /// (docs/bench.md).
    Icount,
}

impl Clock {
    /// The TOML and report spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Clock::Host => "host",
            Clock::Icount => "icount",
        }
    }
}

/// Which C library a guest program is linked (statically) against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Libc {
    /// The host's glibc (stock Debian 2.36).
    #[default]
    Host,
    /// The XSC glibc of the glibc stage (its sysroot). A scenario with such a program also
    /// carries the XSC glibc runtime (`/xsc/glibc/lib64`) and glibc's own tests
    /// (`/xsc/glibc-tests`) in its initramfs.
    Xsc,
    /// The same series built without `--enable-xsc` (`xsc-disabled`): must behave as
    /// stock glibc.
    XscDisabled,
}

/// One guest program, run in order by the guest's PID 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Program {
    /// KTAP top-level name.
    pub name: String,
    /// A C file under `guest-tests/`, compiled statically by the harness.
    pub source: Option<PathBuf>,
    /// The C library `source` is linked against.
    pub libc: Libc,
    /// Or a command already present in the initramfs (busybox applets).
    pub command: Vec<String>,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Per-program clock, enforced by PID 1 in the guest.
    pub timeout: Option<Duration>,
}

/// Clocks; `None` = the config default scaled for the accelerator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Until the ready marker.
    pub boot: Option<Duration>,
    /// Per guest program.
    pub test: Option<Duration>,
    /// Longest silence on the console.
    pub silence: Option<Duration>,
}

/// Release-gate requirements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gate {
    /// At least this many KTAP cases must be reported.
    pub min_cases: usize,
    /// At most this many skips (0 by default: a gate that skips is not green).
    pub max_skips: usize,
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scenario {
    /// Unique name (file stem by default).
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// sha256 of the file's bytes (JUnit property, verdict cache key).
    pub hash: String,
    /// One line for `scenarios list`.
    pub description: String,
    /// Tags; `release-gate` marks what `candidate` requires.
    pub tags: Vec<String>,
    /// What boots.
    pub image: ImageSource,
    /// An explicit initramfs instead of the one the harness assembles.
    pub initrd: Option<PathBuf>,
    /// Extra kernel arguments (added to the defaults).
    pub append: String,
    /// Firmware.
    pub firmware: Firmware,
    /// Add busybox and its applets to the initramfs.
    pub busybox: bool,
    /// How an ISO is attached (ISO kinds only; default cdrom).
    pub media: Media,
    /// `-fw_cfg name=…,string=…` items for the guest (e.g. the ISO's self-test switch).
    pub fw_cfg: Vec<(String, String)>,
    /// When the run ends.
    pub until: RunUntil,
    /// Guest memory in MiB.
    pub memory_mb: u64,
    /// Virtual CPUs.
    pub cpus: u32,
    /// `auto`, `kvm`, `tcg`; `None` = config default.
    pub accel: Option<String>,
    /// The guest's clock (`icount` forces TCG and one vCPU).
    pub clock: Clock,
    /// Clocks.
    pub timeouts: Timeouts,
    /// Regex marking the end of boot.
    pub ready: String,
    /// Guest programs.
    pub programs: Vec<Program>,
    /// Crash-pattern overrides.
    pub crash: CrashPatterns,
    /// Release gate requirements when tagged `release-gate` (of a multi-phase scenario:
    /// judged on its last phase).
    pub gate: Option<Gate>,
    /// The phases of a multi-phase scenario, in order; empty for a single run.
    pub phases: Vec<Phase>,
    /// The disk the phases share (`[disk]`, only with phases).
    pub disk: Option<Disk>,
}

/// The ready marker the guest init prints.
pub(crate) const DEFAULT_READY: &str = "xsc-init: ready";

impl Program {
    /// A program compiled from `source` (under `guest-tests/`) against the host libc, with
    /// no arguments and the scenario's clock.
    pub(crate) fn from_source(name: impl Into<String>, source: impl Into<PathBuf>) -> Program {
        Program {
            name: name.into(),
            source: Some(source.into()),
            libc: Libc::default(),
            command: vec![],
            args: vec![],
            timeout: None,
        }
    }
}

impl Libc {
    /// The glibc stage variant this library is built by; `None` for the host's.
    pub(crate) fn variant(self) -> Option<crate::stages::GlibcVariant> {
        match self {
            Libc::Host => None,
            Libc::Xsc => Some(crate::stages::GlibcVariant::Xsc),
            Libc::XscDisabled => Some(crate::stages::GlibcVariant::Disabled),
        }
    }
}

impl Scenario {
    /// A scenario booting `image` with every documented default (docs/scenarios.md): the
    /// parser starts from it, and so does the ad-hoc `test --kernel/--iso` run, so the two
    /// cannot drift apart.
    pub(crate) fn with_defaults(
        name: impl Into<String>,
        file: impl Into<PathBuf>,
        hash: impl Into<String>,
        image: ImageSource,
    ) -> Scenario {
        Scenario {
            name: name.into(),
            file: file.into(),
            hash: hash.into(),
            description: String::new(),
            tags: vec![],
            image,
            initrd: None,
            append: String::new(),
            firmware: Firmware::Bios,
            busybox: false,
            media: Media::Cdrom,
            fw_cfg: vec![],
            until: RunUntil::Poweroff,
            memory_mb: 512,
            cpus: 1,
            accel: None,
            clock: Clock::Host,
            timeouts: Timeouts::default(),
            ready: DEFAULT_READY.to_string(),
            programs: vec![],
            crash: CrashPatterns::default(),
            gate: None,
            phases: vec![],
            disk: None,
        }
    }

    /// True when `candidate` requires this scenario.
    pub(crate) fn is_gate(&self) -> bool {
        self.tags.iter().any(|t| t == "release-gate")
    }

    /// The single-phase scenario phase `i` runs as: the same name, image and machine, the
    /// phase's ready marker, clocks, fw_cfg items and programs, until power-off; the gate
    /// only on the last phase.
    pub(crate) fn phase_scenario(&self, i: usize) -> Scenario {
        let p = &self.phases[i];
        Scenario {
            ready: p.ready.clone(),
            fw_cfg: p.fw_cfg.clone(),
            timeouts: p.timeouts.clone(),
            programs: p.programs.clone(),
            until: RunUntil::Poweroff,
            gate: if i + 1 == self.phases.len() {
                self.gate.clone()
            } else {
                None
            },
            phases: vec![],
            disk: None,
            ..self.clone()
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "tags",
    "image",
    "machine",
    "timeouts",
    "ready",
    "until",
    "program",
    "crash",
    "gate",
    "phase",
    "disk",
];

/// Reads and validates one scenario file.
pub(crate) fn load(file: &Path, guest_tests: &Path) -> Result<Scenario, Problems> {
    let bytes = std::fs::read(file).map_err(|e| {
        Problems(vec![Problem {
            file: file.into(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    let hash = crate::sys::cache::sha256_bytes(&bytes);
    let text = String::from_utf8(bytes).map_err(|_| {
        Problems(vec![Problem {
            file: file.into(),
            line: None,
            key: String::new(),
            message: "not UTF-8".into(),
        }])
    })?;
    parse(file, text, hash, guest_tests)
}

fn parse(
    file: &Path,
    text: String,
    hash: String,
    guest_tests: &Path,
) -> Result<Scenario, Problems> {
    let doc = Doc::parse(file, text).map_err(|p| Problems(vec![p]))?;
    // Every key left out falls back to the one set of defaults.
    let defaults = Scenario::with_defaults("", file, "", ImageSource::StockKernel);
    let root = doc.root();
    doc.only_keys(&root, TOP_KEYS);
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let name = doc.str(&root, "name").unwrap_or(stem);
    if !valid_name(&name) {
        doc.problem(
            root.key_span("name"),
            "name",
            format!("invalid name {name:?} (use a-z, 0-9, '-', '_')"),
        );
    }
    let description = doc.str(&root, "description").unwrap_or_default();
    let tags = doc.str_list(&root, "tags").unwrap_or_default();

    let mut image = None;
    let (mut initrd, mut append, mut firmware, mut busybox) = (
        defaults.initrd.clone(),
        defaults.append.clone(),
        defaults.firmware,
        defaults.busybox,
    );
    let mut media = defaults.media;
    match doc.table(&root, "image") {
        Some(t) => {
            doc.only_keys(
                &t,
                &[
                    "kind", "path", "profile", "initrd", "append", "firmware", "busybox", "media",
                ],
            );
            let base = file.parent().unwrap_or(Path::new("."));
            let path = doc.str(&t, "path").map(|p| base.join(p));
            // A named image must be there now: finding out after the run header (or after
            // a build) wastes the user's time and reads like a harness failure.
            if let Some(p) = path.as_ref().filter(|p| !p.is_file()) {
                doc.problem(
                    t.key_span("path"),
                    &t.child("path"),
                    format!("no such file {}", p.display()),
                );
            }
            image = match doc.req_str(&t, "kind").as_deref() {
                Some("stock-kernel") => Some(ImageSource::StockKernel),
                Some("xsc-kernel") => Some(ImageSource::XscKernel {
                    profile: doc.str(&t, "profile"),
                }),
                Some("kernel") => path.clone().map(ImageSource::KernelFile).or_else(|| {
                    doc.problem(
                        t.span(),
                        &t.child("path"),
                        "missing required key (kind = \"kernel\" needs a path)",
                    );
                    None
                }),
                Some("iso") => path.clone().map(ImageSource::Iso).or_else(|| {
                    doc.problem(
                        t.span(),
                        &t.child("path"),
                        "missing required key (kind = \"iso\" needs a path)",
                    );
                    None
                }),
                Some("debian-iso") => Some(ImageSource::DebianIso),
                Some("alma-iso") => Some(ImageSource::ElIso(Distro::Alma)),
                Some("rocky-iso") => Some(ImageSource::ElIso(Distro::Rocky)),
                Some(other) => {
                    doc.problem(
                        t.key_span("kind"),
                        &t.child("kind"),
                        format!("unknown image kind {other:?} (expected stock-kernel, xsc-kernel, kernel, iso, debian-iso, alma-iso or rocky-iso)"),
                    );
                    None
                }
                None => None,
            };
            if path.is_some()
                && matches!(
                    image,
                    Some(
                        ImageSource::StockKernel
                            | ImageSource::XscKernel { .. }
                            | ImageSource::DebianIso
                            | ImageSource::ElIso(_)
                    )
                )
            {
                doc.problem(
                    t.key_span("path"),
                    &t.child("path"),
                    "only kind = \"kernel\" or \"iso\" takes a path",
                );
            }
            media = match doc.str(&t, "media").as_deref() {
                None => defaults.media,
                Some("cdrom") => Media::Cdrom,
                Some("disk") => Media::Disk,
                Some(other) => {
                    doc.problem(
                        t.key_span("media"),
                        &t.child("media"),
                        format!("unknown media {other:?} (expected cdrom or disk)"),
                    );
                    defaults.media
                }
            };
            if t.has("media") && !image.as_ref().is_some_and(ImageSource::is_iso) {
                doc.problem(
                    t.key_span("media"),
                    &t.child("media"),
                    "only an ISO kind (iso, debian-iso, alma-iso, rocky-iso) takes media",
                );
            }
            if image.as_ref().is_some_and(ImageSource::is_iso) {
                for k in ["initrd", "append", "busybox", "profile"] {
                    if t.has(k) {
                        doc.problem(
                            t.key_span(k),
                            &t.child(k),
                            "an ISO boots its own kernel and initramfs: not allowed with an ISO kind",
                        );
                    }
                }
            }
            initrd = doc.str(&t, "initrd").map(|p| base.join(p));
            if let Some(p) = initrd.as_ref().filter(|p| !p.is_file()) {
                doc.problem(
                    t.key_span("initrd"),
                    &t.child("initrd"),
                    format!("no such file {}", p.display()),
                );
            }
            append = doc.str(&t, "append").unwrap_or_default();
            busybox = doc.bool(&t, "busybox").unwrap_or(defaults.busybox);
            firmware = match doc.str(&t, "firmware").as_deref() {
                None => defaults.firmware,
                Some("bios") => Firmware::Bios,
                Some("uefi") => Firmware::Uefi,
                Some(other) => {
                    doc.problem(
                        t.key_span("firmware"),
                        &t.child("firmware"),
                        format!("unknown firmware {other:?} (expected bios or uefi)"),
                    );
                    defaults.firmware
                }
            };
        }
        None => doc.problem(None, "image", "missing required table [image]"),
    }

    let (mut memory_mb, mut cpus, mut accel, mut clock) = (
        defaults.memory_mb,
        defaults.cpus,
        defaults.accel.clone(),
        defaults.clock,
    );
    let mut fw_cfg = Vec::new();
    if let Some(t) = doc.table(&root, "machine") {
        doc.only_keys(&t, &["memory", "cpus", "accel", "clock", "fw-cfg"]);
        if let Some(f) = doc.table(&t, "fw-cfg") {
            fw_cfg = parse_fw_cfg(&doc, &f);
        }
        if let Some(m) = doc.str(&t, "memory") {
            match parse_mib(&m) {
                Some(v) if v >= 64 => memory_mb = v,
                _ => doc.problem(
                    t.key_span("memory"),
                    &t.child("memory"),
                    format!("invalid memory {m:?} (e.g. \"512M\", \"2G\"; at least 64M)"),
                ),
            }
        }
        if let Some(c) = doc.uint(&t, "cpus") {
            match u32::try_from(c) {
                Ok(c) if (1..=64).contains(&c) => cpus = c,
                _ => doc.problem(t.key_span("cpus"), &t.child("cpus"), "cpus must be 1 to 64"),
            }
        }
        if let Some(a) = doc.str(&t, "accel") {
            if ["auto", "kvm", "tcg"].contains(&a.as_str()) {
                accel = Some(a);
            } else {
                doc.problem(
                    t.key_span("accel"),
                    &t.child("accel"),
                    format!("unknown accelerator {a:?} (expected auto, kvm or tcg)"),
                );
            }
        }
        match doc.str(&t, "clock").as_deref() {
            None | Some("host") => {}
            Some("icount") => {
                clock = Clock::Icount;
                // Instruction counting exists only in TCG, and a second vCPU would
                // interleave by host scheduling, which is exactly what icount removes.
                if accel.as_deref() == Some("kvm") {
                    doc.problem(
                        t.key_span("accel"),
                        &t.child("accel"),
                        "clock = \"icount\" needs TCG (accel = \"tcg\" or \"auto\"), not kvm",
                    );
                }
                if cpus != 1 {
                    doc.problem(
                        t.key_span("cpus"),
                        &t.child("cpus"),
                        "clock = \"icount\" runs one vCPU (cpus = 1)",
                    );
                }
            }
            Some(other) => doc.problem(
                t.key_span("clock"),
                &t.child("clock"),
                format!("unknown clock {other:?} (expected host or icount)"),
            ),
        }
    }

    let mut timeouts = defaults.timeouts.clone();
    if let Some(t) = doc.table(&root, "timeouts") {
        timeouts = parse_timeouts(&doc, &t);
    }

    let ready = doc
        .str(&root, "ready")
        .unwrap_or_else(|| defaults.ready.clone());
    if let Err(e) = regex::Regex::new(&ready) {
        doc.problem(
            root.key_span("ready"),
            "ready",
            format!("invalid regex: {e}"),
        );
    }

    let until = match doc.str(&root, "until").as_deref() {
        None => defaults.until,
        Some("poweroff") => RunUntil::Poweroff,
        Some("ready") => RunUntil::Ready,
        Some(other) => {
            doc.problem(
                root.key_span("until"),
                "until",
                format!("unknown end {other:?} (expected poweroff or ready)"),
            );
            defaults.until
        }
    };

    let programs = parse_programs(&doc, &root, guest_tests);
    // An ISO carries its own programs (the harness cannot add any); an initramfs boot
    // without programs tests nothing, unless reaching the ready marker is the test.
    let phases = parse_phases(
        &doc,
        &root,
        &PhaseDefaults {
            image: image.as_ref(),
            ready: &ready,
            fw_cfg: &fw_cfg,
            timeouts: &timeouts,
        },
        guest_tests,
    );
    let disk = match doc.table(&root, "disk") {
        Some(t) => {
            doc.only_keys(&t, &["size"]);
            match doc.req_str(&t, "size") {
                Some(v) => match parse_mib(&v) {
                    Some(size_mb) if size_mb >= 1 => Some(Disk { size_mb }),
                    _ => {
                        doc.problem(
                            t.key_span("size"),
                            &t.child("size"),
                            format!("invalid size {v:?} (e.g. \"64M\", \"12G\")"),
                        );
                        None
                    }
                },
                None => None,
            }
        }
        None => None,
    };
    if phases.is_empty() && root.has("disk") {
        doc.problem(
            root.key_span("disk"),
            "disk",
            "a [disk] is shared by phases: it needs [[phase]] tables",
        );
    }
    if !phases.is_empty() {
        if !root.has("disk") {
            doc.problem(
                None,
                "disk",
                "missing required table [disk] (the phases share a blank disk)",
            );
        }
        if !programs.is_empty() {
            doc.problem(
                None,
                "program",
                "with [[phase]], programs belong to a phase ([[phase.program]])",
            );
        }
        if root.has("until") {
            doc.problem(
                root.key_span("until"),
                "until",
                "every phase runs until the guest powers off: until is not allowed with [[phase]]",
            );
        }
    }
    let iso = image.as_ref().is_some_and(ImageSource::is_iso);
    if programs.is_empty() && !iso && until != RunUntil::Ready && phases.is_empty() {
        doc.problem(None, "program", "at least one [[program]] is required");
    }
    if iso && !programs.is_empty() {
        doc.problem(
            None,
            "program",
            "an ISO runs the programs built into it: [[program]] is not allowed with an ISO kind",
        );
    }
    if until == RunUntil::Ready && !programs.is_empty() {
        doc.problem(
            root.key_span("until"),
            "until",
            "until = \"ready\" stops the guest at the ready marker: its programs would never run",
        );
    }

    let mut crash = defaults.crash.clone();
    if let Some(t) = doc.table(&root, "crash") {
        doc.only_keys(&t, &["fatal", "fail", "ignore"]);
        for (key, list) in [
            ("fatal", &mut crash.fatal),
            ("fail", &mut crash.fail),
            ("ignore", &mut crash.ignore),
        ] {
            for re in doc.str_list(&t, key).unwrap_or_default() {
                match regex::Regex::new(&re) {
                    Ok(_) => list.push(re),
                    Err(e) => doc.problem(
                        t.key_span(key),
                        &t.child(key),
                        format!("invalid regex {re:?}: {e}"),
                    ),
                }
            }
        }
    }

    let is_gate = tags.iter().any(|t| t == "release-gate");
    let mut gate = is_gate.then_some(Gate {
        min_cases: 1,
        max_skips: 0,
    });
    if let Some(t) = doc.table(&root, "gate") {
        doc.only_keys(&t, &["min-cases", "max-skips"]);
        if !is_gate {
            doc.problem(
                t.span(),
                "gate",
                "a [gate] table needs tags = [\"release-gate\"]",
            );
        }
        let g = gate.get_or_insert(Gate {
            min_cases: 1,
            max_skips: 0,
        });
        if let Some(n) = doc.uint(&t, "min-cases") {
            g.min_cases = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = doc.uint(&t, "max-skips") {
            g.max_skips = usize::try_from(n).unwrap_or(usize::MAX);
        }
    }

    let problems = doc.take_problems();
    match image {
        Some(image) if problems.is_empty() => Ok(Scenario {
            name,
            file: file.to_path_buf(),
            hash,
            description,
            tags,
            image,
            initrd,
            append,
            firmware,
            busybox,
            media,
            fw_cfg,
            until,
            memory_mb,
            cpus,
            accel,
            clock,
            timeouts,
            ready,
            programs,
            crash,
            gate,
            phases,
            disk,
        }),
        _ => Err(Problems(problems)),
    }
}

/// The items of a `fw-cfg = { … }` table.
fn parse_fw_cfg(doc: &Doc, f: &Tbl<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for k in f.keys() {
        let Some(v) = doc.str(f, &k) else { continue };
        match fw_cfg_problem(&k, &v) {
            Some(why) => doc.problem(f.key_span(&k), &f.child(&k), why),
            None => out.push((k, v)),
        }
    }
    out
}

/// The clocks of a `[timeouts]` table.
fn parse_timeouts(doc: &Doc, t: &Tbl<'_>) -> Timeouts {
    doc.only_keys(t, &["boot", "test", "silence"]);
    Timeouts {
        boot: doc.duration(t, "boot"),
        test: doc.duration(t, "test"),
        silence: doc.duration(t, "silence"),
    }
}

/// What a multi-phase scenario shares with its phases, as the scenario file set it.
struct PhaseDefaults<'a> {
    image: Option<&'a ImageSource>,
    ready: &'a str,
    fw_cfg: &'a [(String, String)],
    timeouts: &'a Timeouts,
}

/// The `[[phase]]` tables: every problem reported with its place, like the rest.
fn parse_phases(
    doc: &Doc,
    root: &Tbl<'_>,
    d: &PhaseDefaults<'_>,
    guest_tests: &Path,
) -> Vec<Phase> {
    let iso = d.image.is_some_and(ImageSource::is_iso);
    let mut phases: Vec<Phase> = Vec::new();
    for (i, t) in doc.tables(root, "phase").into_iter().enumerate() {
        doc.only_keys(
            &t,
            &[
                "name", "boot", "expect", "ready", "progress", "fw-cfg", "timeouts", "program",
            ],
        );
        let name = doc.req_str(&t, "name").unwrap_or_default();
        if !name.is_empty() && !valid_name(&name) {
            doc.problem(
                t.key_span("name"),
                &t.child("name"),
                format!("invalid phase name {name:?} (use a-z, 0-9, '-', '_')"),
            );
        }
        if !name.is_empty() && phases.iter().any(|p| p.name == name) {
            doc.problem(
                t.key_span("name"),
                &t.child("name"),
                format!("duplicate phase name {name:?}"),
            );
        }
        let boot = match doc.str(&t, "boot").as_deref() {
            None | Some("image") => PhaseBoot::Image,
            Some("disk") => PhaseBoot::Disk,
            Some(other) => {
                doc.problem(
                    t.key_span("boot"),
                    &t.child("boot"),
                    format!("unknown phase boot {other:?} (expected image or disk)"),
                );
                PhaseBoot::Image
            }
        };
        if i == 0 && boot == PhaseBoot::Disk {
            doc.problem(
                t.key_span("boot"),
                &t.child("boot"),
                "the first phase cannot boot the disk: it is blank until a phase writes it",
            );
        }
        let expect = match doc.str(&t, "expect").as_deref() {
            None | Some("ktap") => Expect::Ktap,
            Some("poweroff") => Expect::Poweroff,
            Some(other) => {
                doc.problem(
                    t.key_span("expect"),
                    &t.child("expect"),
                    format!("unknown expectation {other:?} (expected ktap or poweroff)"),
                );
                Expect::Ktap
            }
        };
        let ready = doc.str(&t, "ready").unwrap_or_else(|| d.ready.to_string());
        if let Err(e) = regex::Regex::new(&ready) {
            doc.problem(
                t.key_span("ready"),
                &t.child("ready"),
                format!("invalid regex: {e}"),
            );
        }
        let progress = doc.str(&t, "progress");
        if let Some(Err(e)) = progress.as_deref().map(regex::Regex::new) {
            doc.problem(
                t.key_span("progress"),
                &t.child("progress"),
                format!("invalid regex: {e}"),
            );
        }
        let fw_cfg = match doc.table(&t, "fw-cfg") {
            Some(f) => parse_fw_cfg(doc, &f),
            None => d.fw_cfg.to_vec(),
        };
        let mut timeouts = d.timeouts.clone();
        if let Some(tt) = doc.table(&t, "timeouts") {
            let own = parse_timeouts(doc, &tt);
            timeouts = Timeouts {
                boot: own.boot.or(timeouts.boot),
                test: own.test.or(timeouts.test),
                silence: own.silence.or(timeouts.silence),
            };
        }
        let programs = parse_programs(doc, &t, guest_tests);
        // A kernel boots the initramfs the harness assembles from the phase's programs; an
        // ISO or the disk boot what is on them.
        let runs_programs = boot == PhaseBoot::Image && !iso;
        if !programs.is_empty() && !runs_programs {
            doc.problem(
                t.span(),
                &t.child("program"),
                "only a phase that boots a kernel kind's image runs [[phase.program]]s (an ISO or the disk run what is on them)",
            );
        }
        if programs.is_empty() && runs_programs && d.image.is_some() {
            doc.problem(
                t.span(),
                &t.child("program"),
                "a phase booting a kernel needs at least one [[phase.program]]",
            );
        }
        phases.push(Phase {
            name,
            boot,
            expect,
            ready,
            progress,
            fw_cfg,
            timeouts,
            programs,
        });
    }
    phases
}

/// The `[[program]]` tables of `parent` (the scenario or a phase).
fn parse_programs(doc: &Doc, parent: &Tbl<'_>, guest_tests: &Path) -> Vec<Program> {
    let mut programs: Vec<Program> = Vec::new();
    for t in doc.tables(parent, "program") {
        doc.only_keys(
            &t,
            &["name", "source", "libc", "command", "args", "timeout"],
        );
        let name = doc.req_str(&t, "name").unwrap_or_default();
        if !name.is_empty() && !valid_name(&name) {
            doc.problem(
                t.key_span("name"),
                &t.child("name"),
                format!("invalid program name {name:?} (use a-z, 0-9, '-', '_')"),
            );
        }
        if programs.iter().any(|p| p.name == name) && !name.is_empty() {
            doc.problem(
                t.key_span("name"),
                &t.child("name"),
                format!("duplicate program name {name:?}"),
            );
        }
        let source = doc.str(&t, "source").map(PathBuf::from);
        let command = doc.str_list(&t, "command").unwrap_or_default();
        match (&source, command.is_empty()) {
            (Some(_), false) => doc.problem(
                t.span(),
                t.path(),
                "give either source or command, not both",
            ),
            (None, true) => doc.problem(
                t.span(),
                t.path(),
                "needs a source (C file under guest-tests/) or a command",
            ),
            (Some(src), true) if !guest_tests.join(src).is_file() => doc.problem(
                t.key_span("source"),
                &t.child("source"),
                format!("no such file {}", guest_tests.join(src).display()),
            ),
            _ => {}
        }
        let libc = match doc.str(&t, "libc").as_deref() {
            None | Some("host") => Libc::Host,
            Some("xsc") if source.is_some() => Libc::Xsc,
            Some("xsc-disabled") if source.is_some() => Libc::XscDisabled,
            Some("xsc" | "xsc-disabled") => {
                doc.problem(
                    t.key_span("libc"),
                    &t.child("libc"),
                    "libc applies to a source program (a command is already in the initramfs)",
                );
                Libc::Host
            }
            Some(other) => {
                doc.problem(
                    t.key_span("libc"),
                    &t.child("libc"),
                    format!(
                        "unknown libc {other:?} (expected \"host\", \"xsc\" or \"xsc-disabled\")"
                    ),
                );
                Libc::Host
            }
        };
        let args = doc.str_list(&t, "args").unwrap_or_default();
        let timeout = doc.duration(&t, "timeout");
        programs.push(Program {
            name,
            source,
            libc,
            command,
            args,
            timeout,
        });
    }
    programs
}

/// Why a fw_cfg item cannot be passed to QEMU as given, if it cannot: user items live
/// under `opt/` (QEMU warns otherwise), names are at most 55 bytes, and a comma would
/// end QEMU's option value.
pub(crate) fn fw_cfg_problem(name: &str, value: &str) -> Option<String> {
    if !name.starts_with("opt/") {
        return Some(format!("fw_cfg item {name:?} must start with \"opt/\""));
    }
    if name.len() > 55 {
        return Some(format!("fw_cfg item name {name:?} is longer than 55 bytes"));
    }
    if name.contains(',') || value.contains(',') {
        return Some("fw_cfg names and values cannot contain ','".into());
    }
    None
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses `512M`, `2G`, `1024` (MiB).
pub(crate) fn parse_mib(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'M' | b'm' => (&s[..s.len() - 1], 1),
        b'G' | b'g' => (&s[..s.len() - 1], 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// All scenario files directly in `dir`, sorted.
pub(crate) fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Loads several files, collecting every problem of every file, and rejects duplicate names.
pub(crate) fn load_all(files: &[PathBuf], guest_tests: &Path) -> Result<Vec<Scenario>, Problems> {
    let mut out: Vec<Scenario> = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        match load(f, guest_tests) {
            Ok(s) => {
                if let Some(prev) = out.iter().find(|p| p.name == s.name) {
                    problems.push(Problem {
                        file: f.clone(),
                        line: None,
                        key: "name".into(),
                        message: format!(
                            "duplicate scenario name {:?} (also in {})",
                            s.name,
                            prev.file.display()
                        ),
                    });
                } else {
                    out.push(s);
                }
            }
            Err(Problems(mut p)) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Problems(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Scenario, Problems> {
        let gt = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-tests");
        parse(
            Path::new("scenarios/t.toml"),
            text.to_string(),
            "h".into(),
            &gt,
        )
    }

    #[test]
    fn debian_iso_scenarios_take_media_fw_cfg_and_no_programs() {
        let s = parse_str(
            "tags = [\"release-gate\"]\nready = \"xsc-selftest: ready\"\n\
             [image]\nkind = \"debian-iso\"\nfirmware = \"uefi\"\nmedia = \"disk\"\n\
             [machine]\nfw-cfg = { \"opt/org.xsc/selftest\" = \"1\" }\n",
        )
        .unwrap();
        assert_eq!(s.image, ImageSource::DebianIso);
        assert_eq!((s.media, s.firmware), (Media::Disk, Firmware::Uefi));
        assert_eq!(
            s.fw_cfg,
            [("opt/org.xsc/selftest".to_string(), "1".to_string())]
        );
        assert_eq!(s.until, RunUntil::Poweroff);
        assert!(s.programs.is_empty());
        // The shipped scenarios parse too.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in [
            "debian-bios",
            "debian-uefi",
            "debian-uefi-disk",
            "debian-login",
        ] {
            let s = load(
                &root.join(format!("scenarios/{f}.toml")),
                &root.join("guest-tests"),
            )
            .unwrap();
            assert_eq!(s.image, ImageSource::DebianIso, "{f}");
            assert_eq!(s.is_gate(), f != "debian-login", "{f}");
            assert_eq!(s.until == RunUntil::Ready, f == "debian-login", "{f}");
            assert_eq!(s.fw_cfg.is_empty(), f == "debian-login", "{f}");
        }
    }

    #[test]
    fn the_el_install_gates_are_two_phases_on_one_disk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (f, d) in [("alma", Distro::Alma), ("rocky", Distro::Rocky)] {
            let s = load(
                &root.join(format!("scenarios/{f}-install.toml")),
                &root.join("guest-tests"),
            )
            .unwrap();
            assert_eq!(s.image, ImageSource::ElIso(d));
            assert!(s.is_gate() && s.tags.contains(&"el".to_string()));
            assert_eq!(s.disk, Some(Disk { size_mb: 12 * 1024 }));
            let names: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["install", "selftest"]);
            let (install, selftest) = (&s.phases[0], &s.phases[1]);
            assert_eq!(
                (install.boot, install.expect),
                (PhaseBoot::Image, Expect::Poweroff)
            );
            assert!(install.progress.is_some() && install.fw_cfg.is_empty());
            assert_eq!(
                (selftest.boot, selftest.expect),
                (PhaseBoot::Disk, Expect::Ktap)
            );
            assert_eq!(
                selftest.fw_cfg,
                [("opt/org.xsc/selftest".to_string(), "1".to_string())]
            );
            // The gate judges the self-test, not the installer.
            assert_eq!(s.phase_scenario(0).gate, None);
            assert_eq!(s.phase_scenario(1).gate.map(|g| g.min_cases), Some(160));
            assert_eq!(s.phase_scenario(1).ready, "xsc-selftest: ready");
        }
    }

    #[test]
    fn phases_are_validated_strictly() {
        let kernel = "[image]\nkind = \"xsc-kernel\"\n";
        let prog = "[[phase.program]]\nname = \"p\"\nsource = \"sanity.c\"\n";
        // Scenario-level clocks and ready are each phase's defaults.
        let s = parse_str(&format!(
            "ready = \"up\"\n{kernel}[disk]\nsize = \"16M\"\n[timeouts]\nboot = \"9s\"\n\
             [[phase]]\nname = \"a\"\n{prog}\
             [[phase]]\nname = \"b\"\nready = \"b-up\"\n[phase.timeouts]\nsilence = \"3s\"\n{prog}"
        ))
        .unwrap();
        assert_eq!(s.disk, Some(Disk { size_mb: 16 }));
        assert_eq!(
            (s.phases[0].ready.as_str(), s.phases[1].ready.as_str()),
            ("up", "b-up")
        );
        assert_eq!(s.phases[1].timeouts.boot, Some(Duration::from_secs(9)));
        assert_eq!(s.phases[1].timeouts.silence, Some(Duration::from_secs(3)));
        assert_eq!(s.phases[0].programs.len(), 1);
        let err = parse_str(&format!(
            "until = \"poweroff\"\n{kernel}[[program]]\nname = \"top\"\nsource = \"sanity.c\"\n\
             [[phase]]\nname = \"a\"\nboot = \"disk\"\nexpect = \"maybe\"\nspeed = 1\nprogress = \"(\"\n\
             [[phase]]\nname = \"a\"\n"
        ))
        .unwrap_err()
        .to_string();
        for want in [
            "disk: missing required table [disk]",
            "program: with [[phase]], programs belong to a phase",
            "until: every phase runs until the guest powers off",
            "phase[0].boot: the first phase cannot boot the disk",
            "phase[0].expect: unknown expectation \"maybe\"",
            "phase[0].speed: unknown key",
            "phase[0].progress: invalid regex",
            "phase[1].name: duplicate phase name \"a\"",
            "phase[1].program: a phase booting a kernel needs at least one",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let err = parse_str(&format!(
            "[image]\nkind = \"alma-iso\"\n[disk]\nsize = \"big\"\n[[phase]]\nname = \"i\"\n{prog}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("disk.size: invalid size \"big\""), "{err}");
        assert!(
            err.contains("phase[0].program: only a phase that boots a kernel kind's image"),
            "{err}"
        );
        let err = parse_str(&format!(
            "{kernel}[disk]\nsize = \"1G\"\n[[program]]\nname = \"p\"\nsource = \"sanity.c\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("disk: a [disk] is shared by phases"), "{err}");
    }

    #[test]
    fn iso_keys_are_validated_strictly() {
        let err = parse_str(
            "[image]\nkind = \"debian-iso\"\nmedia = \"floppy\"\npath = \"x.iso\"\nappend = \"quiet\"\n\
             [machine]\nfw-cfg = { \"org.xsc/selftest\" = \"1\", \"opt/a\" = \"x,y\", \"opt/b\" = 1 }\n\
             [[program]]\nname = \"p\"\ncommand = [\"true\"]\n",
        )
        .unwrap_err();
        let text = err.to_string();
        for want in [
            "image.media",
            "unknown media \"floppy\"",
            "image.path",
            "image.append",
            "must start with \"opt/\"",
            "cannot contain ','",
            "machine.fw-cfg.opt/b",
            "[[program]] is not allowed with an ISO kind",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        let err = parse_str(
            "[image]\nkind = \"xsc-kernel\"\nmedia = \"cdrom\"\n[[program]]\nname = \"p\"\ncommand = [\"true\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("takes media"), "{err}");
    }

    #[test]
    fn programs_pick_their_libc() {
        let s = parse_str(
            "[image]\nkind = \"xsc-kernel\"\n\
             [[program]]\nname = \"x\"\nsource = \"sanity.c\"\nlibc = \"xsc\"\n\
             [[program]]\nname = \"h\"\nsource = \"sanity.c\"\n",
        )
        .unwrap();
        assert_eq!(s.programs[0].libc, Libc::Xsc);
        assert_eq!(s.programs[1].libc, Libc::Host);
        assert_eq!(
            s.programs[0].libc.variant(),
            Some(crate::stages::GlibcVariant::Xsc)
        );
        assert_eq!(s.programs[1].libc.variant(), None);
        assert_eq!(
            Libc::XscDisabled.variant(),
            Some(crate::stages::GlibcVariant::Disabled)
        );
        let err = parse_str(
            "[image]\nkind = \"xsc-kernel\"\n\
             [[program]]\nname = \"c\"\ncommand = [\"true\"]\nlibc = \"xsc\"\n\
             [[program]]\nname = \"m\"\nsource = \"sanity.c\"\nlibc = \"musl\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("program[0].libc: libc applies to a source program"),
            "{err}"
        );
        assert!(
            err.contains("program[1].libc: unknown libc \"musl\""),
            "{err}"
        );
    }

    #[test]
    fn until_ready_needs_no_programs_and_refuses_them() {
        let s =
            parse_str("until = \"ready\"\nready = \"login\"\n[image]\nkind = \"stock-kernel\"\n")
                .unwrap();
        assert_eq!(s.until, RunUntil::Ready);
        let err = parse_str(
            "until = \"ready\"\n[image]\nkind = \"stock-kernel\"\n[[program]]\nname = \"p\"\ncommand = [\"true\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("would never run"), "{err}");
        let err = parse_str("until = \"later\"\n[image]\nkind = \"stock-kernel\"\n").unwrap_err();
        assert!(
            err.to_string().contains("expected poweroff or ready"),
            "{err}"
        );
    }

    #[test]
    fn a_minimal_scenario_gets_documented_defaults() {
        let s = parse_str("[image]\nkind = \"stock-kernel\"\n[[program]]\nname = \"sh\"\ncommand = [\"/bin/true\"]\n").unwrap();
        assert_eq!(s.name, "t");
        assert_eq!((s.memory_mb, s.cpus), (512, 1));
        assert_eq!(s.ready, DEFAULT_READY);
        assert_eq!(s.image, ImageSource::StockKernel);
        assert!(s.gate.is_none());
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = parse_str(
            "nmae = \"x\"\n[image]\nkind = \"floppy\"\n[machine]\nmemory = \"lots\"\ncpus = 0\n\
             [timeouts]\nboot = \"forever\"\n[[program]]\nname = \"Bad Name\"\n[gate]\nmin-cases = 3\n",
        )
        .unwrap_err();
        let shown: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        let expect = [
            "scenarios/t.toml:1: nmae: unknown key",
            "image.kind: unknown image kind \"floppy\"",
            "machine.memory: invalid memory \"lots\"",
            "machine.cpus: cpus must be 1 to 64",
            "timeouts.boot: invalid duration \"forever\"",
            "program[0].name: invalid program name \"Bad Name\"",
            "program[0]: needs a source",
            "gate: a [gate] table needs tags",
        ];
        for e in expect {
            assert!(
                shown.iter().any(|s| s.contains(e)),
                "missing {e:?} in {shown:#?}"
            );
        }
        assert_eq!(shown.len(), expect.len(), "{shown:#?}");
    }

    #[test]
    fn icount_is_tcg_with_one_vcpu() {
        let base = "[image]\nkind = \"xsc-kernel\"\n[[program]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n";
        assert_eq!(parse_str(base).unwrap().clock, Clock::Host);
        let s = parse_str(&format!("{base}[machine]\nclock = \"icount\"\n")).unwrap();
        assert_eq!(s.clock, Clock::Icount);
        let err = parse_str(&format!(
            "{base}[machine]\nclock = \"icount\"\naccel = \"kvm\"\ncpus = 2\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("machine.accel: clock = \"icount\" needs TCG"),
            "{err}"
        );
        assert!(
            err.contains("machine.cpus: clock = \"icount\" runs one vCPU"),
            "{err}"
        );
        let err = parse_str(&format!("{base}[machine]\nclock = \"wall\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown clock \"wall\""), "{err}");
    }

    #[test]
    fn gates_default_to_no_skips() {
        let s = parse_str(
            "tags = [\"release-gate\"]\n[image]\nkind = \"xsc-kernel\"\n[[program]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n[gate]\nmin-cases = 60\n",
        )
        .unwrap();
        assert_eq!(
            s.gate,
            Some(Gate {
                min_cases: 60,
                max_skips: 0
            })
        );
        assert!(s.is_gate());
    }

    #[test]
    fn missing_source_files_are_reported() {
        let err = parse_str(
            "[image]\nkind = \"stock-kernel\"\n[[program]]\nname = \"a\"\nsource = \"nope.c\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("program[0].source: no such file"),
            "{err}"
        );
    }

    #[test]
    fn a_named_image_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let gt = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-tests");
        let file = dir.path().join("k.toml");
        let text = "[image]\nkind = \"kernel\"\npath = \"nope.bzImage\"\n\
                    [[program]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n";
        let err = parse(&file, text.into(), "h".into(), &gt).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("k.toml:3: image.path: no such file") && shown.contains("nope.bzImage"),
            "{shown}"
        );
        let with_initrd = text.replace(
            "path = \"nope.bzImage\"\n",
            "path = \"nope.bzImage\"\ninitrd = \"gone.cpio\"\n",
        );
        let err = parse(&file, with_initrd, "h".into(), &gt).unwrap_err();
        assert!(
            err.to_string()
                .contains("k.toml:4: image.initrd: no such file"),
            "{err}"
        );
        std::fs::write(dir.path().join("nope.bzImage"), "k").unwrap();
        let s = parse(&file, text.into(), "h".into(), &gt).unwrap();
        assert_eq!(
            s.image,
            ImageSource::KernelFile(dir.path().join("nope.bzImage"))
        );
        // The parser and the ad-hoc run share one set of defaults.
        let d = Scenario::with_defaults("k", &file, "h", s.image.clone());
        assert_eq!(
            Scenario {
                programs: vec![],
                ..s
            },
            d
        );
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mib("512M"), Some(512));
        assert_eq!(parse_mib("2G"), Some(2048));
        assert_eq!(parse_mib("300"), Some(300));
        assert_eq!(parse_mib("x"), None);
    }
}
