//! Observers turn console lines and QMP events into verdicts: the KTAP parser, the kernel
//! crash scanner, the benchmark-figure format, the one set of judging rules, and the
//! result model they fill.

pub(crate) mod baseline;
pub(crate) mod bench;
pub(crate) mod crash;
pub(crate) mod judge;
pub(crate) mod ktap;
pub(crate) mod verdict;
