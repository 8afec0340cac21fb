"""Traffic split and shadow, measured on real servers over loopback.

    python -m bench.traffic [--requests 10000] [--duration 5] [--rounds 3]

1. Split: two replicas (`serving serve`, 2 workers each) share one registry with iris at
   production=90 canary=10. `--requests` requests with a distinct X-Routing-Key each, then as
   many without a key, alternate between the replicas; the canary's share of each. Then
   1,000 keys sent 4 times each (twice per replica, a fresh connection every time): how
   many keys ever saw two versions.
2. Shadow cost: one server (2 workers); iris and breast_cancer, 1-row bodies, 64
   connections (wrk, every body different: cache misses), shadow off and on, alternating
   for `--rounds`. The shadow alias points at a copy of production, so a shadow call costs
   what the primary's costs. Reports median req/s and p99 of each side, their ratios, the
   copies scored and dropped per second, and the shadow's estimator seconds per second.
3. A shadow that raises on every call, at 64 connections: failed primary answers.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import joblib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.loadgen import WrkRun, body_template, run_wrk
from bench.registry import load_model_info
from serving.repository.signing import TrustedKeys, public_key_text
from serving.repository.store import ModelStore
from serving.repository.traffic import TrafficTable
from tests.metrics_text import Samples, parse, total
from tests.processes import ServerProcess, running_server, worker_pids
from tests.traffic_versions import raising_iris
from training.publish import prepare
from training.train import train

MODELS = ("iris", "breast_cancer")
_SPLIT = {"production": 90, "canary": 10}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs per model")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--skip-split", action="store_true", help="only the shadow's cost")
    return parser.parse_args()


def _registry(root: Path, key: Ed25519PrivateKey) -> ModelStore:
    """iris and breast_cancer: v1 production, v2 a copy of v1 (canary, candidate);
    iris v3 raises on every call (broken)."""
    store = ModelStore(root, TrustedKeys([key.public_key()]))
    for name in MODELS:
        train(name, root, key)
        estimator = joblib.load(root / name / "1" / "model.joblib")
        names = store.read_manifest(name, 1).feature_names
        copy = prepare(estimator, name=name, signing_key=key, feature_names=names)
        copy.publish_to(store)
        for alias, version in (("production", 1), ("canary", 2), ("candidate", 2)):
            store.set_alias(name, alias, version)
    broken = raising_iris(store, key)
    version = broken.publish_to(store)
    store.set_alias("iris", "broken", version)
    return store


def _environment(root: Path, key: Ed25519PrivateKey) -> dict[str, str]:
    return {
        "SERVING_MODEL_DIR": str(root),
        "SERVING_TRUSTED_KEYS": public_key_text(key.public_key()),
        "SERVING_SIGNING_KEY_FILE": str(root.parent / "no-key.pem"),
        "SERVING_LOG_LEVEL": "warning",
        "SERVING_POLL_INTERVAL_SECONDS": "0.5",
    }


# --- 1. the split ----------------------------------------------------------------------------
async def _send(
    urls: list[str], keys: list[str | None], fresh: bool
) -> list[tuple[str | None, int]]:
    """Each request to urls[i % len(urls)]; 32 at a time; (key, version) per answer."""
    limits = httpx.Limits(max_keepalive_connections=0 if fresh else 32)
    clients = [httpx.AsyncClient(base_url=u, timeout=30, limits=limits) for u in urls]
    slots = asyncio.Semaphore(32)
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}

    async def one(index: int, key: str | None) -> tuple[str | None, int]:
        headers = {"X-Routing-Key": key} if key is not None else {}
        async with slots:
            answer = await clients[index % len(clients)].post(
                "/models/iris/predict", json=body, headers=headers
            )
        answer.raise_for_status()
        return key, int(answer.json()["version"])

    try:
        return list(await asyncio.gather(*(one(i, k) for i, k in enumerate(keys))))
    finally:
        for client in clients:
            await client.aclose()


def measure_split(store: ModelStore, env: dict[str, str], scratch: Path, requests: int) -> None:
    store.set_traffic("iris", TrafficTable(weights=_SPLIT))
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(env, scratch / f"replica-{i}.log")) for i in range(2)
        ]
        urls = [server.url for server in servers]
        keyed: list[str | None] = [f"key-{i}" for i in range(requests)]
        unkeyed: list[str | None] = [None] * requests
        for label, keys in (("with a routing key each", keyed), ("without one", unkeyed)):
            started = time.perf_counter()
            answers = asyncio.run(_send(urls, keys, fresh=False))
            share = Counter(v for _, v in answers)[2] / len(answers) * 100
            took = time.perf_counter() - started
            print(
                f"split {label}: {len(answers)} requests over 2 replicas x 2 workers, canary "
                f"{share:.2f}% (weight 10, off by {abs(share - 10):.2f} points), {took:.1f} s"
            )
        sticky = [f"user-{i}" for i in range(1000)] * 4
        answers = asyncio.run(_send(urls, list(sticky), fresh=True))
        versions: dict[str | None, set[int]] = {}
        for key, version in answers:
            versions.setdefault(key, set()).add(version)
        split_keys = sum(1 for seen in versions.values() if len(seen) > 1)
        print(
            f"stickiness: 1000 keys x 4 requests (2 per replica, fresh connections): "
            f"{split_keys} keys saw two versions"
        )


# --- 2. and 3. the shadow --------------------------------------------------------------------
def _scrape(url: str) -> Samples:
    return parse(httpx.get(f"{url}/metrics", timeout=30).text)


def _set_shadow(url: str, store: ModelStore, name: str, shadow: str | None) -> None:
    """Store the shadow, then wait until the server acts on it: with a shadow, until copies
    are scored; without, three polls (0.5 s each) so that every worker has read it."""
    store.set_traffic(name, TrafficTable(shadow=shadow))
    if shadow is None:
        time.sleep(1.5)
        return
    body = {"instances": [load_model_info(store.root, name).rows[0]]}
    before = total(_scrape(url), "serving_shadow_results_total", model=name)
    deadline = time.monotonic() + 60
    while total(_scrape(url), "serving_shadow_results_total", model=name) < before + 8:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the shadow of {name} never scored a copy")
        for _ in range(4):  # a new connection each: both workers get some
            httpx.post(f"{url}/models/{name}/predict", json=body, timeout=30)


def _body(scratch: Path, root: Path, name: str) -> tuple[Path, float]:
    """A 1-row body template for wrk's perturbing script, and the value it perturbs."""
    template, base = body_template(load_model_info(root, name), 1, "instances")
    path = scratch / f"{name}-1row.txt"
    path.write_text(template)
    return path, base


def _wrk(
    server: ServerProcess, name: str, body: tuple[Path, float], args: argparse.Namespace
) -> WrkRun:
    path, base = body
    return run_wrk(
        server.url, f"/models/{name}/predict", path, base, args.connections, args.duration, 2, 10
    )


def _shadow_counts(before: Samples, after: Samples, name: str, seconds: float) -> dict[str, float]:
    def delta(metric: str, **labels: str) -> float:
        return total(after, metric, **labels) - total(before, metric, **labels)

    return {
        "scored_per_s": delta("serving_shadow_results_total", model=name) / seconds,
        "dropped_per_s": delta("serving_shadow_dropped_total", model=name) / seconds,
        "errors": delta("serving_shadow_results_total", model=name, verdict="error"),
        "shadow_estimator_s_per_s": delta("serving_inference_seconds_sum", model=name, version="2")
        / seconds,
        "primary_estimator_s_per_s": delta("serving_inference_seconds_sum", model=name, version="1")
        / seconds,
    }


def measure_shadow(
    store: ModelStore, env: dict[str, str], scratch: Path, args: argparse.Namespace
) -> None:
    root = store.root
    with running_server(env, scratch / "shadow.log") as server:
        for name in MODELS:
            runs: dict[str, list[WrkRun]] = {"off": [], "on": []}
            cpu_ms: dict[str, list[float]] = {"off": [], "on": []}  # worker CPU per request
            counts: list[dict[str, float]] = []
            body = _body(scratch, root, name)
            _wrk(server, name, body, argparse.Namespace(**{**vars(args), "duration": 2}))
            for round_number in range(args.rounds):
                order = ("off", "on") if round_number % 2 == 0 else ("on", "off")
                for mode in order:
                    _set_shadow(server.url, store, name, "candidate" if mode == "on" else None)
                    before, cpu_before = _scrape(server.url), _worker_cpu_seconds(server)
                    run = _wrk(server, name, body, args)
                    cpu_ms[mode].append(
                        (_worker_cpu_seconds(server) - cpu_before) / max(run.requests, 1) * 1000
                    )
                    runs[mode].append(run)
                    if mode == "on":
                        seconds = run.duration_us / 1e6
                        counts.append(_shadow_counts(before, _scrape(server.url), name, seconds))
            _report_shadow(name, runs, counts, args.connections)
            off, on = statistics.median(cpu_ms["off"]), statistics.median(cpu_ms["on"])
            print(f"  worker CPU per answered request: {off:.2f} ms off, {on:.2f} ms on")
        _set_shadow(server.url, store, "iris", "broken")
        before = _scrape(server.url)
        run = _wrk(server, "iris", _body(scratch, root, "iris"), args)
        broken = _shadow_counts(before, _scrape(server.url), "iris", run.duration_us / 1e6)
        print(
            f"iris with a shadow that raises on every call, c{args.connections}: "
            f"{run.requests} primary answers, {run.errors} failed; "
            f"{broken['errors']:.0f} shadow errors counted"
        )
        _set_shadow(server.url, store, "iris", None)


def _worker_cpu_seconds(server: ServerProcess) -> float:
    """User + system CPU of the gunicorn workers so far: less sensitive than throughput to
    what else runs on a shared machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = 0.0
    for pid in worker_pids(server.process.pid):
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        used += (int(fields[11]) + int(fields[12])) / ticks
    return used


def _report_shadow(
    name: str, runs: dict[str, list[WrkRun]], counts: list[dict[str, float]], connections: int
) -> None:
    def median(mode: str, field: str) -> float:
        return statistics.median(float(getattr(run, field)) for run in runs[mode])

    rps_off, rps_on = median("off", "rps"), median("on", "rps")
    p99_off, p99_on = median("off", "p99_us") / 1000, median("on", "p99_us") / 1000
    noted: dict[str, Any] = {k: statistics.median(c[k] for c in counts) for k in counts[0]}
    each = {mode: [round(run.rps) for run in runs[mode]] for mode in runs}
    print(
        f"{name} 1 row c{connections}, shadow off vs on "
        f"(medians of {len(runs['on'])} alternating runs):\n"
        f"  req/s {rps_off:.0f} vs {rps_on:.0f} (on/off {rps_on / rps_off:.3f}; runs {each})\n"
        f"  p99 {p99_off:.1f} ms vs {p99_on:.1f} ms (on/off {p99_on / p99_off:.3f})\n"
        f"  shadow: {noted['scored_per_s']:.0f} copies scored/s, "
        f"{noted['dropped_per_s']:.0f} dropped/s; "
        f"estimator seconds per second: shadow {noted['shadow_estimator_s_per_s']:.3f}, "
        f"primary {noted['primary_estimator_s_per_s']:.3f}; "
        f"errors {[run.errors for mode in runs for run in runs[mode]]}"
    )


def main() -> None:
    args = _parse_args()
    with tempfile.TemporaryDirectory(prefix="serving-traffic-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        key = Ed25519PrivateKey.generate()
        store = _registry(scratch / "models", key)
        env = _environment(scratch / "models", key)
        if not args.skip_split:
            measure_split(store, env, scratch, args.requests)
        measure_shadow(store, env, scratch, args)


if __name__ == "__main__":
    main()
