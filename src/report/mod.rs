//! Reporters consume results: the terminal summary and JUnit XML.

pub(crate) mod junit;
pub(crate) mod patchcheck;
pub(crate) mod summary;
