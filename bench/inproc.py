"""In-process baseline: the same work as one HTTP request, without HTTP.

orjson.loads(body) -> numpy.asarray(instances, float64) -> model.predict -> orjson.dumps.
Run as a subprocess by bench/run.py (so the thread caps of the server processes apply):

    python -m bench.inproc MODEL_JOBLIB TEMPLATE_FILE BASE REPEATS

Prints one JSON line: {"rows": .., "seconds": [..], "median_s": .., "median_tuned_gc_s": ..}.
The target uses `median_s` (Python's default collector, as a plain script runs). The same loop
again with the young-generation threshold the server's workers use gives `median_tuned_gc_s`,
a reference that shows how much of our ratio is that setting.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson

from bench.loadgen import render
from serving.core.settings import Settings


def measure(model_path: Path, template: str, base: float, repeats: int) -> dict[str, object]:
    model = joblib.load(model_path)
    plain = _timed(model, template, base, repeats, first=0)
    default_threshold = gc.get_threshold()
    gc.set_threshold(Settings().gc_threshold)
    try:
        tuned = _timed(model, template, base, repeats, first=repeats + 1)
    finally:
        gc.set_threshold(*default_threshold)
    return {
        "rows": plain["rows"],
        "seconds": plain["seconds"],
        "median_s": plain["median_s"],
        "median_tuned_gc_s": tuned["median_s"],
    }


def _timed(model: Any, template: str, base: float, repeats: int, first: int) -> dict[str, Any]:
    bodies = [render(template, base, first + k) for k in range(repeats + 1)]  # each a new body
    seconds: list[float] = []
    rows = 0
    for i, body in enumerate(bodies):
        t0 = time.perf_counter()
        x = np.asarray(orjson.loads(body)["instances"], dtype=np.float64)
        out = orjson.dumps({"predictions": model.predict(x)}, option=orjson.OPT_SERIALIZE_NUMPY)
        dt = time.perf_counter() - t0
        rows = int(x.shape[0])
        if i > 0 and out:  # the first call is a warm-up
            seconds.append(dt)
    return {"rows": rows, "seconds": seconds, "median_s": statistics.median(seconds)}


def main(argv: list[str]) -> int:
    model_path, template_file, base, repeats = argv
    result = measure(Path(model_path), Path(template_file).read_text(), float(base), int(repeats))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
