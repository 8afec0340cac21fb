"""What tracing, drift counting and the payload log cost, side by side, and what PSI means.

    python -m bench.observability [--rounds 5] [--duration 5] [--baseline-python PATH]

Servers: one `serving serve --workers 2` per variant, all started at once on loopback and
measured in alternating order (each round rotates the order), so slow drifts of the shared
machine spread over every variant. wrk sends 1-row bodies at 64 connections, each body
different (cache misses). Variants:

- before: the code before this feature (--baseline-python: a virtualenv of that checkout;
  it trains its own registry, since that code refuses manifests with a profile)
- off: tracing, drift and the payload log all off (SERVING_DRIFT_WINDOW=0)
- drift: the defaults: drift counted over 10,000 rows, nothing else
- trace-100 / trace-1: OTLP/HTTP to a local receiver, sampled at 100% / 1% (drift off)
- payload-100 / payload-1: JSON lines to a file, sampled at 100% / 1% (drift off)

First it prints the drift figure for a known shift (bench/drift_shift.py).
"""

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.drift_shift import drift_table
from bench.loadgen import body_template, run_wrk
from bench.registry import load_model_info
from bench.servers import FAIR_THREAD_ENV, free_port
from serving.repository.signing import public_key_text

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = ("iris", "breast_cancer")


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]
    baseline: bool = False


def variants(otlp: str, scratch: Path) -> list[Variant]:
    off = {"SERVING_DRIFT_WINDOW": "0"}
    trace = {**off, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp}
    payload = {**off, "SERVING_PAYLOAD_LOG": f"file:{scratch}/payloads.jsonl"}
    return [
        Variant("before", {}, baseline=True),
        Variant("off", off),
        Variant("drift", {}),
        Variant("trace-100", {**trace, "OTEL_TRACES_SAMPLER": "always_on"}),
        Variant(
            "trace-1",
            {
                **trace,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.01",
            },
        ),
        Variant("payload-100", {**payload, "SERVING_PAYLOAD_SAMPLE": "1"}),
        Variant("payload-1", {**payload, "SERVING_PAYLOAD_SAMPLE": "0.01"}),
    ]


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """Accepts OTLP/HTTP exports and throws them away: a collector's cost is not ours."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def train_registry(python: str, directory: Path, key_file: Path) -> None:
    env = {**os.environ, "SERVING_MODEL_DIR": str(directory)}
    env["SERVING_SIGNING_KEY_FILE"] = str(key_file)
    command = [python, "-m", "serving.cli", "train", *MODELS]
    cwd = Path(python).parents[2] if python != sys.executable else REPO_ROOT
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True, timeout=600)


@dataclass
class Started:
    variant: Variant
    url: str
    process: subprocess.Popen[bytes]


def start(variant: Variant, python: str, model_dir: Path, key: str, log_dir: Path) -> Started:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "OTEL_"))}
    env.update(FAIR_THREAD_ENV)
    env.update({"SERVING_MODEL_DIR": str(model_dir), "SERVING_TRUSTED_KEYS": key})
    env.update({"SERVING_LOG_LEVEL": "warning", **variant.env})
    command = [python, "-m", "serving.cli", "serve", "--workers", "2", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    cwd = Path(python).parents[2] if variant.baseline else REPO_ROOT
    with (log_dir / f"{variant.name}.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Started(variant, f"http://127.0.0.1:{port}", process)


def wait_ready(server: Started, timeout_seconds: float = 120) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                return
        assert server.process.poll() is None, f"{server.variant.name} exited"
        time.sleep(0.2)
    raise TimeoutError(f"{server.variant.name} not ready")


def stop(server: Started) -> None:
    """Our own process group only (start_new_session: its id is the server's PID)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)


def measure(
    servers: list[Started], model_dirs: dict[bool, Path], args: argparse.Namespace, scratch: Path
) -> dict[tuple[str, str], list[dict[str, float]]]:
    """Rounds x models x variants (order rotated each round): one wrk run each."""
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    bodies = {}
    for model in MODELS:
        template, base = body_template(load_model_info(model_dirs[False], model), 1, "instances")
        path = scratch / f"{model}-1.json"
        path.write_text(template)
        bodies[model] = (path, base)
    for server in servers:  # warm every server: imports, first calls, connection pools
        for model in MODELS:
            path, base = bodies[model]
            run_wrk(server.url, f"/models/{model}/predict", path, base, 16, 1, 2, 10)
    for round_number in range(args.rounds):
        order = servers[round_number % len(servers) :] + servers[: round_number % len(servers)]
        for model in MODELS:
            path, base = bodies[model]
            for server in order:
                run = run_wrk(
                    server.url, f"/models/{model}/predict", path, base,
                    args.connections, args.duration, 2, 10,
                )  # fmt: skip
                record = {"rps": run.rps, "p50_ms": run.p50_us / 1000, "p99_ms": run.p99_us / 1000}
                record["errors"] = run.errors
                runs.setdefault((server.variant.name, model), []).append(record)
                print(
                    f"round {round_number + 1} {model:13} {server.variant.name:12} "
                    f"{run.rps:8.1f} req/s p50 {record['p50_ms']:6.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    return runs


def cost_table(runs: dict[tuple[str, str], list[dict[str, float]]], names: list[str]) -> str:
    lines = [
        "| model | variant | median req/s | vs off | paired vs off | vs before | p50 ms | p99 ms "
        "| min-max req/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in MODELS:
        off = statistics.median(r["rps"] for r in runs[("off", model)])
        before_runs = runs.get(("before", model))
        before = statistics.median(r["rps"] for r in before_runs) if before_runs else None
        for name in names:
            mine = runs[(name, model)]
            rps = statistics.median(r["rps"] for r in mine)
            vs_before = f"{rps / before:.3f}" if before else "-"
            # each round measured the variants back to back: the ratio within a round
            offs = runs[("off", model)]
            paired = statistics.median(m["rps"] / o["rps"] for m, o in zip(mine, offs, strict=True))
            lines.append(
                f"| {model} | {name} | {rps:.0f} | {rps / off:.3f} | {paired:.3f} | {vs_before} "
                f"| {statistics.median(r['p50_ms'] for r in mine):.2f} "
                f"| {statistics.median(r['p99_ms'] for r in mine):.2f} "
                f"| {min(r['rps'] for r in mine):.0f}-{max(r['rps'] for r in mine):.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--baseline-python", help="python of a checkout before this feature")
    parser.add_argument("--variants", help="comma list (default: all); `off` is always measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serving-obs-bench-") as raw:
        scratch = Path(raw)
        print(drift_table(scratch), flush=True)
        key = Ed25519PrivateKey.generate()
        key_file = scratch / "key.pem"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        model_dirs = {False: scratch / "models", True: scratch / "models-before"}
        train_registry(sys.executable, model_dirs[False], key_file)
        if args.baseline_python:
            train_registry(args.baseline_python, model_dirs[True], key_file)
        with otlp_sink() as otlp:
            chosen = [v for v in variants(otlp, scratch) if args.baseline_python or not v.baseline]
            servers: list[Started] = []
            try:
                for variant in chosen:
                    python = args.baseline_python if variant.baseline else sys.executable
                    assert python is not None
                    server = start(
                        variant, python, model_dirs[variant.baseline],
                        public_key_text(key.public_key()), scratch,
                    )  # fmt: skip
                    servers.append(server)
                for server in servers:
                    wait_ready(server)
                runs = measure(servers, model_dirs, args, scratch)
            finally:
                for server in servers:
                    stop(server)
        print(cost_table(runs, [v.name for v in chosen]))
        out = REPO_ROOT / ".bench" / f"observability-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({f"{v}/{m}": r for (v, m), r in runs.items()}, indent=1))
        print(f"runs: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
