//! Booting images in QEMU: command lines, the QMP connection, the serial console, the
//! accelerator choice, and the machine run that ties them together.

pub(crate) mod accel;
pub(crate) mod console;
#[cfg(test)]
mod fake;
pub(crate) mod machine;
pub(crate) mod progress;
pub(crate) mod qemu_args;
pub(crate) mod qmp;
pub(crate) mod step;
