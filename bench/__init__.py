"""Benchmarks and plots made from real server processes: run from the repo root."""
