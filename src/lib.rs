//! `xsc-release`: build the XSC kernel, glibc and ISOs, verify them in QEMU, and release them.
//!
//! The modules follow the pipeline: build → boot → observe → report → release. `process`
//! is the only module that starts programs; `toml_strict` reads every input file.

pub mod boot;
pub mod build;
pub mod cache;
pub mod candidate;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod doctor;
pub mod error;
pub mod exit_code;
pub mod gate;
pub mod guest;
pub mod observe;
pub mod offline;
pub mod process;
pub mod release;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stage;
pub mod stock_kernel;
pub mod toml_strict;
