"""Two commits side by side on one request path, alternating, in one run.

    python -m bench.ab_refs BASE_REF [--rounds 3] [--duration 5] [--model iris]

Exports BASE_REF (`git archive`) to a temporary folder and, for each round, serves the same
freshly trained registry from that copy and from this checkout in turn (`serving serve`,
2 workers, the order flipped every round), driving 1-row bodies at 64 connections with wrk
(every body different: cache misses). Prints the median req/s, p99 and worker CPU per
answer of each side, and their ratios.
"""

import argparse
import io
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.loadgen import WrkRun, body_template, run_wrk
from bench.registry import load_model_info
from bench.traffic import _worker_cpu_seconds
from serving.repository.signing import public_key_text
from tests.processes import REPO_ROOT, running_server
from training.train import train


def _export(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_ref")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--model", default="iris")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serving-ab-") as scratch_dir:
        scratch = Path(scratch_dir)
        key = Ed25519PrivateKey.generate()
        train(args.model, scratch / "models", key)
        checkouts = {"base": _export(args.base_ref, scratch / "base"), "this": REPO_ROOT}
        template, base = body_template(
            load_model_info(scratch / "models", args.model), 1, "instances"
        )
        body = scratch / "body.txt"
        body.write_text(template)
        runs: dict[str, list[WrkRun]] = {"base": [], "this": []}
        cpu_ms: dict[str, list[float]] = {"base": [], "this": []}
        for round_number in range(args.rounds):
            order = ("base", "this") if round_number % 2 == 0 else ("this", "base")
            for side in order:
                env = {
                    "PYTHONPATH": str(checkouts[side]),
                    "SERVING_MODEL_DIR": str(scratch / "models"),
                    "SERVING_TRUSTED_KEYS": public_key_text(key.public_key()),
                    "SERVING_SIGNING_KEY_FILE": str(scratch / "no-key.pem"),
                    "SERVING_LOG_LEVEL": "warning",
                }
                with running_server(env, scratch / f"{side}.log") as server:
                    path = f"/models/{args.model}/predict"
                    run_wrk(server.url, path, body, base, 64, 2, 2, 10)  # warm-up
                    before = _worker_cpu_seconds(server)
                    run = run_wrk(server.url, path, body, base, 64, args.duration, 2, 10)
                    cpu = _worker_cpu_seconds(server) - before
                runs[side].append(run)
                cpu_ms[side].append(cpu / max(run.requests, 1) * 1000)
                print(f"round {round_number + 1} {side}: {run.rps:.0f} req/s, p99 {run.p99_us} us")
        _report(args.base_ref, runs, cpu_ms)


def _report(ref: str, runs: dict[str, list[WrkRun]], cpu_ms: dict[str, list[float]]) -> None:
    def median(side: str, field: str) -> float:
        return statistics.median(float(getattr(run, field)) for run in runs[side])

    measures = {
        "req/s": {side: median(side, "rps") for side in runs},
        "p99 ms": {side: median(side, "p99_us") / 1000 for side in runs},
        "worker CPU per answer, ms": {side: statistics.median(cpu_ms[side]) for side in runs},
    }
    print(f"base {ref} vs this checkout, medians of {len(runs['this'])} alternating runs:")
    for label, value in measures.items():
        ratio = value["this"] / value["base"]
        print(f"  {label}: {value['base']:.3f} vs {value['this']:.3f} (this/base {ratio:.3f})")


if __name__ == "__main__":
    main()
