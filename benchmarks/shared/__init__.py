"""What several benchmarks share; not a benchmark itself (benchmarks/*.py are)."""
