"""Sampled payload log: requests and answers, written off the request path or dropped.

A request only pays for a random draw and, when sampled, one `put_nowait` on a bounded
queue. A background task takes records in batches and hands them to the sink (a Redis
stream or a rotating JSON-lines file, see payload_sinks.py) under a timeout. A full queue,
a slow sink or a dead one never waits a request: the records are dropped and counted in
serving_payload_log_dropped_total{reason}.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

QUEUE_RECORDS = 10_000  # records waiting for the sink; more are dropped
QUEUE_BYTES = 64 * 1024 * 1024  # and their bodies: a 10 MB request must not pin gigabytes
BATCH_RECORDS = 256  # records per sink write
WRITE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class PayloadRecord:
    """One sampled prediction. `inputs` and `outputs` are the JSON bodies as sent."""

    request_id: str
    trace_id: str | None
    model: str
    version: int
    inputs: bytes
    outputs: bytes
    latency_ms: float
    ts: float = 0.0  # seconds since the epoch; 0: now

    @property
    def size(self) -> int:
        return len(self.inputs) + len(self.outputs)

    def to_json(self) -> bytes:
        """One JSON object. The bodies are embedded as they are: both were valid JSON (the
        request was parsed before it was answered, the answer was written by orjson)."""
        return orjson.dumps(
            {
                "ts": self.ts or time.time(),
                "request_id": self.request_id,
                "trace_id": self.trace_id,
                "model": self.model,
                "version": self.version,
                "latency_ms": self.latency_ms,
                "inputs": orjson.Fragment(self.inputs),
                "outputs": orjson.Fragment(self.outputs),
            }
        )


class PayloadSink(Protocol):
    async def write(self, lines: Sequence[bytes]) -> None: ...

    async def aclose(self) -> None: ...


class PayloadLog:
    """Bounded queue in front of a sink; `run()` is the background writer."""

    def __init__(
        self,
        sink: PayloadSink,
        sample: float,
        registry: CollectorRegistry,
        *,
        capacity: int = QUEUE_RECORDS,
        capacity_bytes: int = QUEUE_BYTES,
        write_timeout_seconds: float = WRITE_TIMEOUT_SECONDS,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._sink, self._sample, self._draw = sink, sample, draw
        self._write_timeout_seconds = write_timeout_seconds
        self._queue: asyncio.Queue[PayloadRecord] = asyncio.Queue(maxsize=capacity)
        self._in_flight: list[PayloadRecord] = []  # taken by run(), not yet written
        self._capacity_bytes, self._queued_bytes = capacity_bytes, 0
        self.dropped = Counter(
            "serving_payload_log_dropped_total",
            "Sampled payload records not written: queue full, or the sink failed or timed out",
            ["reason"],  # queue_full, sink_error, timeout
            registry=registry,
        )
        self.written = Counter(
            "serving_payload_log_written_total",
            "Sampled payload records handed to the sink",
            registry=registry,
        )

    def is_sampled(self) -> bool:
        return self._sample >= 1.0 or (self._sample > 0.0 and self._draw() < self._sample)

    def offer(self, record: PayloadRecord) -> None:
        """Never waits: a full queue (records or bytes) drops the record."""
        size = record.size
        if self._queued_bytes + size > self._capacity_bytes:
            self.dropped.labels("queue_full").inc()
            return
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped.labels("queue_full").inc()
        else:
            self._queued_bytes += size

    async def run(self) -> None:
        """Forever: write what is queued, batch by batch."""
        while True:
            first = await self._queue.get()
            self._queued_bytes -= first.size
            batch = self._in_flight = self._take([first])
            await self._write(batch)  # cancelled at shutdown: flush() writes the batch again
            self._in_flight = []

    async def flush(self) -> None:
        """Write what is queued now (at shutdown), each batch still under the timeout."""
        batch, self._in_flight = self._in_flight, []
        while batch or not self._queue.empty():
            await self._write(self._take(batch))
            batch = []

    def _take(self, batch: list[PayloadRecord]) -> list[PayloadRecord]:
        """Fill `batch` from the queue up to BATCH_RECORDS; its bytes leave the queue's bound."""
        while len(batch) < BATCH_RECORDS and not self._queue.empty():
            record = self._queue.get_nowait()
            self._queued_bytes -= record.size
            batch.append(record)
        return batch

    async def aclose(self) -> None:
        await self.flush()
        await self._sink.aclose()

    async def _write(self, batch: list[PayloadRecord]) -> None:
        lines = [record.to_json() for record in batch]
        try:
            async with asyncio.timeout(self._write_timeout_seconds):
                await self._sink.write(lines)
        except TimeoutError:
            self.dropped.labels("timeout").inc(len(batch))
            log.warning("payload log sink timed out; records dropped", extra={"n": len(batch)})
        except Exception:  # any sink failure (connection refused, disk full): drop, go on
            self.dropped.labels("sink_error").inc(len(batch))
            log.warning("payload log sink failed; records dropped", exc_info=True)
        else:
            self.written.inc(len(batch))
