"""A/B timing of the app in one process (ASGI, no sockets): this checkout against another tree.

    git archive REV serving | tar -x -C /tmp/old       # the other version's serving/ package
    python -m bench.asgi_ab /tmp/old [--rounds 5] [--requests 2000] [--big 40]

Both trees serve the same freshly trained registry with the cache off. Each round runs each
tree in a fresh subprocess, alternating which goes first, and times iris requests one after
another through httpx's ASGI transport: `--requests` 1-row bodies, then `--big` 10,000-row
bodies, each body different. It prints every round's medians, then the median over the rounds
and the ratio of this checkout to the other tree. For changes to a request's own code
(parsing, routes, checks): what HTTP adds is the same for both and is left out.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
_IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def main() -> None:
    args = _arguments()
    if args.child:
        print(json.dumps(_child(args)))
        return
    with tempfile.TemporaryDirectory(prefix="serving-ab-") as scratch:
        registry, key_text = _trained_registry(Path(scratch))
        trees = {"this checkout": REPO_ROOT, "other tree": Path(args.other).resolve()}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for round_number in range(args.rounds):
            order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
            for name in order:
                measured = _run_child(trees[name], registry, key_text, args)
                results[name].append(measured)
                print(f"round {round_number + 1} {name}: {measured}", flush=True)
    _report(results)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", nargs="?", help="a folder holding the other serving/ package")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--requests", type=int, default=2000, help="1-row requests per round")
    parser.add_argument("--big", type=int, default=40, help="10,000-row requests per round")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--registry", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child and not args.other:
        parser.error("name the other tree")
    return args


def _trained_registry(scratch: Path) -> tuple[Path, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from serving.repository.signing import public_key_text
    from training.train import train

    key = Ed25519PrivateKey.generate()
    train("iris", scratch / "models", key)
    return scratch / "models", public_key_text(key.public_key())


def _run_child(
    tree: Path, registry: Path, key_text: str, args: argparse.Namespace
) -> dict[str, float]:
    # Run as a file, not with -m: then the tree on PYTHONPATH, not this checkout, is imported.
    command = [sys.executable, str(Path(__file__).resolve()), "--child"]
    command += ["--registry", str(registry), "--key", key_text]
    command += ["--requests", str(args.requests), "--big", str(args.big)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    measured: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return measured


def _child(args: argparse.Namespace) -> dict[str, float]:
    import anyio

    result: dict[str, float] = anyio.run(_measure, Path(args.registry), args.key, args)
    return result


async def _measure(registry: Path, key_text: str, args: argparse.Namespace) -> dict[str, float]:
    import httpx
    import orjson
    from asgi_lifespan import LifespanManager

    from serving.api.app import create_app
    from serving.core.settings import Settings

    settings = Settings(
        model_dir=registry,
        trusted_keys=[key_text],
        signing_key_file=registry / "no-key.pem",
        cache_max_entries=0,
        log_level="warning",
    )
    app = create_app(settings)
    headers = {"Content-Type": "application/json"}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ab") as client:

            async def timed(rows: list[list[float]]) -> float:
                body = orjson.dumps({"instances": rows})
                started = time.perf_counter()
                answer = await client.post("/models/iris/predict", content=body, headers=headers)
                elapsed = time.perf_counter() - started
                assert answer.status_code == 200, answer.text
                return elapsed

            small = [await timed([_row(i)]) for i in range(args.requests)]
            big = [
                await timed([_row(i * 10_000 + j) for j in range(10_000)]) for i in range(args.big)
            ]
    return {
        "1 row p50 us": statistics.median(small) * 1e6,
        "10,000 rows p50 ms": statistics.median(big) * 1e3,
    }


def _row(number: int) -> list[float]:
    return [_IRIS_ROW[0] + number * 1e-9, *_IRIS_ROW[1:]]


def _report(results: dict[str, list[dict[str, Any]]]) -> None:
    ours, other = results["this checkout"], results["other tree"]
    print("\nmedian over the rounds (this checkout / other tree):")
    for metric in ours[0]:
        mine = statistics.median(r[metric] for r in ours)
        theirs = statistics.median(r[metric] for r in other)
        print(f"  {metric}: {mine:.1f} vs {theirs:.1f}, ratio {mine / theirs:.3f}")


if __name__ == "__main__":
    main()
