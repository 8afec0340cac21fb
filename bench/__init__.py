"""Benchmarks: our server vs a bare FastAPI app vs MLServer (bench/README.md); cache hit
savings and the metrics plot (docs/cache.md). Run from the repo root.
"""
