"""Benchmark harness: our server vs a bare FastAPI app vs MLServer (see bench/README.md)."""
