//! KTAP v1 parser (placeholder: being written).
