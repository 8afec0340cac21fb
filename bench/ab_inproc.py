"""A/B of two commits' request path in one process: CPU time per request, no HTTP, no wrk.

    python -m bench.ab_inproc BASE_COMMIT HEAD_COMMIT [--model iris --rows 1 --rounds 7]

Each round starts one child process per commit (alternating A, B, A, B...), with that
commit's `serving/` (exported by bench.ab_commits) first on PYTHONPATH. The child builds the
app, runs its lifespan, and sends `--requests` distinct predictions one after another
through httpx's ASGI transport; it reports the process's CPU time (all its threads: the
event loop and the scoring pool) per request. One request at a time, cache off: the figure
is the whole request path's own cost, which a loaded machine moves far less than it moves
requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.ab_commits import export
from bench.registry import load_model_info, prepare_registry
from bench.servers import BENCH_DIR, FAIR_THREAD_ENV, REPO_ROOT


async def _child(model_dir: Path, model: str, rows: int, requests: int) -> dict[str, float]:
    import httpx
    from asgi_lifespan import LifespanManager

    from serving.api.app import create_app
    from serving.core.settings import Settings

    data = load_model_info(model_dir, model).rows
    bodies = [_body(data, i, rows) for i in range(requests + 200)]
    app = create_app(Settings(model_dir=model_dir, cache_max_entries=0, log_level="warning"))
    async with LifespanManager(app, startup_timeout=120) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ab") as client:
            path = f"/models/{model}/predict"
            for body in bodies[:200]:  # warm-up
                (await client.post(path, content=body)).raise_for_status()
            cpu, wall = time.process_time(), time.perf_counter()
            for body in bodies[200:]:
                (await client.post(path, content=body)).raise_for_status()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us": cpu / requests * 1e6, "wall_us": wall / requests * 1e6}


def _body(data: list[list[float]], index: int, rows: int) -> bytes:
    """`rows` real rows; the first value nudged by `index`, so no two bodies are the same."""
    chosen = [list(data[(index + j) % len(data)]) for j in range(rows)]
    chosen[0][0] += index * 1e-9
    return json.dumps({"instances": chosen}).encode()


def run_child(commit: str, args: argparse.Namespace, model_dir: Path) -> dict[str, float]:
    env = {**os.environ, **FAIR_THREAD_ENV, "PYTHONPATH": f"{export(commit)}:{REPO_ROOT}"}
    env = {k: v for k, v in env.items() if not k.startswith("SERVING_")}
    command = [sys.executable, "-m", "bench.ab_inproc", "--child", str(model_dir), args.model,
               str(args.rows), str(args.requests)]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        where, model, rows, requests = sys.argv[2:6]
        print(json.dumps(asyncio.run(_child(Path(where), model, int(rows), int(requests)))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commits", nargs=2)
    parser.add_argument("--model", default="iris")
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    model_dir = prepare_registry(BENCH_DIR / "models-serving-train", "serving-train", "serving")
    cpu: dict[str, list[float]] = {c: [] for c in args.commits}
    for round_ in range(args.rounds):
        for commit in args.commits:
            result = run_child(commit, args, model_dir)
            cpu[commit].append(result["cpu_us"])
            print(f"round {round_ + 1} {commit}: {result['cpu_us']:.1f} us CPU/request, "
                  f"{result['wall_us']:.1f} us wall", flush=True)  # fmt: skip
    for commit in args.commits:
        print(f"{commit}: median {statistics.median(cpu[commit]):.1f} us CPU/request "
              f"(min-max {min(cpu[commit]):.1f}-{max(cpu[commit]):.1f})")  # fmt: skip
    a, b = args.commits
    print(f"{b}/{a} median CPU per request = "
          f"{statistics.median(cpu[b]) / statistics.median(cpu[a]):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
