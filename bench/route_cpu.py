"""CPU time per predict request through the real app, in one process, without HTTP or wrk.

For A/B comparisons of a change to a request's hot path (routes, middleware, auth, parsing) on
a shared machine: wall-clock throughput swings with the load other processes put on the cores,
while the CPU time the app itself spends per request moves far less. The app runs through
its lifespan on a real registry; every request body differs (cache misses, as bench.run
sends); stderr carries one access-log line per request, so send it to /dev/null.

Compare two checkouts by running this file against each, alternating (cwd and PYTHONPATH
decide which `serving` is imported, so the script itself may come from either):

    cd CHECKOUT && PYTHONPATH=. python /path/to/bench/route_cpu.py --model-dir DIR 2>/dev/null

Prints one JSON object: the median microseconds of CPU per request over --rounds rounds, at
each concurrency.
"""

import argparse
import asyncio
import json
import statistics
import time
from itertools import count
from pathlib import Path
from typing import Any

import orjson
from asgi_lifespan import LifespanManager

from serving.api.app import create_app
from serving.core.settings import Settings

_ROW = [5.1, 3.5, 1.4, 0.2]  # iris
_serial = count(1)


def _scope(path: str, body: bytes, authorization: str | None) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if authorization:
        headers.append((b"authorization", authorization.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _one_request(app: Any, path: str, authorization: str | None) -> int:
    row = [_ROW[0] + next(_serial) * 1e-12, *_ROW[1:]]  # a new body: a cache miss
    body = orjson.dumps({"instances": [row]})
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the app only waits here for a disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path, body, authorization), receive, send)
    return status


async def _cpu_per_request(app: Any, args: argparse.Namespace, concurrency: int) -> float:
    per_task = args.requests // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            status = await _one_request(app, args.path, args.authorization)
            if status != 200:
                raise RuntimeError(f"{args.path} answered {status}")

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds: float = (time.process_time() - started) / (per_task * concurrency)
    return seconds * 1e6


async def _measure(args: argparse.Namespace) -> dict[str, float]:
    keys = [args.authorization.split()[-1]] if args.authorization else []
    app = create_app(Settings(model_dir=args.model_dir, api_keys=keys))
    async with LifespanManager(app, startup_timeout=120) as manager:
        runs: dict[int, list[float]] = {c: [] for c in args.concurrency}
        for _ in range(args.rounds):
            for concurrency in args.concurrency:
                runs[concurrency].append(await _cpu_per_request(manager.app, args, concurrency))
    return {f"c{c}_cpu_us": round(statistics.median(v), 1) for c, v in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="a registry with iris")
    parser.add_argument("--path", default="/models/iris/predict", help="the route to call")
    parser.add_argument("--requests", type=int, default=2048, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median is printed")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 64],
        help="comma list of concurrent requests (default 1,64)",
    )  # fmt: skip
    parser.add_argument(
        "--authorization", help="send this Authorization header (and configure its key)"
    )
    print(json.dumps(asyncio.run(_measure(parser.parse_args()))))


if __name__ == "__main__":
    main()
