"""End-to-end scenarios and benchmarks (a package, so they share helpers)."""
