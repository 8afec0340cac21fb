"""Unit tests of the benchmark harness's pure parts (no servers, no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.loadgen import PLACEHOLDER, body_template, render, wrk_threads
from bench.registry import ModelInfo
from bench.run import check_lines, checks, parse_args


def _model(n_features: int = 4) -> ModelInfo:
    rows = [[float(i * 10 + j) + 0.5 for j in range(n_features)] for i in range(3)]
    return ModelInfo("toy", "1", n_features, Path("/nonexistent/model.joblib"), rows)


@pytest.mark.parametrize("rows", [1, 32])
def test_instances_body_is_valid_and_distinct_per_request(rows: int) -> None:
    template, base = body_template(_model(), rows, "instances")
    assert template.count(PLACEHOLDER) == 1
    bodies = [render(template, base, k) for k in range(1000)]
    assert len(set(bodies)) == len(bodies)
    doc = json.loads(bodies[5])
    assert len(doc["instances"]) == rows
    assert all(len(r) == 4 for r in doc["instances"])
    assert doc["instances"][0][0] == pytest.approx(base, abs=1e-8)


def test_v2_body_is_one_fp64_tensor() -> None:
    template, base = body_template(_model(), 32, "v2")
    doc = json.loads(render(template, base, 1))
    (tensor,) = doc["inputs"]
    assert tensor["datatype"] == "FP64"
    assert tensor["shape"] == [32, 4]
    assert len(tensor["data"]) == 32 * 4


def test_wrk_threads_one_per_connection_up_to_cap() -> None:
    assert [wrk_threads(c, 2) for c in (1, 16, 64)] == [1, 2, 2]


def test_unmeasured_targets_are_reported_not_failed() -> None:
    lines, records = check_lines(checks({}, {}, 10_000))
    assert all(r["verdict"] == "NOT MEASURED" for r in records)
    assert any(line.startswith("iris 1row c64 ours/bare") for line in lines)


def test_ratio_line_verdict() -> None:
    def point(target: str, rps: float) -> dict[str, object]:
        return {"target": target, "rps": rps, "p50_ms": 1.0}

    results = {"ours|iris|1|64": point("ours", 300.0), "bare|iris|1|64": point("bare", 100.0)}
    lines, _ = check_lines(checks(results, {}, 0))
    assert "iris 1row c64 ours/bare req/s = 3.00 (target >= 1.5) PASS" in lines


def test_unknown_target_is_rejected() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--targets", "bare,nginx"])


def test_the_in_process_baseline_times_both_collector_settings(
    trained_registry: Path, tmp_path: Path
) -> None:
    template = tmp_path / "body.json"
    template.write_text('{"instances": [[' + PLACEHOLDER + ", 3.5, 1.4, 0.2]]}")
    model = trained_registry / "iris" / "1" / "model.joblib"

    out = subprocess.run(
        [sys.executable, "-m", "bench.inproc", str(model), str(template), "5.1", "3"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])

    assert result["rows"] == 1
    assert len(result["seconds"]) == 3
    assert result["median_s"] > 0 and result["median_tuned_gc_s"] > 0
