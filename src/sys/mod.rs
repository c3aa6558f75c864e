//! Infrastructure every layer uses: the one module that spawns processes, the
//! content-addressed cache, the one exclusive lock and the one build epoch.

pub(crate) mod cache;
pub(crate) mod epoch;
pub(crate) mod lock;
pub(crate) mod process;
