//! Booting images in QEMU: command lines, the QMP connection, the serial console, the
//! accelerator choice, and the machine run that ties them together.

pub mod accel;
pub mod console;
pub mod machine;
pub mod qemu_args;
pub mod qmp;
