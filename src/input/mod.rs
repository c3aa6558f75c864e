//! What the user writes: the project config (`xsc.toml`) and scenario files, both read by
//! one strict TOML reader that reports every problem with its place.

pub mod config;
pub mod scenario;
pub mod toml_strict;
