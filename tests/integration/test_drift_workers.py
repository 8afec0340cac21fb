"""Drift under real gunicorn with two workers, read back with `serving drift`; push --data."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.cli import main
from serving.repository.profile import profile_of
from serving.repository.signing import public_key_text
from tests.metrics_text import Samples, scrape, value
from tests.processes import REPO_ROOT, running_server, server_environment
from training.data import load_dataset

pytestmark = pytest.mark.slow
_ROWS, _PER_REQUEST = 3000, 50


def _shifted_rows() -> np.ndarray:
    train = load_dataset("iris").x_train
    rows = train[np.random.default_rng(3).integers(0, len(train), _ROWS)].copy()
    rows[:, 2] += 3 * train[:, 2].std()
    return rows


def _post(url: str, rows: list[list[float]]) -> int:
    with httpx.Client(base_url=url, timeout=30) as client:  # a new connection each time
        return client.post("/models/iris/predict", json={"instances": rows}).status_code


def _drift_of(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["feature"]: sample
        for (name, labels), sample in samples.items()
        if name == "serving_feature_drift" and dict(labels)["model"] == "iris"
    }


def test_two_workers_share_one_window_and_the_cli_reads_it_worst_first(
    registry_dir: Path, trusted_key_text: str, tmp_path: Path
) -> None:
    env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "no-key.pem"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    chunks = [chunk.tolist() for chunk in np.array_split(_shifted_rows(), _ROWS // _PER_REQUEST)]
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda rows: _post(server.url, rows), chunks))
        assert statuses == [200] * len(chunks)
        deadline = time.monotonic() + 15
        while (
            value(scrape(server.url), "serving_feature_drift_rows", model="iris", version="1")
            != _ROWS
        ):
            assert time.monotonic() < deadline, "the workers' counts never added up"
            time.sleep(0.1)
        scrapes = [scrape(server.url) for _ in range(6)]  # each on a new connection: any worker
        report = subprocess.run(
            [sys.executable, "-m", "serving.cli", "drift", "iris", "--url", server.url],
            env=server_environment({}),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    assert {value(s, "serving_feature_drift_rows", model="iris", version="1") for s in scrapes} == {
        _ROWS
    }
    drifts = [_drift_of(s) for s in scrapes]
    assert all(d == drifts[0] for d in drifts)
    assert drifts[0]["petal_length_cm"] > 1.0
    lines = report.splitlines()
    assert lines[0] == f"iris v1: {_ROWS} rows in the window"
    assert lines[1].split()[0] == "petal_length_cm"
    assert len(lines) == 5


def _push(tmp_path: Path, registry_dir: Path, *extra: str) -> int:
    model_file = registry_dir / "iris" / "1" / "model.joblib"
    return main(["push", str(model_file), "--name", "iris", *extra])


@pytest.fixture
def local_registry(registry_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    key_file = tmp_path / "key.pem"
    monkeypatch.setenv("SERVING_MODEL_DIR", str(registry_dir))
    monkeypatch.setenv("SERVING_SIGNING_KEY_FILE", str(key_file))
    monkeypatch.setenv("SERVING_TRUSTED_KEYS", public_key_text(_key(key_file).public_key()))
    return registry_dir


def _key(path: Path) -> Ed25519PrivateKey:
    from serving.repository.signing import load_or_create_private_key

    return load_or_create_private_key(path)


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_push_with_data_stores_the_profile_of_those_rows(
    local_registry: Path, tmp_path: Path, suffix: str
) -> None:
    rows = load_dataset("iris").x_train
    data = tmp_path / f"train{suffix}"
    if suffix == ".npy":
        np.save(data, rows)
    else:
        header = "sepal_length,sepal_width,petal_length,petal_width\n"
        data.write_text(header + "\n".join(",".join(repr(float(v)) for v in row) for row in rows))

    assert _push(tmp_path, local_registry, "--data", str(data)) == 0

    manifest = orjson.loads((local_registry / "iris" / "2" / "manifest.json").read_bytes())
    assert manifest["profile"] == [p.model_dump() for p in profile_of(rows)]


def test_push_with_rows_of_the_wrong_width_publishes_nothing(
    local_registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "three-columns.csv"
    data.write_text("1,2,3\n4,5,6\n")

    assert _push(tmp_path, local_registry, "--data", str(data)) == 1

    assert "4 columns" in capsys.readouterr().err
    assert not (local_registry / "iris" / "2").exists()


def test_push_without_data_publishes_a_version_without_a_profile(
    local_registry: Path, tmp_path: Path
) -> None:
    assert _push(tmp_path, local_registry) == 0

    manifest = orjson.loads((local_registry / "iris" / "2" / "manifest.json").read_bytes())
    assert "profile" not in manifest
