//! The command line: every subcommand and flag, with clap. No behaviour here; `dispatch`
//! runs what is parsed. `--help` text must match README and docs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build, verify in QEMU, and release the XSC kernel, glibc and ISOs.
#[derive(Debug, Parser)]
#[command(name = "xsc-release", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Project config (default: the nearest xsc.toml in this directory or a parent).
    #[arg(long, global = true, env = "XSC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing env-filter syntax), e.g. `debug` or `xsc_release=debug`.
    #[arg(long, global = true, env = "XSC_LOG", default_value = "warn")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Exit codes, shown under `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "Exit codes: 0 all passed · 1 the product failed · 2 bad input · 3 a build failed · \
4 the harness could not do its job · 5 a release was refused · 130 SIGINT · 143 SIGTERM";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot scenarios (or an ad-hoc image) in QEMU and judge them.
    Test(Box<TestArgs>),
    /// Turn captured console logs into verdicts and JUnit.
    Report {
        /// What to read.
        #[command(subcommand)]
        what: ReportCommand,
    },
    /// List or validate scenario files without booting.
    Scenarios {
        /// list or check.
        #[command(subcommand)]
        what: ScenariosCommand,
    },
    /// List host tools, KVM usability, and the apt-get line for what is missing.
    Doctor {
        /// Probe KVM by booting this kernel (default: the stock kernel in the cache).
        #[arg(long, value_name = "KERNEL")]
        kernel: Option<std::path::PathBuf>,
    },
    /// Build, run the release gates, and publish a signed candidate (the main job).
    Candidate(crate::app::candidate::CandidateArgs),
    /// Run the instruction-counted benches and compare them with benches/baseline.json.
    Bench(crate::app::bench::BenchArgs),
    /// Make a minisign key pair (password from XSC_SIGNING_PASSWORD_FILE or a prompt).
    Keygen(crate::app::release::KeygenArgs),
    /// Verify a published release or candidate: checksums, signatures, manifest.
    Verify(crate::app::release::VerifyArgs),
    /// Re-verify a candidate and re-sign it as release X.Y.Z (never overwrites).
    Promote(crate::app::release::PromoteArgs),
    /// Upload a release or candidate directory to a `[publish.<name>]` target (resumes).
    Publish(crate::app::release::PublishArgs),
    /// Build a stage (the XSC kernel, the XSC glibc, the Debian ISO).
    Build {
        /// Which stage.
        #[command(subcommand)]
        what: BuildCommand,
    },
    /// Edit the kernel series the quilt way.
    Patches(crate::app::build::PatchesArgs),
    /// Show each stage: built or not for the current inputs, key, when, where.
    Status {
        /// One JSON document on stdout (fields: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (e.g. `xsc-release completions bash > …`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Find the commit or series patch that broke a scenario (build, boot, judge per step).
    Bisect(Box<crate::app::bisect::BisectArgs>),
    /// Check that every prefix of a quilt series applies (fuzz 0), builds, and boots.
    Patchcheck(crate::app::patchcheck::PatchcheckArgs),
    /// Inspect or trim the build cache.
    Cache {
        /// path, gc or clean.
        #[command(subcommand)]
        what: CacheCommand,
    },
}

/// Accelerator choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// Probe KVM, fall back to TCG when it is missing or stalls.
    Auto,
    /// Force KVM.
    Kvm,
    /// Force TCG.
    Tcg,
}

/// Firmware choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FirmwareArg {
    /// SeaBIOS.
    Bios,
    /// OVMF.
    Uefi,
}

/// `xsc-release test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Scenario names (from scenarios/) or files; default: every scenarios/*.toml.
    pub scenarios: Vec<String>,
    /// Only scenarios with this tag (repeatable).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Boot this kernel ad hoc instead of scenarios.
    #[arg(long, conflicts_with_all = ["scenarios", "tag", "iso"])]
    pub kernel: Option<PathBuf>,
    /// Initramfs for --kernel; default: the harness's guest initramfs running `sanity`.
    #[arg(long, requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Extra kernel arguments (added to `console=ttyS0 panic=-1 printk.time=1`).
    #[arg(long, requires = "kernel")]
    pub append: Option<String>,
    /// Boot this ISO ad hoc.
    #[arg(long, conflicts_with_all = ["scenarios", "tag"])]
    pub iso: Option<PathBuf>,
    /// Firmware for --iso.
    #[arg(long, value_enum, default_value = "bios")]
    pub firmware: FirmwareArg,
    /// Regex marking the end of boot for an ad-hoc run.
    #[arg(long)]
    pub ready: Option<String>,
    /// Accelerator.
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
    /// Boot clock (humantime, e.g. 90s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub boot_timeout: Option<Duration>,
    /// Per guest program clock.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub test_timeout: Option<Duration>,
    /// Longest console silence.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub silence_timeout: Option<Duration>,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Run only shard K of N of the selected scenarios (balanced by scenarios/durations.json;
    /// every scenario is in exactly one shard; an empty shard exits 0).
    #[arg(long, value_name = "K/N", conflicts_with_all = ["kernel", "iso"])]
    pub shard: Option<crate::input::shard::Shard>,
    /// Write a verdict record per scenario here (`DIR/<scenario>/`), for `candidate
    /// --verdicts` (docs/ci.md).
    #[arg(long, value_name = "DIR", requires = "run_id", conflicts_with_all = ["kernel", "iso"])]
    pub verdicts: Option<PathBuf>,
    /// The pipeline run the verdict records belong to.
    #[arg(long, value_name = "ID", requires = "verdicts")]
    pub run_id: Option<String>,
    /// Parallel scenarios (default: fits cores and memory).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Never build or fetch a missing image: exit 3 instead.
    #[arg(long)]
    pub no_build: bool,
    /// At the end, one JSON summary document on stdout instead of the human summary
    /// lines (fields: docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// `xsc-release build …`.
#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// The XSC kernel: quilt series on the pinned linux-source-6.1, profile config, make.
    Kernel(crate::app::build::BuildKernelArgs),
    /// The XSC glibc: quilt series on the pinned glibc-source 2.36, `--enable-xsc`, make,
    /// install into a sysroot; plus the stripped runtime and glibc's own listed tests.
    Glibc(crate::app::build::BuildGlibcArgs),
    /// The Debian live ISO (bookworm + the XSC kernel + ring tests; BIOS and UEFI; root).
    Debian(crate::app::build::BuildDebianArgs),
    /// The .deb and .rpm packages (kernel, xsc-glibc, xsc-tests) with an apt and a
    /// createrepo_c repository, in packages/apt/ and packages/rpm/.
    Packages(crate::app::packages::BuildPackagesArgs),
    /// The AlmaLinux 9 install ISO: [sources.alma] remastered with the XSC kickstart and
    /// RPM repository (exit 3 naming what to add when it is not configured).
    Alma(crate::app::packages::BuildElArgs),
    /// The same for Rocky Linux 9 ([sources.rocky]).
    Rocky(crate::app::packages::BuildElArgs),
}

/// `xsc-release report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Parse KTAP (and kernel crashes) from console logs.
    Ktap {
        /// Console logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Merge JUnit files (e.g. the shards of a CI matrix) into one; a test twice (by
    /// classname and name) is an error naming both files.
    Merge {
        /// JUnit files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the merged JUnit here.
        #[arg(short, long)]
        output: PathBuf,
        /// Fail unless the files are exactly shards 1..N of N.
        #[arg(long, value_name = "N")]
        expect_shards: Option<usize>,
    },
    /// Refresh the scenario durations file (default: scenarios/durations.json) from JUnit
    /// `time` attributes; scenarios the files do not name keep their entries.
    Durations {
        /// JUnit files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The durations file to update.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// `xsc-release scenarios …`.
#[derive(Debug, Subcommand)]
pub enum ScenariosCommand {
    /// One line per scenario.
    List {
        /// One JSON document on stdout (fields: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Validate files (default: every scenarios/*.toml) and report every problem.
    Check {
        /// Files to check.
        files: Vec<PathBuf>,
    },
}

/// `xsc-release cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the cache directory.
    Path,
    /// Remove old entries until the cache fits (keeps the newest entry of every stage).
    Gc {
        /// Size cap, e.g. 20G.
        #[arg(long, default_value = "20G")]
        max_size: String,
    },
    /// Remove the whole cache (`make distclean`).
    Clean,
    /// Import stage artifacts (`build … --stage-artifact DIR`) into this cache, each only
    /// when its key is this checkout's key for that stage and its files match its seal.
    Import {
        /// Artifact directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}
