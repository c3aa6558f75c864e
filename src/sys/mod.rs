//! Infrastructure every layer uses: the one module that spawns processes and the
//! content-addressed cache.

pub mod cache;
pub mod process;
