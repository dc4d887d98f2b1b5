"""The broadcast benchmark: `make bench` (docs/benchmarks.md has the results)."""

# What the benchmarks do on purpose, the chat's frame limit would (rightly) refuse: a
# client sends far faster than a person types. Each gateway they start lifts it.
LIFTED = {"RATE_PER_SECOND": "100000", "RATE_BURST": "100000"}
