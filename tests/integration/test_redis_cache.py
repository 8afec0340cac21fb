"""RedisCache against a real redis-server: shared answers, TTLs, versions, and outages."""

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sklearn.dummy import DummyClassifier

from serving.cache.base import CacheUnavailableError
from serving.cache.redis_cache import RedisCache, RedisOptions
from serving.core.metrics import ServingMetrics
from tests.conftest import ClientFactory, SettingsFactory
from tests.processes import free_port
from tests.redis_server import running_redis
from tests.uploads import eventually
from training.publish import publish
from training.train import train

ROW = [5.1, 3.5, 1.4, 0.2]
FAST_BREAKER = RedisOptions(timeout_seconds=0.05, failure_threshold=2, cooldown_seconds=0.2)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _written(redis: Redis, pattern: str) -> None:
    """Cache writes run in the background: wait (bounded) until the answer is in Redis."""
    for _ in range(500):
        if await redis.keys(pattern):
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"nothing matching {pattern} written to Redis within 5 s")


def _errors(metrics: ServingMetrics, operation: str, error: str) -> float:
    labels = {"operation": operation, "error": error}
    return metrics.registry.get_sample_value("serving_cache_errors_total", labels) or 0.0


async def test_an_answer_cached_by_one_app_is_a_hit_in_another(
    client_for: ClientFactory, settings_for: SettingsFactory, redis_url: str, redis: Redis
) -> None:
    settings = settings_for(redis_url=redis_url)
    body = {"instances": [ROW], "probabilities": True}

    async with client_for(settings) as first_app:
        first = await first_app.post("/models/iris/predict", json=body)
    async with client_for(settings) as second_app:
        second = await second_app.post("/models/iris/predict", json=body)

    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.content == second.content
    assert len(await redis.keys("pred:v2:iris:1:*:proba:*")) == 1


async def test_rows_by_name_and_integer_values_share_the_redis_entry(
    client_for: ClientFactory, settings_for: SettingsFactory, redis_url: str, redis: Redis
) -> None:
    by_name = {"petal_width_cm": 0, "petal_length_cm": 1, "sepal_width_cm": 3, "sepal_length_cm": 5}

    async with client_for(settings_for(redis_url=redis_url)) as client:
        first = await client.post("/models/iris/predict", json={"instances": [[5, 3, 1, 0]]})
        await _written(redis, "pred:v2:iris:1:*")
        second = await client.post("/models/iris/predict", json={"instances": [by_name]})

    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")


async def test_entries_carry_the_configured_ttl_and_expire(
    client_for: ClientFactory, settings_for: SettingsFactory, redis_url: str, redis: Redis
) -> None:
    body = {"instances": [ROW]}

    async with client_for(settings_for(redis_url=redis_url, cache_ttl_seconds=1)) as client:
        first = await client.post("/models/iris/predict", json=body)
        [key] = await redis.keys("pred:v2:iris:*")
        ttl_ms = await redis.pttl(key)
        for _ in range(100):  # Redis expires keys on access or in its background sweep
            if not await redis.exists(key):
                break
            await anyio.sleep(0.05)
        after_expiry = await client.post("/models/iris/predict", json=body)

    assert first.headers["X-Cache"] == "MISS"
    assert 0 < ttl_ms <= 1000
    assert after_expiry.headers["X-Cache"] == "MISS"


async def test_an_answer_of_one_version_is_never_served_for_another(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    redis_url: str,
    redis: Redis,
) -> None:
    train("iris", registry_dir, signing_key)
    body = {"instances": [ROW]}

    async with client_for(settings_for(redis_url=redis_url)) as client:
        v1 = await client.post("/models/iris/versions/1/predict", json=body)
        v2 = await client.post("/models/iris/versions/2/predict", json=body)
        await _written(redis, "pred:v2:iris:2:*")
        v2_again = await client.post("/models/iris/predict", json=body)  # latest: v2

    assert [v1.json()["version"], v2.json()["version"], v2_again.json()["version"]] == [1, 2, 2]
    assert [r.headers["X-Cache"] for r in (v1, v2, v2_again)] == ["MISS", "MISS", "HIT"]
    assert len(await redis.keys("pred:v2:iris:1:*")) == len(await redis.keys("pred:v2:iris:2:*"))


async def test_predictions_are_served_while_redis_is_unreachable(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"

    async with client_for(settings_for(redis_url=nobody_listens)) as client:
        ready = await client.get("/health/ready")
        answers = [
            await client.post("/models/iris/predict", json={"instances": [ROW]}) for _ in range(5)
        ]
        scraped = (await client.get("/metrics")).text

    assert ready.status_code == 200
    assert [a.status_code for a in answers] == [200] * 5
    assert {a.headers["X-Cache"] for a in answers} == {"MISS"}
    assert 'serving_cache_lookups_total{result="error"} 5.0' in scraped
    assert "serving_cache_circuit_open 1.0" in scraped


async def test_the_circuit_opens_skips_redis_then_closes_when_redis_is_back(
    tmp_path: Path,
) -> None:
    metrics = ServingMetrics(CollectorRegistry())
    port = free_port()
    cache = RedisCache.from_url(f"redis://127.0.0.1:{port}/0", 60, metrics, FAST_BREAKER)

    for _ in range(5):  # nothing listens yet: 2 failures open the circuit, 3 skip Redis
        with pytest.raises(CacheUnavailableError):
            await cache.get("k")
    failures_while_down = _errors(metrics, "get", "connection")
    with running_redis(tmp_path, port):
        await anyio.sleep(FAST_BREAKER.cooldown_seconds)
        await cache.set("k", b"skipped: the circuit is open")
        probe = await cache.get("k")
        await cache.set("k", b"answer")

        async def is_written() -> bool:  # the write runs in the background
            return await cache.get("k") is not None

        await eventually(is_written, timeout_seconds=5)
        cached = await cache.get("k")
    await cache.aclose()

    assert failures_while_down == 2
    assert (probe, cached) == (None, b"answer")
    assert metrics.registry.get_sample_value("serving_cache_circuit_open") == 0


async def test_a_frozen_redis_costs_a_timeout_then_is_skipped(tmp_path: Path) -> None:
    metrics = ServingMetrics(CollectorRegistry())
    with running_redis(tmp_path) as server:
        cache = RedisCache.from_url(server.url, 60, metrics, FAST_BREAKER)
        await cache.get("warm-up")  # an open connection, then the server stops answering
        server.process.send_signal(signal.SIGSTOP)
        try:
            for _ in range(4):
                with pytest.raises(CacheUnavailableError):
                    await cache.get("k")
        finally:
            server.process.send_signal(signal.SIGCONT)
        await cache.aclose()

    assert _errors(metrics, "get", "timeout") == 2  # then the circuit is open
    assert metrics.registry.get_sample_value("serving_cache_circuit_open") == 1


async def test_two_registries_sharing_redis_never_serve_each_others_answers(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    redis_url: str,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    """Both registries have an iris v1; the other one's always answers class 2."""
    other_root = tmp_path / "other-registry"
    constant = DummyClassifier(strategy="constant", constant=2)
    constant.fit([[0.0] * 4, [1.0] * 4, [2.0] * 4], [0, 1, 2])
    publish(constant, name="iris", root=other_root, signing_key=signing_key, example=ROW)
    body = {"instances": [ROW]}

    async with client_for(settings_for(redis_url=redis_url)) as trained:
        first = await trained.post("/models/iris/predict", json=body)
    async with client_for(settings_for(redis_url=redis_url, model_dir=other_root)) as other:
        from_other = await other.post("/models/iris/predict", json=body)
    async with client_for(settings_for(redis_url=redis_url)) as trained:
        again = await trained.post("/models/iris/predict", json=body)

    assert first.json()["predictions"] == [0] and first.json()["version"] == 1
    assert from_other.headers["X-Cache"] == "MISS"
    assert from_other.json()["predictions"] == [2] and from_other.json()["version"] == 1
    assert (again.headers["X-Cache"], again.json()["predictions"]) == ("HIT", [0])
