"""Benchmarks that back the numbers the lessons quote (run them with ``python -m benchmarks.<name>``)."""
