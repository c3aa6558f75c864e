//! What the user writes: the project config (`xsc.toml`) and scenario files, both read by
//! one strict TOML reader that reports every problem with its place.

pub(crate) mod config;
pub(crate) mod durations;
pub(crate) mod scenario;
pub(crate) mod shard;
pub(crate) mod toml_strict;
