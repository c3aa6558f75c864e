//! The `xsc-release` command line.
fn main() {}
