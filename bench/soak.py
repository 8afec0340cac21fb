"""Soak: ten minutes of mixed traffic while the operator and the machine misbehave.

    python -m bench.soak [--seconds 600]      # runs by itself, stops, prints a report

A scratch registry (iris v1 and v2, breast_cancer, diabetes, trained by `serving train`),
a redis-server of its own on a free port, and `serving serve` with 2 workers, the Redis
cache and notifications, and SERVING_MAX_INFLIGHT=32. The clients (bench/soak_traffic.py)
send default and version-pinned iris requests, forest and V2 requests, garbage, and every
90 s a 10 s burst of 64 concurrent forest requests. Meanwhile, on a timeline:

- every 20 s iris `production` moves: promoted to the other version over HTTP, then
  rolled back (POST .../aliases/production/rollback), alternately;
- at 30% of the run redis-server is SIGKILLed, and started again on its port 30 s later;
- at 60% one worker is SIGKILLed (gunicorn starts a new one).

Reported: requests sent, statuses, 5xx other than 503/504 (must be 0), wrong-version
answers (must be 0), transport errors (connections cut by the killed worker), and the
workers' RSS after warm-up and at the end (growth under 10%; a replaced worker is compared
with its own first sample). Only loopback; every process is ours and stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.overload import worker_rss_mb
from bench.servers import BENCH_DIR, FAIR_THREAD_ENV, Server, free_port, stop, wait_ready
from bench.soak_traffic import Tally, Traffic

ADMIN = {"Authorization": "Bearer soak-admin-token"}


def serving(*args: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "serving.cli", *args]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    command += ["no", "--dir", str(workdir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        probe = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True)
        if probe.stdout.strip() == b"PONG":
            return process
        time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


def worker_pids(master: int) -> list[int]:
    with open(f"/proc/{master}/task/{master}/children") as listing:
        return sorted(int(pid) for pid in listing.read().split())


def rss_by_pid(master: int) -> dict[int, float]:
    return dict(zip(worker_pids(master), worker_rss_mb(master), strict=True))


async def operate(server: Server, tally: Tally, redis: dict[str, object], args: argparse.Namespace,
                  rss: list[dict[int, float]]) -> None:  # fmt: skip
    """The timeline: alias moves every 20 s, Redis killed and restarted, a worker killed."""
    started = time.monotonic()
    events = {"redis_kill": 0.3 * args.seconds, "redis_start": 0.3 * args.seconds + 30,
              "worker_kill": 0.6 * args.seconds}  # fmt: skip
    promote = True
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, headers=ADMIN) as admin:
        while (elapsed := time.monotonic() - started) < args.seconds - 5:
            await asyncio.sleep(20)
            moved_at = time.monotonic()
            if promote:
                current = tally.production[-1][1]
                answer = await admin.put("/models/iris/aliases/production",
                                         json={"version": 3 - current})  # fmt: skip
            else:
                answer = await admin.post("/models/iris/aliases/production/rollback")
            answer.raise_for_status()
            tally.production.append((moved_at, int(answer.json()["version"])))
            promote = not promote
            elapsed = time.monotonic() - started
            await _timeline(events, elapsed, server, redis, args)
            if not rss and elapsed > 60:
                rss.append(rss_by_pid(server.proc.pid))


async def _timeline(events: dict[str, float], elapsed: float, server: Server,
                    redis: dict[str, object], args: argparse.Namespace) -> None:  # fmt: skip
    for name, at in list(events.items()):
        if elapsed < at:
            continue
        del events[name]
        process = redis["process"]
        assert isinstance(process, subprocess.Popen)
        if name == "redis_kill":
            process.kill()
            process.wait()
        elif name == "redis_start":
            redis["process"] = start_redis(int(str(redis["port"])), args.workdir)
        else:
            os.kill(worker_pids(server.proc.pid)[0], signal.SIGKILL)
        print(f"[soak] {elapsed:.0f}s {name}", flush=True)


def prepare(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVING_")}
    env.update(FAIR_THREAD_ENV)
    env.update(SERVING_MODEL_DIR=str(workdir / "models"),
               SERVING_SIGNING_KEY_FILE=str(workdir / "signing-key.pem"))  # fmt: skip
    for name in ("iris", "iris", "breast_cancer", "diabetes"):
        serving("train", name, env=env)
    serving("promote", "iris", "1", env=env)
    return env


def start_server(env: dict[str, str], redis_url: str, log: Path) -> Server:
    port = free_port()
    env = {**env, "SERVING_REDIS_URL": redis_url, "SERVING_ADMIN_TOKENS": "soak-admin-token",
           "SERVING_MAX_INFLIGHT": "32", "SERVING_LOG_LEVEL": "warning"}  # fmt: skip
    command = [sys.executable, "-m", "serving.cli", "serve", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    server = Server("soak", port, process, log)
    wait_ready(server, ["/health/ready"], 120)
    return server


async def soak(server: Server, redis: dict[str, object], args: argparse.Namespace) -> Tally:
    tally = Tally(production=[(0.0, 1)])
    rss: list[dict[int, float]] = []
    traffic = Traffic(server.base_url, tally, time.monotonic() + args.seconds)
    await asyncio.gather(traffic.run(burst_every=90), operate(server, tally, redis, args, rss))
    rss.append(rss_by_pid(server.proc.pid))
    tally.check_defaults()
    print(report(tally, rss))
    return tally


def report(tally: Tally, rss: list[dict[int, float]]) -> str:
    first, last = rss[0], rss[-1]
    growth = {pid: f"{first[pid]} -> {last[pid]} MiB ({100 * (last[pid] / first[pid] - 1):+.1f}%)"
              for pid in first if pid in last}  # fmt: skip
    replaced = {pid: f"{mb} MiB (started during the run)" for pid, mb in last.items()
                if pid not in first}  # fmt: skip
    lines = [
        f"requests sent: {tally.sent}",
        f"statuses: {dict(sorted(tally.statuses.items()))}",
        f"5xx other than 503/504: {len(tally.bad_5xx)} {tally.bad_5xx[:5]}",
        f"wrong-version answers: {len(tally.wrong_version)} {tally.wrong_version[:5]}",
        f"default-version answers checked: {len(tally.defaults)}; alias moves: "
        f"{len(tally.production) - 1}",
        f"garbage answered 2xx/3xx: {len(tally.garbage_2xx)} {tally.garbage_2xx[:3]}",
        f"transport errors: {dict(tally.transport_errors)}",
        f"worker RSS after warm-up -> end: {growth}; {replaced}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    args = parser.parse_args()
    args.workdir = BENCH_DIR / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    args.workdir.mkdir(parents=True)
    env = prepare(args.workdir)
    port = free_port()
    redis: dict[str, object] = {"port": port, "process": start_redis(port, args.workdir)}
    server = start_server(env, f"redis://127.0.0.1:{port}/0", args.workdir / "server.log")
    try:
        asyncio.run(soak(server, redis, args))
    finally:
        stop(server)
        process = redis["process"]
        assert isinstance(process, subprocess.Popen)
        process.terminate()
        process.wait(10)
    print(f"[soak] server log: {args.workdir / 'server.log'}")


if __name__ == "__main__":
    main()
