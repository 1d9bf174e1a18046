//! Benchmark of the resize listener.

fn main() {}
