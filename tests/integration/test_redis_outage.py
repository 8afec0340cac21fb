"""A real redis-server stopped and restarted under load from real gunicorn: nothing fails."""

import time
from pathlib import Path

import pytest

from tests.load import LoadGenerator, Outcome
from tests.metrics_text import scrape, total, value
from tests.processes import free_port, running_server, wait_until_ready
from tests.redis_server import running_redis
from tests.waiting import wait_until
from training.data import load_dataset

pytestmark = pytest.mark.slow


def _bodies() -> list[dict[str, object]]:
    """30 distinct requests over and over: hits once cached, misses while Redis is away."""
    rows = load_dataset("breast_cancer").x_test[:30].tolist()
    return [{"model": "breast_cancer", "instances": [row], "probabilities": True} for row in rows]


def _hits_after(outcomes: list[Outcome], moment: float) -> int:
    return sum(1 for o in outcomes if o.at > moment and o.cache == "HIT")


def _answered_after(outcomes: list[Outcome], moment: float) -> int:
    return sum(1 for o in outcomes if o.at > moment)


def _lookup_errors(url: str) -> float:
    return value(scrape(url), "serving_cache_lookups_total", result="error") or 0


def _circuit_open(url: str) -> float | None:
    return value(scrape(url), "serving_cache_circuit_open")


def test_predictions_never_fail_while_redis_stops_and_comes_back(
    registry_dir: Path, trusted_key_text: str, tmp_path: Path
) -> None:
    port = free_port()
    for workdir in ("first", "second"):
        (tmp_path / workdir).mkdir()
    env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "no-key.pem"),
        "SERVING_REDIS_URL": f"redis://127.0.0.1:{port}/0",
    }
    with (
        running_redis(tmp_path / "first", port) as first_redis,
        running_server(env, tmp_path / "server.log", workers=2) as server,
    ):
        wait_until_ready(server.url)
        load = LoadGenerator(server.url, _bodies(), threads=4, max_seconds=60).start()
        wait_until(lambda: _hits_after(load.outcomes(), 0) >= 20, "hits from the first Redis")
        first_redis.process.terminate()  # Redis goes away with every entry
        first_redis.process.wait(10)
        stopped_at = time.monotonic()
        wait_until(lambda: _lookup_errors(server.url) > 0, "cache errors while Redis is away")
        wait_until(lambda: _answered_after(load.outcomes(), stopped_at) >= 50, "load meanwhile")
        with running_redis(tmp_path / "second", port):
            restarted_at = time.monotonic()
            # A cool-down, a probe, then entries are written and hit again, in every worker.
            wait_until(lambda: _hits_after(load.outcomes(), restarted_at) >= 20, "hits again")
            wait_until(lambda: _circuit_open(server.url) == 0, "every circuit closed")
            outcomes = load.stop()
            samples = scrape(server.url)

    failed = [o for o in outcomes if o.status != 200]
    assert len(outcomes) > 100
    assert failed == []
    assert _hits_after(outcomes, 0) > _hits_after(outcomes, stopped_at) > 0
    assert _hits_after(outcomes, restarted_at) > 0  # caching resumed by itself
    assert (value(samples, "serving_cache_lookups_total", result="error") or 0) > 0
    assert total(samples, "serving_cache_errors_total") > 0
    assert value(samples, "serving_cache_circuit_open") == 0
