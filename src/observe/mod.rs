//! Observers turn console lines and QMP events into verdicts: the KTAP parser, the kernel
//! crash scanner, and the result model they fill.

pub mod crash;
pub mod ktap;
pub mod verdict;
