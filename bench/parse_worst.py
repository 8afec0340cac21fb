"""Worst-case parse time per MB: adversarial /predict and /v2 bodies through the real app.

The app runs in this process through its lifespan (httpx.ASGITransport, as the tests do), on
a freshly trained iris. Each shape is built to 1, 4 and 10 MiB (just under the default
SERVING_MAX_BODY_BYTES) and posted `--repeats` times; the table gives the median answer time,
seconds per MiB (flat in size when parsing is linear), the status, and the slowest
/health/live answer seen while the body was being handled (a stalled event loop shows there).
The garbage collector's young-generation threshold is the one `serving serve` gives each
worker (SERVING_GC_THRESHOLD); `--gc-threshold 700` measures Python's default instead.

    python -m bench.parse_worst                      # ~2 min on the fixed code
    python -m bench.parse_worst --sizes 1,4 --give-up 20

A shape whose median passes `--give-up` seconds is not run at the larger sizes (quadratic
code would take minutes there); the table says so.
"""

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import orjson
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.api.app import create_app
from serving.core.settings import Settings
from serving.repository.signing import public_key_text
from training.train import train

MIB = 1024 * 1024
PREDICT = "/models/iris/predict"
INFER = "/v2/models/iris/infer"
FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
Builder = Callable[[int], bytes]


def _fill(size: int, head: bytes, item: bytes, tail: bytes) -> bytes:
    """`head item,item,...,item tail`, as many items as fit in `size` bytes."""
    count = max(1, (size - len(head) - len(tail)) // (len(item) + 1))
    return head + b",".join([item] * count) + tail


def _numbered(size: int, head: bytes, template: str, tail: bytes) -> bytes:
    """Like `_fill`, with `{i}` in the item replaced by its position (distinct names)."""
    parts: list[bytes] = []
    used = len(head) + len(tail)
    for i in range(size):
        item = template.replace("{i}", str(i)).encode()
        if used + len(item) + 1 > size:
            break
        parts.append(item)
        used += len(item) + 1
    return head + b",".join(parts) + tail


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


# --- /predict ----------------------------------------------------------------------------
def predict_unknown_keys(size: int) -> bytes:
    """Rows by name, each with 1000 keys the model does not have."""
    row = orjson.dumps({f"unknown_{k}": 1.0 for k in range(1000)})
    return _fill(size, b'{"instances":[', row, b"]}")


def predict_repeated_keys(size: int) -> bytes:
    """Valid rows by name, each key repeated 250 times (JSON keeps the last)."""
    pairs = [f'"{name}":1.5' for _ in range(250) for name in FEATURES]
    return _fill(size, b'{"instances":[', ("{" + ",".join(pairs) + "}").encode(), b"]}")


def predict_deep_nesting(size: int) -> bytes:
    """Rows nested 500 deep, side by side."""
    return _fill(size, b'{"instances":[', _deep(500), b"]}")


def predict_long_string(size: int) -> bytes:
    """One row whose last cell is a string of the whole body's length."""
    return b'{"instances":[[1.0,null,2.0,"' + b"x" * (size - 40) + b'"]]}'


def predict_wide_rows(size: int) -> bytes:
    """10,000 rows far wider than the model."""
    width = max(1, size // (10_000 * 4))
    row = b"[" + b",".join([b"1.5"] * width) + b"]"
    return _fill(size, b'{"instances":[', row, b"]}")


# --- /v2 ---------------------------------------------------------------------------------
_V2_INPUT = '{"name":"in{i}","datatype":"FP64","shape":[1],"data":[1.5]}'
_V2_ONE_INPUT = b'{"inputs":[{"name":"input","datatype":"FP64","shape":[1,4],"data":[1,2,3,4]}]'


def v2_many_inputs(size: int) -> bytes:
    """Tens of thousands of one-element inputs, each with its own name."""
    return _numbered(size, b'{"inputs":[', _V2_INPUT, b"]}")


def v2_repeated_names(size: int) -> bytes:
    """Tens of thousands of one-element inputs, all with the same name."""
    return _fill(size, b'{"inputs":[', _V2_INPUT.replace("{i}", "").encode(), b"]}")


def v2_many_outputs(size: int) -> bytes:
    """One good input and tens of thousands of requested outputs."""
    return _numbered(size, _V2_ONE_INPUT + b',"outputs":[', '{"name":"out{i}"}', b"]}")


def v2_many_parameters(size: int) -> bytes:
    """One good input and a parameters object with a key per few bytes."""
    return _numbered(size, _V2_ONE_INPUT + b',"parameters":{', '"p{i}":1', b"}}")


def v2_deep_nesting(size: int) -> bytes:
    """One input whose data is nested 500 deep, many times over."""
    head = b'{"inputs":[{"name":"input","datatype":"FP64","shape":[1,4],"data":['
    return _fill(size, head, _deep(500), b"]}]}")


def v2_long_name(size: int) -> bytes:
    """One input whose name is as long as the body."""
    name = b"n" * (size - 80)
    return b'{"inputs":[{"name":"' + name + b'","datatype":"FP64","shape":[1,4],"data":[1,2,3,4]}]}'


def v2_long_shape(size: int) -> bytes:
    """One input whose shape lists a dimension every two bytes."""
    head = b'{"inputs":[{"name":"input","datatype":"FP64","data":[1],"shape":['
    return _fill(size, head, b"1", b"]}]}")


SHAPES: dict[str, tuple[str, Builder]] = {
    "predict unknown keys": (PREDICT, predict_unknown_keys),
    "predict repeated keys": (PREDICT, predict_repeated_keys),
    "predict deep nesting": (PREDICT, predict_deep_nesting),
    "predict long string": (PREDICT, predict_long_string),
    "predict wide rows": (PREDICT, predict_wide_rows),
    "v2 many inputs": (INFER, v2_many_inputs),
    "v2 repeated names": (INFER, v2_repeated_names),
    "v2 many outputs": (INFER, v2_many_outputs),
    "v2 many parameters": (INFER, v2_many_parameters),
    "v2 deep nesting": (INFER, v2_deep_nesting),
    "v2 long name": (INFER, v2_long_name),
    "v2 long shape": (INFER, v2_long_shape),
}


@dataclass
class Result:
    shape: str
    mib: int
    status: int | None
    seconds: list[float]
    worst_probe_s: float
    answer_bytes: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


async def _timed_post(client: httpx.AsyncClient, path: str, body: bytes) -> tuple[float, int, int]:
    started = time.perf_counter()
    answer = await client.post(path, content=body, headers={"content-type": "application/json"})
    return time.perf_counter() - started, answer.status_code, len(answer.content)


async def _probe(client: httpx.AsyncClient, worst: list[float], done: anyio.Event) -> None:
    while not done.is_set():
        started = time.perf_counter()
        await client.get("/health/live")
        worst.append(time.perf_counter() - started)
        await anyio.sleep(0.005)


async def measure(
    client: httpx.AsyncClient, shape: str, mib: int, repeats: int, path: str, body: bytes
) -> Result:
    seconds, probes, status, answer_bytes = [], [0.0], None, 0
    for _ in range(repeats):
        done = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_probe, client, probes, done)
            elapsed, status, answer_bytes = await _timed_post(client, path, body)
            done.set()
        seconds.append(elapsed)
    return Result(shape, mib, status, seconds, max(probes), answer_bytes)


async def run(sizes: list[int], repeats: int, give_up: float, only: str | None) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="parse-worst-") as scratch:
        root, key = Path(scratch) / "models", Ed25519PrivateKey.generate()
        train("iris", root, key)
        settings = Settings(
            model_dir=root,
            trusted_keys=[public_key_text(key.public_key())],
            signing_key_file=Path(scratch) / "no-key.pem",
            log_level="warning",
        )
        app = create_app(settings)
        results: list[Result] = []
        async with LifespanManager(app, startup_timeout=60) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=None
            ) as client:
                for shape, (path, build) in SHAPES.items():
                    if only and only not in shape:
                        continue
                    for mib in sizes:
                        body = build(mib * MIB - 1024)
                        result = await measure(client, shape, mib, repeats, path, body)
                        results.append(result)
                        _print_row(result)
                        if result.median_s > give_up:
                            print(f"| {shape} | larger sizes not run (> {give_up} s) |||||")
                            break
        return results


def _print_row(result: Result) -> None:
    per_mib = result.median_s / result.mib
    print(
        f"| {result.shape} | {result.mib} | {result.status} | {result.median_s:.3f} | "
        f"{per_mib:.3f} | {result.worst_probe_s * 1000:.0f} | {result.answer_bytes} |",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4,10", help="body sizes in MiB (comma list)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--give-up", type=float, default=30.0, help="seconds; see module doc")
    parser.add_argument("--only", help="run the shapes whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--gc-threshold", type=int, default=Settings().gc_threshold)
    args = parser.parse_args(argv)
    gc.set_threshold(args.gc_threshold)
    sizes = [int(size) for size in args.sizes.split(",")]
    print("| shape | MiB | status | median s | s per MiB | worst probe ms | answer bytes |")
    print("|---|---|---|---|---|---|---|", flush=True)
    results = anyio.run(run, sizes, args.repeats, args.give_up, args.only)
    if args.json:
        rows = [{**vars(r), "median_s": r.median_s} for r in results]
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
