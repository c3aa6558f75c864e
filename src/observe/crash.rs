//! Kernel crash scanner (placeholder: being written).
