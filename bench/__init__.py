"""Benchmarks of the running service (see RESULTS.md for the recorded figures)."""
