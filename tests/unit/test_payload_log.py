"""PayloadLog with sinks we own: a slow or failing sink never holds a request, it drops."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from serving.dataplane.payload_log import PayloadLog, PayloadRecord
from serving.dataplane.payload_sinks import RedisStreamSink, RotatingFileSink, sink_from_url
from tests.uploads import eventually


def _record(number: int = 0) -> PayloadRecord:
    return PayloadRecord(
        request_id=f"r{number}",
        trace_id=None,
        model="iris",
        version=1,
        inputs=b'{"instances":[[1.0,2.0]]}',
        outputs=b'{"predictions":[0]}',
        latency_ms=1.5,
    )


class StuckSink:
    def __init__(self) -> None:
        self.calls = 0

    async def write(self, lines: Sequence[bytes]) -> None:
        self.calls += 1
        await asyncio.Event().wait()  # never answers

    async def aclose(self) -> None:
        return None


class FailingSink:
    async def write(self, lines: Sequence[bytes]) -> None:
        raise ConnectionError("sink is down")

    async def aclose(self) -> None:
        return None


def _dropped(registry: CollectorRegistry, reason: str) -> float:
    labels = {"reason": reason}
    return registry.get_sample_value("serving_payload_log_dropped_total", labels) or 0.0


async def test_a_full_queue_drops_instead_of_waiting() -> None:
    registry = CollectorRegistry()
    log = PayloadLog(StuckSink(), 1.0, registry, capacity=3)

    for number in range(10):
        log.offer(_record(number))  # returns at once: nothing is draining

    assert _dropped(registry, "queue_full") == 7


async def test_the_queue_is_bounded_by_bytes_too() -> None:
    registry = CollectorRegistry()
    log = PayloadLog(StuckSink(), 1.0, registry, capacity_bytes=3 * _record().size)

    for number in range(5):
        log.offer(_record(number))

    assert _dropped(registry, "queue_full") == 2


async def test_a_stuck_sink_times_out_and_its_batch_is_counted_as_dropped() -> None:
    sink, registry = StuckSink(), CollectorRegistry()
    log = PayloadLog(sink, 1.0, registry, write_timeout_seconds=0.05)
    for number in range(4):
        log.offer(_record(number))

    writer = asyncio.create_task(log.run())

    async def all_dropped() -> bool:
        return _dropped(registry, "timeout") == 4

    await eventually(all_dropped)
    writer.cancel()

    assert sink.calls == 1


async def test_a_failing_sink_drops_and_the_writer_goes_on() -> None:
    registry = CollectorRegistry()
    log = PayloadLog(FailingSink(), 1.0, registry)
    log.offer(_record(1))
    await log.flush()
    log.offer(_record(2))
    await log.flush()

    assert _dropped(registry, "sink_error") == 2


def test_sampling_draws_per_request() -> None:
    draws = iter([0.05, 0.5, 0.09])
    log = PayloadLog(FailingSink(), 0.1, CollectorRegistry(), draw=lambda: next(draws))

    assert [log.is_sampled() for _ in range(3)] == [True, False, True]


def test_a_record_embeds_both_bodies_as_json() -> None:
    line = orjson.loads(_record(7).to_json())

    assert line["inputs"] == {"instances": [[1.0, 2.0]]}
    assert line["outputs"] == {"predictions": [0]}
    assert (line["request_id"], line["model"], line["version"]) == ("r7", "iris", 1)


async def test_the_file_sink_rotates_at_its_size(tmp_path: Path) -> None:
    sink = sink_from_url(f"file:{tmp_path}/p.jsonl?max_bytes=1000&backups=2")
    assert isinstance(sink, RotatingFileSink)

    for _ in range(20):
        await sink.write([_record().to_json()] * 5)
    await sink.aclose()

    assert _sizes(tmp_path).keys() == {"p.jsonl", "p.jsonl.1", "p.jsonl.2"}
    assert max(_sizes(tmp_path).values()) <= 1000


def _sizes(directory: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in directory.iterdir()}


async def test_a_redis_url_names_the_stream_and_its_bound() -> None:
    sink = sink_from_url("redis://127.0.0.1:1/3?maxlen=500#audit")
    try:
        assert isinstance(sink, RedisStreamSink)
        assert (sink.stream, sink.maxlen) == ("audit", 500)
    finally:
        await sink.aclose()


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "file:", "redis://h/0?maxlen=0#s", "file:/x?backups=-1"]
)
def test_a_value_that_names_no_sink_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        sink_from_url(url)
