//! JUnit writer (placeholder: being written).
