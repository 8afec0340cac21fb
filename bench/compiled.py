"""In process, per call: scikit-learn against the compiled form (ONNX Runtime, one thread).

    python -m bench.compiled [--model-dir DIR] [--rounds 5] [--calls 200]

For each demo model with a compiled form in the registry (default: the harness's scratch
registry, built by `serving train --all`): the median seconds of one call at 1, 32 and
10,000 rows, for what a /predict request does (labels) and with probabilities. The two
runtimes alternate round by round (A/B, the machine is noisy); the median of the rounds'
medians is reported. Runs with one BLAS/OpenMP thread, like each benchmarked server worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import BENCH_DIR, FAIR_THREAD_ENV

os.environ.update(FAIR_THREAD_ENV)  # before numpy/scikit-learn load their thread pools

import joblib
import numpy as np
import numpy.typing as npt

from serving.repository.compiled import CompiledModel
from training.data import load_dataset

ROWS = (1, 32, 10_000)
Call = Callable[[], object]


def _median_seconds(call: Call, calls: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _rows(name: str, count: int) -> npt.NDArray[np.float64]:
    data = load_dataset(name)
    pool = np.concatenate([data.x_test, data.x_train])
    return np.ascontiguousarray(np.resize(pool, (count, pool.shape[1])), dtype=np.float64)


def _calls(estimator: Any, compiled: CompiledModel, rows: Any, proba: bool) -> dict[str, Call]:
    def sklearn_call() -> object:
        labels = estimator.predict(rows)
        return (labels, estimator.predict_proba(rows)) if proba else labels

    return {"sklearn": sklearn_call, "onnx": lambda: compiled.run(rows, proba)}


def measure(folder: Path, name: str, rounds: int, calls: int) -> list[dict[str, Any]]:
    estimator = joblib.load(folder / "model.joblib")
    compiled = CompiledModel((folder / "model.onnx").read_bytes(), threads=1)
    results = []
    for count in ROWS:
        rows = _rows(name, count)
        per_call = max(3, calls // max(1, count // 32)) if count > 32 else calls
        for proba in (False, True) if hasattr(estimator, "predict_proba") else (False,):
            runtimes = _calls(estimator, compiled, rows, proba)
            seconds: dict[str, list[float]] = {runtime: [] for runtime in runtimes}
            for _ in range(rounds):  # alternate A/B
                for runtime, call in runtimes.items():
                    seconds[runtime].append(_median_seconds(call, per_call))
            sk, ox = (statistics.median(seconds[r]) for r in ("sklearn", "onnx"))
            results.append(
                {"model": name, "rows": count, "proba": proba, "sklearn_s": sk, "onnx_s": ox}
            )
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | rows | output | scikit-learn | ONNX Runtime | speed-up | ONNX rows/s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        output = "labels + probabilities" if r["proba"] else "labels"
        lines.append(
            f"| {r['model']} | {r['rows']} | {output} | {_shown(r['sklearn_s'])} "
            f"| {_shown(r['onnx_s'])} | {r['sklearn_s'] / r['onnx_s']:.0f}x "
            f"| {r['rows'] / r['onnx_s']:,.0f} |"
        )
    return "\n".join(lines)


def _shown(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=BENCH_DIR / "models-serving-train")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    results = []
    for name in ("iris", "breast_cancer", "diabetes"):
        folders = sorted((args.model_dir / name).glob("*/model.onnx"))
        if not folders:
            print(f"{name}: no compiled form in {args.model_dir / name}; skipped")
            continue
        results += measure(folders[-1].parent, name, args.rounds, args.calls)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
