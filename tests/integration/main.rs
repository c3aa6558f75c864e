//! Integration tests: the real `xsc-release` binary against real QEMU (TCG), real apt,
//! real gcc. One test binary (autotests = false) so it links once.

// Tests spawn the binary and fixtures, and print why they skip (clippy.toml rules are for src/).
#![allow(clippy::disallowed_macros, clippy::disallowed_methods)]

mod accel;
mod app;
mod architecture;
mod bench;
mod bisect;
mod cli;
mod el_iso;
mod exit_codes;
mod glibc;
mod interrupt;
mod iso;
mod kernel_rpm;
mod kickstart;
mod packages;
mod patchcheck;
mod phases;
mod publish;
mod release;
mod shard;
mod stage_artifact;
mod support;
mod verdicts;
mod vm;
