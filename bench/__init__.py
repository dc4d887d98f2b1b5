"""The broadcast benchmark: `make bench` (docs/benchmarks.md has the results)."""
