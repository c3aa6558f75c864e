//! Infrastructure every layer uses: the one module that spawns processes, the
//! content-addressed cache, the one exclusive lock, the one build epoch and the one way
//! to write a file atomically.

pub(crate) mod atomic_file;
pub(crate) mod cache;
pub(crate) mod epoch;
pub(crate) mod lock;
pub(crate) mod process;
