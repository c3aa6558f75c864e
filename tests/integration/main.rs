//! Integration tests: the real `xsc-release` binary against real QEMU (TCG), real apt,
//! real gcc. One test binary (autotests = false) so it links once.

mod accel;
mod cli;
mod exit_codes;
mod glibc;
mod iso;
mod release;
mod support;
mod vm;
