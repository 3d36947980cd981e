//! Criterion benchmarks and the load tool live here (see BENCHMARKS.md).
