//! `xsc-release`: build the XSC kernel, glibc and ISOs, verify them in QEMU, and release them.
//!
//! The modules follow the pipeline: build → boot → observe → report → release. `process`
//! is the only module that starts programs; `toml_strict` reads every input file.

pub mod build;
pub mod exit_code;
pub mod observe;
pub mod process;
pub mod report;
pub mod toml_strict;
pub mod cache;
pub mod config;
