//! `xsc-release`: build the XSC kernel, glibc and ISOs, verify them in QEMU, and release them.
//!
//! `ls src/` reads as the pipeline (docs/architecture.md): `app` (the command line, every
//! command, all printing) drives `stages` (content-addressed builds) and `run` (scenarios
//! and gates), which boot images (`boot`), judge what the guest printed (`observe`), report
//! it (`report`) and release it (`release`). `input` reads every file a user writes; `sys`
//! is the infrastructure under them all (the one process spawner, the cache, locks, atomic
//! writes). Every module is crate-private; the few items below are what the binary, the
//! examples and the integration tests use.

mod app;
mod bisect;
mod boot;
mod error;
mod exit_code;
mod guest;
mod input;
mod observe;
mod release;
mod report;
mod run;
mod stages;
mod sys;

pub use app::{cli::Cli, run};
pub use boot::accel::{AccelChoice, AccelRequest, KvmHost, KvmMode, resolve as resolve_accel};
pub use error::{Error, chain};
pub use exit_code::ExitCode;
pub use input::config::default_cache_dir;
pub use release::checksums::hash_file;
pub use release::keys::{PasswordSource, Protection, dev_key_paths, generate, load_secret_key};
pub use release::sign::minisig;
pub use stages::chroot::unmount_all;
pub use stages::stock_kernel::{StockKernel, ensure as ensure_stock_kernel};
pub use sys::cache::Cache;
pub use sys::process::kill_all_groups;
