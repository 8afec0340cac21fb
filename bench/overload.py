"""Overload: goodput, admitted p99 and shed rate at 2x and 4x capacity, limit on and off.

    python -m bench.overload                 # ~6 min; prints a Markdown report, writes JSON

Ours with 2 workers on the forest (breast_cancer, 200 trees), cache off so every request
is scored, `--rows` rows per body. Steps, each against a freshly started server:

1. capacity: wrk, closed loop, 64 connections, median requests/s of 3 runs (limit off);
2. unloaded p99: the open-loop generator at 10% of capacity (limit on);
3. for the limit on (`--max-inflight`) and off (SERVING_MAX_INFLIGHT far above any
   backlog), an open-loop run at 2x and then 4x capacity: goodput (200s per second), p99
   of the 200s from their due time, shed rate (503s per second), other statuses, requests
   the client could not send (every connection busy), and each worker's RSS before and after.

Only loopback; every server is ours, started and stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import openloop
from bench.loadgen import body_template, run_wrk
from bench.registry import ModelInfo, load_model_info, prepare_registry
from bench.servers import BENCH_DIR, LaunchOptions, Server, resolve_serving_cmd, running

MODEL = "breast_cancer"
PATH = f"/models/{MODEL}/predict"
LIMIT_OFF = 1_000_000


@dataclass(frozen=True)
class Run:
    label: str
    offered_rate: float
    seconds: float
    goodput: float  # 200s per second, over the run or until the last 200 if later
    shed_rate: float  # 503s per second
    shed_fraction: float
    p50_ok_ms: float
    p99_ok_ms: float
    statuses: dict[int, int]
    unsent: int
    send_seconds: float
    rss_before_mb: list[float]
    rss_after_mb: list[float]


def worker_rss_mb(master_pid: int) -> list[float]:
    """Resident memory of each gunicorn worker (the master's children), in MiB."""
    with open(f"/proc/{master_pid}/task/{master_pid}/children") as listing:
        pids = [int(pid) for pid in listing.read().split()]
    sizes = []
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
    return sorted(sizes)


def requests_for(model: ModelInfo, rows: int, count: int = 256) -> list[bytes]:
    """`count` distinct bodies of `rows` real rows each, as ready-to-send HTTP requests."""
    bodies = []
    for start in range(count):
        chosen = [model.rows[(start + i) % len(model.rows)] for i in range(rows)]
        body = json.dumps({"instances": chosen}).encode()
        bodies.append(openloop.encode_post("127.0.0.1", PATH, body))
    return bodies


def open_loop(server: Server, label: str, requests: list[bytes], rate: float, secs: float) -> Run:
    pid = server.proc.pid
    before = worker_rss_mb(pid)
    result = asyncio.run(openloop.run("127.0.0.1", server.port, requests, rate, secs))
    after = worker_rss_mb(pid)
    ok = result.latencies.get(200, [])
    sent = result.count()
    shed = result.count(503)
    return Run(
        label=label,
        offered_rate=rate,
        seconds=secs,
        goodput=len(ok) / max(secs, result.last_ok_seconds),  # late answers stretch it
        shed_rate=shed / secs,
        shed_fraction=shed / sent if sent else 0.0,
        p50_ok_ms=openloop.percentile(ok, 0.50) * 1000,
        p99_ok_ms=openloop.percentile(ok, 0.99) * 1000,
        statuses={status: len(v) for status, v in sorted(result.latencies.items())},
        unsent=result.unsent,
        send_seconds=result.send_seconds,
        rss_before_mb=before,
        rss_after_mb=after,
    )


@contextmanager
def server_with(args: argparse.Namespace, max_inflight: int) -> Iterator[Server]:
    serving_cmd = resolve_serving_cmd(None)
    assert serving_cmd is not None, "install the project first: pip install -e ."
    env = {
        "SERVING_CACHE_MAX_ENTRIES": "0",
        "SERVING_MAX_INFLIGHT": str(max_inflight),
        "SERVING_LOG_LEVEL": "warning",  # one log line per shed request would cost more
    }
    options = LaunchOptions(args.model_dir, [], args.out_dir, serving_cmd, env)
    with running("ours", options) as server:
        yield server


def capacity(args: argparse.Namespace, model: ModelInfo) -> float:
    template, base = body_template(model, args.rows, "instances")
    template_file = args.out_dir / "overload-body.json"
    template_file.write_text(template)
    with server_with(args, LIMIT_OFF) as server:
        run_wrk(server.base_url, PATH, template_file, base, 64, 3, 2, 10)  # warm-up
        runs = [
            run_wrk(server.base_url, PATH, template_file, base, 64, args.wrk_seconds, 2, 10)
            for _ in range(3)
        ]
    print(f"[overload] capacity runs (req/s): {[round(r.rps) for r in runs]}", flush=True)
    return statistics.median(r.rps for r in runs)


def measure(args: argparse.Namespace) -> dict[str, object]:
    serving_cmd = resolve_serving_cmd(None) or "serving"
    prepare_registry(args.model_dir, "serving-train", serving_cmd)
    model = load_model_info(args.model_dir, MODEL)
    requests = requests_for(model, args.rows)
    cap = capacity(args, model)
    print(f"[overload] capacity {cap:.0f} req/s", flush=True)
    runs: list[Run] = []
    for limit_label, limit in (("on", args.max_inflight), ("off", LIMIT_OFF)):
        with server_with(args, limit) as server:
            open_loop(server, "warm-up", requests, cap / 2, 3)
            if limit_label == "on":
                runs.append(open_loop(server, "unloaded (0.1x)", requests, cap / 10, args.seconds))
            for multiple in (2, 4):
                label = f"{multiple}x, limit {limit_label}"
                runs.append(open_loop(server, label, requests, cap * multiple, args.seconds))
                print(f"[overload] {runs[-1]}", flush=True)
    return {"capacity_rps": cap, "rows": args.rows, "max_inflight": args.max_inflight,
            "runs": [asdict(r) for r in runs]}  # fmt: skip


def report(results: dict[str, object]) -> str:
    runs = results["runs"]
    assert isinstance(runs, list)
    lines = [
        f"capacity (wrk, 64 connections, median of 3): {results['capacity_rps']:.0f} req/s; "
        f"{results['rows']} rows per body; SERVING_MAX_INFLIGHT={results['max_inflight']}",
        "",
        "| run | offered req/s | goodput (200/s) | p50 200 ms | p99 200 ms | shed 503/s "
        "| shed % | other | unsent | worker RSS MiB before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        other = {s: n for s, n in run["statuses"].items() if s not in (200, 503)}
        lines.append(
            f"| {run['label']} | {run['offered_rate']:.0f} | {run['goodput']:.0f} "
            f"| {run['p50_ok_ms']:.1f} | {run['p99_ok_ms']:.1f} | {run['shed_rate']:.0f} "
            f"| {100 * run['shed_fraction']:.0f} | {other or '-'} | {run['unsent']} "
            f"| {run['rss_before_mb']} -> {run['rss_after_mb']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--wrk-seconds", type=float, default=8.0)
    parser.add_argument("--max-inflight", type=int, default=24)
    parser.add_argument("--model-dir", type=Path, default=BENCH_DIR / "models-serving-train")
    parser.add_argument("--out-dir", type=Path, default=BENCH_DIR)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = measure(args)
    out = args.out_dir / f"overload-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"[overload] raw results: {out}")


if __name__ == "__main__":
    main()
