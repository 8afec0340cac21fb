"""Request bodies and the wrk driver."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.registry import ModelInfo
from bench.servers import Protocol

# Each wrk run starts its body counter here: one million requests apart, so no run resends
# a body an earlier run of this process sent (a repeat would otherwise be a cache hit).
_RUN_OFFSETS = itertools.count(0, 1_000_000)
LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "perturbed_post.lua"
PLACEHOLDER = "@V@"
_RESULT_RE = re.compile(r"^BENCH_RESULT (\{.*\})\s*$", re.MULTILINE)


def body_rows(model: ModelInfo, rows: int) -> list[list[float]]:
    """``rows`` real dataset rows (cycled when the dataset is smaller)."""
    return [model.rows[i % len(model.rows)] for i in range(rows)]


def body_template(model: ModelInfo, rows: int, protocol: Protocol) -> tuple[str, float]:
    """The body with the first feature replaced by the placeholder, and that feature's value.

    ``instances``: ``{"instances": [[...], ...]}`` (ours and bare).
    ``v2``: one FP64 tensor of shape [rows, n_features], data flattened row-major (the V2
    protocol's canonical tensor encoding).
    """
    data = body_rows(model, rows)
    base = data[0][0]
    flat = [repr(v) for row in data for v in row]
    flat[0] = PLACEHOLDER
    if protocol == "v2":
        shape = f"[{rows},{model.n_features}]"
        body = (
            '{"inputs":[{"name":"input-0","shape":'
            + shape
            + ',"datatype":"FP64","data":['
            + ",".join(flat)
            + "]}]}"
        )
    else:
        nf = model.n_features
        row_txt = ["[" + ",".join(flat[i * nf : (i + 1) * nf]) + "]" for i in range(rows)]
        body = '{"instances":[' + ",".join(row_txt) + "]}"
    return body, base


def render(template: str, base: float, k: int) -> bytes:
    """The body the Lua script sends as its k-th request (same formula, same formatting)."""
    return template.replace(PLACEHOLDER, "%.17g" % (base + k * 1e-12)).encode()


@dataclass(frozen=True)
class WrkRun:
    requests: int
    duration_us: int
    bytes: int
    p50_us: int
    p90_us: int
    p99_us: int
    mean_us: float
    max_us: int
    err_connect: int
    err_read: int
    err_write: int
    err_status: int
    err_timeout: int

    @property
    def errors(self) -> int:
        return (
            self.err_connect + self.err_read + self.err_write + self.err_status + self.err_timeout
        )

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "rps": self.rps, "errors": self.errors}


def wrk_threads(connections: int, max_threads: int) -> int:
    """One wrk thread per connection, at most ``max_threads`` (2 by default: the core count)."""
    return max(1, min(connections, max_threads))


def run_wrk(
    url_base: str,
    path: str,
    template_file: Path,
    base: float,
    connections: int,
    duration_s: float,
    max_threads: int,
    timeout_s: float,
) -> WrkRun:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    threads = wrk_threads(connections, max_threads)
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(LUA_SCRIPT),
        url_base + path,
        "--",
        path,
        str(template_file),
        repr(base),
        str(threads),
        str(next(_RUN_OFFSETS)),
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + timeout_s + 60, check=False
    )
    match = _RESULT_RE.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(
            f"wrk failed (rc={proc.returncode}): {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"
        )
    fields = json.loads(match.group(1))
    return WrkRun(**{k: fields[k] for k in WrkRun.__dataclass_fields__})
