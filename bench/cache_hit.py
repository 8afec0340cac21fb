"""What a cache hit saves over a miss, per demo model, with the in-process cache and Redis.

Real `serving serve` (one worker) and a private redis-server on loopback; a keep-alive
client measures whole requests. Misses send rows never sent before (one feature nudged by
a different tiny amount each time); hits repeat one body. Prints a Markdown table of
medians.   python -m bench.cache_hit [--requests 300]
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.fixture import DEMO_MODELS, trained_server
from tests.redis_server import running_redis
from training.data import load_dataset


def _median_ms(client: httpx.Client, bodies: Iterator[dict[str, Any]], count: int) -> float:
    timings = []
    for _ in range(count):
        body = next(bodies)
        started = time.perf_counter()
        answer = client.post("/predict", json=body)
        timings.append(time.perf_counter() - started)
        answer.raise_for_status()
    return statistics.median(timings) * 1000


def _fresh(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for nudge in range(1, 10**9):
        rows = [[row[0] + nudge * 1e-9, *row[1:]] for row in body["instances"]]
        yield {**body, "instances": rows}


def _same(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        yield body


def _bodies(name: str) -> dict[str, dict[str, Any]]:
    rows = load_dataset(name).x_test.tolist()
    proba = name != "diabetes"
    return {
        "1 row": {"model": name, "instances": rows[:1], "probabilities": proba},
        f"{len(rows)} rows": {"model": name, "instances": rows, "probabilities": proba},
    }


def measure(url: str, cache: str, count: int) -> list[str]:
    lines = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for name in DEMO_MODELS:
            for shape, body in _bodies(name).items():
                client.post("/predict", json=body)  # warm: load paths, fill the hit entry
                miss = _median_ms(client, _fresh(body), count)
                hit = _median_ms(client, _same(body), count)
                lines.append(
                    f"| {name} | {shape} | {cache} | {miss:.2f} | {hit:.2f} "
                    f"| {miss - hit:.2f} | {miss / hit:.1f}x |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="per cell, hits and misses")
    count = parser.parse_args().requests
    lines = ["| model | request | cache | miss ms | hit ms | saved ms | miss/hit |"]
    lines.append("|---|---|---|---:|---:|---:|---:|")
    with trained_server(workers=1) as server:
        lines += measure(server.url, "in-process", count)
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_redis(Path(scratch)) as redis,
        trained_server(workers=1, SERVING_REDIS_URL=redis.url) as server,
    ):
        lines += measure(server.url, "redis", count)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
