"""SERVING_PAYLOAD_LOG through the app: a JSON-lines file and a real Redis stream."""

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.conftest import ClientFactory, SettingsFactory
from tests.metrics_text import parse, value
from tests.otlp_receiver import http_receiver
from tests.processes import free_port
from tests.uploads import eventually

_BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]], "probabilities": True}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def test_every_sampled_prediction_is_written_with_its_answer(
    client_for: ClientFactory, settings_for: SettingsFactory, tmp_path: Path
) -> None:
    log_file = tmp_path / "payloads.jsonl"
    settings = settings_for(payload_log=f"file:{log_file}", payload_sample=1.0)

    async with client_for(settings) as client:
        answers = [await client.post("/models/iris/predict", json=_BODY) for _ in range(3)]
        missing = await client.post("/models/nope/predict", json=_BODY)
        await client.get("/health/ready")
    # leaving the lifespan flushed the queue

    assert missing.status_code == 404
    records = _lines(log_file)
    assert [r["request_id"] for r in records] == [a.headers["X-Request-ID"] for a in answers]
    first = records[0]
    assert (first["model"], first["version"]) == ("iris", 1)
    assert first["inputs"] == _BODY
    assert first["outputs"] == answers[0].json()
    assert first["latency_ms"] > 0
    assert first["trace_id"] is None  # tracing is off


async def test_a_sample_rate_logs_about_that_share(
    client_for: ClientFactory, settings_for: SettingsFactory, tmp_path: Path
) -> None:
    log_file = tmp_path / "payloads.jsonl"
    settings = settings_for(payload_log=f"file:{log_file}", payload_sample=0.5)

    async with client_for(settings) as client:
        for number in range(200):
            row = [5.1 + number * 1e-3, 3.5, 1.4, 0.2]
            assert (await client.post("/models/iris/predict", json={"instances": [row]})).is_success

    assert 40 < len(_lines(log_file)) < 160  # binomial(200, 0.5): outside is ~1e-17


async def test_records_go_to_a_bounded_redis_stream_with_the_trace_id(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(payload_log=f"{redis_url}?maxlen=50#audit")
    with http_receiver() as (endpoint, _):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        async with client_for(settings) as client:
            for number in range(300):
                row = [5.1 + number * 1e-3, 3.5, 1.4, 0.2]
                await client.post("/models/iris/predict", json={"instances": [row]})

    length, newest = _stream(redis_url, "audit")
    last = orjson.loads(newest)
    assert 50 <= length < 300  # MAXLEN ~ trims whole nodes: near 50, never all 300
    assert last["inputs"]["instances"][0][0] == pytest.approx(5.1 + 299e-3)
    assert len(last["trace_id"]) == 32


def _stream(url: str, stream: str) -> tuple[int, bytes]:
    """The stream's length and its newest record."""
    reader = redis.Redis.from_url(url)
    try:
        length: Any = reader.xlen(stream)
        entries: Any = reader.xrevrange(stream, count=1)
    finally:
        reader.close()
    ((_, fields),) = entries
    return int(length), bytes(fields[b"record"])


async def test_a_dead_redis_drops_and_counts_while_predictions_carry_on(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0#audit"  # nothing listens there

    async with client_for(settings_for(payload_log=nobody)) as client:
        answers = [await client.post("/models/iris/predict", json=_BODY) for _ in range(5)]

        async def dropped() -> bool:
            scraped = parse((await client.get("/metrics")).text)
            labels = {"reason": "sink_error"}
            return (value(scraped, "serving_payload_log_dropped_total", **labels) or 0) >= 5

        await eventually(dropped, timeout_seconds=10)

    assert all(answer.status_code == 200 for answer in answers)
