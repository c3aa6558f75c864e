//! `xsc-release`: build the XSC kernel, glibc and ISOs, verify them in QEMU, and release them.
//!
//! The modules follow the pipeline: build → boot → observe → report → release. `process`
//! is the only module that starts programs; `toml_strict` reads every input file.

pub mod app;
pub mod boot;
pub mod error;
pub mod exit_code;
pub mod guest;
pub mod input;
pub mod observe;
pub mod release;
pub mod report;
pub mod run;
pub mod stages;
pub mod sys;
