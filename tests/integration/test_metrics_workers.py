"""/metrics under real gunicorn with several workers: one scrape counts every worker's work."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.metrics_text import Samples, scrape, total, value
from tests.processes import ServerProcess, running_server, server_environment
from tests.waiting import wait_until
from training.data import load_dataset

pytestmark = pytest.mark.slow
WORKERS = 2
PREDICT = "/models/{name}/predict"


def _server_env(registry_dir: Path, key: str, tmp_path: Path) -> dict[str, str]:
    return {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": key,
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "no-key.pem"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }


def _leave_stale_counts(directory: Path) -> None:
    """What a crashed earlier run leaves behind: real metric files with 1000 predictions."""
    directory.mkdir()
    code = (
        "from prometheus_client import Counter;"
        "Counter('serving_predictions', '', ['model', 'version', 'cache'])"
        ".labels('iris', '1', 'miss').inc(1000)"
    )
    env = server_environment({"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _wait_for_all_workers(server: ServerProcess, loaded_in: int) -> Samples:
    """/health/ready answers from one worker; the loaded-versions gauge sums over all."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        samples = scrape(server.url)
        if value(samples, "serving_model_version_loaded", model="iris", version="1") == loaded_in:
            return samples
        time.sleep(0.1)
    raise TimeoutError(f"not every worker loaded iris:\n{server.log()}")


def _worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text()
    return [int(pid) for pid in children.split()]


def _replaced(master: int, killed: int) -> bool:
    workers = _worker_pids(master)
    return killed not in workers and len(workers) == 2


def _predict(url: str, row: list[float]) -> str:
    # A new connection per request, so the kernel spreads them over the workers.
    answer = httpx.post(f"{url}/models/iris/predict", json={"instances": [row]}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.headers["X-Cache"]


def test_one_scrape_counts_exactly_the_requests_every_worker_answered(
    registry_dir: Path, trusted_key_text: str, tmp_path: Path
) -> None:
    env = _server_env(registry_dir, trusted_key_text, tmp_path)
    _leave_stale_counts(tmp_path / "prometheus")
    rows = load_dataset("iris").x_test[:20].tolist()
    sent = rows * 6  # 120 requests: each row repeats, so every worker sees hits and misses

    with running_server(env, tmp_path / "server.log", workers=WORKERS) as server:
        _wait_for_all_workers(server, WORKERS)
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda row: _predict(server.url, row), sent))
        scrapes = [scrape(server.url) for _ in range(5)]  # answered by whichever worker

    for samples in scrapes:
        assert total(samples, "serving_predictions_total") == len(sent)
        assert total(samples, "serving_predictions_total", cache="hit") == answers.count("HIT")
        assert total(samples, "http_requests_total", handler=PREDICT) == len(sent)
        assert total(samples, "serving_prediction_rows_total", model="iris") == len(sent)


def test_a_replaced_worker_keeps_its_counts_and_drops_out_of_live_gauges(
    registry_dir: Path, trusted_key_text: str, tmp_path: Path
) -> None:
    env = _server_env(registry_dir, trusted_key_text, tmp_path)
    rows = load_dataset("iris").x_test[:10].tolist()

    with running_server(env, tmp_path / "server.log", workers=2) as server:
        _wait_for_all_workers(server, 2)
        for row in rows:
            _predict(server.url, row)
        workers = _worker_pids(server.process.pid)
        os.kill(workers[0], signal.SIGKILL)
        wait_until(  # gunicorn reaps the worker (child_exit) and boots a new one
            lambda: _replaced(server.process.pid, workers[0]), "a replacement worker"
        )
        after = _wait_for_all_workers(server, 2)

    assert total(after, "serving_predictions_total") == len(rows)
    assert value(after, "serving_model_version_loaded", model="iris", version="1") == 2
