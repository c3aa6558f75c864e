//! Reporters consume results: the terminal summary, JUnit XML, merged shard JUnit, the patchcheck table.

pub(crate) mod junit;
pub(crate) mod merge;
pub(crate) mod patchcheck;
pub(crate) mod summary;
