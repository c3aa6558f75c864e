//! What runs inside the guest and how it gets there: guest programs compiled on the host
//! and the reproducible initramfs that carries them with PID 1.

pub(crate) mod initramfs;
pub(crate) mod programs;
