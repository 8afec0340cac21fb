"""Worker CPU per request of the app in one process, for the observability variants.

    python -m bench.obs_inproc --rounds 5 [--baseline-python PATH]

wrk at 64 connections on a shared 2-core machine measures the neighbours as much as the
server; CPU time per request in one process does not. Each measurement is a fresh
subprocess (`--one VARIANT MODEL`) that runs the real app through its lifespan
(httpx.ASGITransport, no sockets), sends `--requests` 1-row bodies that all differ (cache
misses) one after another, and prints the process CPU seconds per request after a warm-up.
The driver alternates variants round by round; `before` runs the same measuring code under
the virtualenv of a checkout from before this feature. Environment variables configure each
variant exactly as an operator would.
"""

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = ("iris", "breast_cancer")


def variant_env(name: str, scratch: Path, otlp: str) -> dict[str, str]:
    off = {"SERVING_DRIFT_WINDOW": "0"}
    trace = {**off, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp}
    payload = {**off, "SERVING_PAYLOAD_LOG": f"file:{scratch}/payloads-{name}.jsonl"}
    return {
        "before": {},
        "off": off,
        "drift": {},
        "trace-100": {**trace, "OTEL_TRACES_SAMPLER": "always_on"},
        "trace-1": {
            **trace,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
        },
        "payload-100": {**payload, "SERVING_PAYLOAD_SAMPLE": "1"},
        "payload-1": {**payload, "SERVING_PAYLOAD_SAMPLE": "0.01"},
    }[name]


async def _measure(model: str, requests: int, warmup: int) -> float:
    import httpx
    from asgi_lifespan import LifespanManager

    from serving.api.app import create_app
    from training.data import load_dataset

    row = load_dataset(model).x_test[0].tolist()
    app = create_app()
    async with LifespanManager(app, startup_timeout=120) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            path = f"/models/{model}/predict"
            for number in range(warmup):
                body = {"instances": [[row[0] + number * 1e-9, *row[1:]]]}
                (await client.post(path, json=body)).raise_for_status()
            gc.collect()
            gc.freeze()  # as gunicorn_conf.when_ready does before the workers fork
            started = time.process_time()
            for number in range(warmup, warmup + requests):
                body = {"instances": [[row[0] + number * 1e-9, *row[1:]]]}
                (await client.post(path, json=body)).raise_for_status()
            return (time.process_time() - started) / requests


def run_one(python: str, cwd: Path, env: dict[str, str], model: str, requests: int) -> float:
    command = [python, "-m", "bench.obs_inproc", "--one", model, "--requests", str(requests)]
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def _environment(checkout: Path, key_file: Path, scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "OTEL_"))}
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    env.update({"SERVING_LOG_LEVEL": "warning", "PYTHONPATH": str(checkout)})
    env["SERVING_SIGNING_KEY_FILE"] = str(key_file)  # its public half is trusted
    return env


def _train(python: str, checkout: Path, model_dir: Path, key_file: Path) -> None:
    env = _environment(checkout, key_file, model_dir.parent)
    env["SERVING_MODEL_DIR"] = str(model_dir)
    command = [python, "-m", "serving.cli", "train", *MODELS]
    subprocess.run(command, env=env, cwd=checkout, check=True, capture_output=True, timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline-python", help="python of a checkout before this feature")
    parser.add_argument("--variants", help="comma list (default: all); `off` always runs")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(asyncio.run(_measure(args.one, args.requests, warmup=200)))
        return
    from bench.observability import otlp_sink

    names = ["off", "drift", "trace-100", "trace-1", "payload-100", "payload-1"]
    if args.baseline_python:
        names.insert(0, "before")
    if args.variants:
        names = [n for n in names if n in {*args.variants.split(","), "off"}]
    models = args.models.split(",")
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as raw, otlp_sink() as otlp:
        scratch = Path(raw)
        args.key_file = scratch / "key.pem"
        _train(sys.executable, REPO_ROOT, scratch / "models", args.key_file)
        if args.baseline_python:
            baseline_checkout = Path(args.baseline_python).parents[2]
            _train(
                args.baseline_python, baseline_checkout, scratch / "models-before", args.key_file
            )
        for round_number in range(args.rounds):
            order = names[round_number % len(names) :] + names[: round_number % len(names)]
            for model in models:
                for name in order:
                    baseline = name == "before"
                    checkout = Path(args.baseline_python).parents[2] if baseline else REPO_ROOT
                    env = _environment(checkout, args.key_file, scratch)
                    env["SERVING_MODEL_DIR"] = str(
                        scratch / ("models-before" if baseline else "models")
                    )
                    env.update(variant_env(name, scratch, otlp))
                    python = args.baseline_python if baseline else sys.executable
                    seconds = run_one(python, checkout, env, model, args.requests)
                    results.setdefault((name, model), []).append(seconds)
                    line = f"round {round_number + 1} {model} {name}: {seconds * 1e6:.0f} us"
                    print(line, file=sys.stderr, flush=True)
    print("| model | variant | median CPU us/request | vs off | vs before | min-max us |")
    print("|---|---|---:|---:|---:|---:|")
    for model in models:
        off = statistics.median(results[("off", model)])
        before = statistics.median(results[("before", model)]) if args.baseline_python else None
        for name in names:
            mine = results[(name, model)]
            median = statistics.median(mine)
            vs_before = f"{median / before:.3f}" if before else "-"
            print(
                f"| {model} | {name} | {median * 1e6:.0f} | {median / off:.3f} | {vs_before} "
                f"| {min(mine) * 1e6:.0f}-{max(mine) * 1e6:.0f} |"
            )


if __name__ == "__main__":
    main()
