//! Infrastructure every layer uses: the one module that spawns processes and the
//! content-addressed cache.

pub(crate) mod cache;
pub(crate) mod process;
