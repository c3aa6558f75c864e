//! Reporters consume results: the terminal summary and JUnit XML.

pub mod junit;
pub mod summary;
