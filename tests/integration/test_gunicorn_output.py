"""A real `serving serve` (gunicorn, two uvicorn workers, multiprocess metrics): every line it
writes is JSON, and the merged /metrics shows zero-valued series from start-up and drops a
removed alias.
"""

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.metrics_text import Samples, scrape, value
from tests.processes import ServerProcess, running_server
from tests.uploads import ADMIN, ADMIN_TOKEN

pytestmark = pytest.mark.slow
WORKERS = 2


def _env(registry_dir: Path, key: str, tmp_path: Path) -> dict[str, str]:
    return {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": key,
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "no-key.pem"),
        "SERVING_ADMIN_TOKENS": ADMIN_TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }


def _scrape_until(url: str, holds: Callable[[Samples], bool], what: str) -> Samples:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        samples = scrape(url)
        if holds(samples):
            return samples
        time.sleep(0.1)
    raise TimeoutError(what)


def _alias(samples: Samples) -> float | None:
    return value(samples, "serving_model_alias_version", model="iris", alias="canary")


def _exercise(server: ServerProcess) -> tuple[Samples, list[Samples], Samples]:
    """Start-up series, scrapes after the alias removal, and the errors counted."""
    started = _scrape_until(
        server.url,
        lambda s: value(s, "serving_model_version_loaded", model="iris", version="1") == WORKERS,
        "not every worker loaded iris",
    )
    set_alias = httpx.put(
        f"{server.url}/models/iris/aliases/canary", json={"version": 1}, headers=ADMIN
    )
    assert set_alias.status_code == 200, set_alias.text
    _scrape_until(server.url, lambda s: _alias(s) == 1, "canary never shown")
    removed = httpx.delete(f"{server.url}/models/iris/aliases/canary", headers=ADMIN)
    assert removed.status_code == 204, removed.text
    _scrape_until(server.url, lambda s: _alias(s) is None, "canary still shown")
    after_removal = [scrape(server.url) for _ in range(6)]  # whichever worker answers
    for _ in range(3):  # new connections: the kernel may hand them to either worker
        httpx.post(f"{server.url}/models/iris/predict", json={"instances": [[1, 2]]})
    return started, after_removal, scrape(server.url)


def test_every_line_is_json_and_merged_metrics_start_at_zero_and_drop_removed_aliases(
    registry_dir: Path, trusted_key_text: str, tmp_path: Path
) -> None:
    env = _env(registry_dir, trusted_key_text, tmp_path)
    with running_server(env, tmp_path / "server.log", workers=WORKERS) as server:
        started, after_removal, errors = _exercise(server)
    lines = server.complete_log_lines()  # stdout and stderr, after a graceful stop

    assert value(started, "serving_model_load_failures_total", model="iris") == 0
    assert value(started, "serving_cache_errors_total", operation="set", error="timeout") == 0
    assert all(_alias(samples) is None for samples in after_removal)
    assert value(errors, "serving_request_errors_total", model="iris", code="invalid_input") == 3
    records = [json.loads(line) for line in lines]  # raises on the first line that is not JSON
    loggers = {record["logger"] for record in records}
    assert {"gunicorn.error", "uvicorn.error", "serving.access"} <= loggers
    messages = [record["msg"] for record in records]
    assert any(m.startswith("Booting worker") for m in messages)
    assert "Application startup complete." in messages
    assert "Shutting down: Master" in messages
