"""A/B of two commits' request path: the same wrk load, servers alternating, medians compared.

    python -m bench.ab_commits BASE_COMMIT HEAD_COMMIT [--model iris --rows 1 --rounds 5]

Each commit's `serving/` is exported (git archive) under .bench/ab-<commit>/ and served by
this virtualenv with that directory first on PYTHONPATH: 2 workers, cache off, loopback.
Rounds alternate A, B, A, B... so drifts of a shared, noisy machine hit both alike.
Besides requests/s (which other load on the machine moves a lot) it reports the workers'
CPU time per request (utime + stime from /proc, before and after the timed run), which
measures the request path's own cost and is much less sensitive to that noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.loadgen import body_template, run_wrk
from bench.registry import load_model_info, prepare_registry
from bench.servers import BENCH_DIR, FAIR_THREAD_ENV, REPO_ROOT, Server, free_port, stop, wait_ready


def export(commit: str) -> Path:
    target = BENCH_DIR / f"ab-{commit}"
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", commit, "serving"], cwd=REPO_ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def start(source: Path, model_dir: Path, log: Path) -> Server:
    port = free_port()
    env = {
        **FAIR_THREAD_ENV,
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "PYTHONPATH": str(source),
        "SERVING_MODEL_DIR": str(model_dir),
        "SERVING_CACHE_MAX_ENTRIES": "0",
        "SERVING_LOG_LEVEL": "warning",
    }
    argv = [sys.executable, "-m", "serving.cli", "serve", "--workers", "2"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=source, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(source.name, port, process, log)
    wait_ready(server, ["/health/ready"], 120)
    return server


def workers_cpu_seconds(master: int) -> float:
    """utime + stime of the master's children (the gunicorn workers), in seconds."""
    with open(f"/proc/{master}/task/{master}/children") as listing:
        pids = listing.read().split()
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commits", nargs=2)
    parser.add_argument("--model", default="iris")
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model_dir = prepare_registry(BENCH_DIR / "models-serving-train", "serving-train", "serving")
    model = load_model_info(model_dir, args.model)
    template, base = body_template(model, args.rows, "instances")
    template_file = BENCH_DIR / "ab-body.json"
    template_file.write_text(template)
    path = f"/models/{args.model}/predict"
    rps: dict[str, list[float]] = {c: [] for c in args.commits}
    p99: dict[str, list[float]] = {c: [] for c in args.commits}
    cpu_ms: dict[str, list[float]] = {c: [] for c in args.commits}
    for round_ in range(args.rounds):
        for commit in args.commits:
            server = start(export(commit), model_dir, BENCH_DIR / f"ab-{commit}.log")
            try:
                run_wrk(server.base_url, path, template_file, base, args.connections, 2, 2, 10)
                cpu_before = workers_cpu_seconds(server.proc.pid)
                result = run_wrk(
                    server.base_url, path, template_file, base, args.connections,
                    args.seconds, 2, 10,
                )  # fmt: skip
                cpu = workers_cpu_seconds(server.proc.pid) - cpu_before
            finally:
                stop(server)
            rps[commit].append(result.rps)
            p99[commit].append(result.p99_us / 1000)
            cpu_ms[commit].append(1000 * cpu / max(1, result.requests))
            print(f"round {round_ + 1} {commit}: {result.rps:.0f} req/s, p99 "
                  f"{result.p99_us / 1000:.2f} ms, worker CPU {cpu_ms[commit][-1]:.3f} ms/request, "
                  f"errors {result.errors}", flush=True)  # fmt: skip
    a, b = args.commits
    for commit in args.commits:
        print(f"{commit}: median {statistics.median(rps[commit]):.0f} req/s "
              f"(min-max {min(rps[commit]):.0f}-{max(rps[commit]):.0f}), "
              f"median p99 {statistics.median(p99[commit]):.2f} ms, median worker CPU "
              f"{statistics.median(cpu_ms[commit]):.3f} ms/request "
              f"(min-max {min(cpu_ms[commit]):.3f}-{max(cpu_ms[commit]):.3f})")  # fmt: skip
    ratio = statistics.median(rps[b]) / statistics.median(rps[a])
    print(f"{b}/{a} median req/s = {ratio:.3f}")
    cpu_ratio = statistics.median(cpu_ms[b]) / statistics.median(cpu_ms[a])
    print(f"{b}/{a} median worker CPU per request = {cpu_ratio:.3f}")


if __name__ == "__main__":
    main()
