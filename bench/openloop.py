"""An open-loop HTTP load generator: requests leave on a fixed schedule, answered or not.

A closed-loop client (wrk, one request per connection at a time) slows down when the
server does, so it never offers more than the server takes. Here the i-th request is due
at `start + i / rate` whatever happened to the others, and its latency counts from that
due time (no coordinated omission). Each request takes an idle keep-alive connection, or
opens one, up to `max_connections`; a request due when all of them are busy is not sent
and is counted as `unsent` (the client's own limit, reported, never hidden).

Plain asyncio protocols and pre-encoded requests keep the client's cost per request to
tens of microseconds, so one process can offer a few thousand requests per second.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
CONNECTION_ERROR = 0  # status recorded when a connection failed before an answer


@dataclass
class Result:
    offered_rate: float
    seconds: float
    unsent: int = 0
    send_seconds: float = 0.0  # how long sending the schedule took (> seconds: client lagged)
    last_ok_seconds: float = 0.0  # from the start to the last 200: goodput's denominator
    latencies: dict[int, list[float]] = field(default_factory=dict)  # status -> seconds

    def count(self, status: int | None = None) -> int:
        if status is None:
            return sum(len(v) for v in self.latencies.values())
        return len(self.latencies.get(status, []))


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        match = _CONTENT_LENGTH.search(self._buffer, 0, head_end + 2)
        length = int(match.group(1)) if match else 0
        if len(self._buffer) < head_end + 4 + length:
            return
        status = int(self._buffer[9:12])
        del self._buffer[: head_end + 4 + length]
        self._settle(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._settle(CONNECTION_ERROR)

    def _settle(self, status: int) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(status)

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


def encode_post(host: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def run(
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: float,
    seconds: float,
    max_connections: int = 2000,
) -> Result:
    """Offers `rate` requests per second for `seconds`, cycling through `requests`."""
    loop = asyncio.get_running_loop()
    result = Result(rate, seconds)
    idle: deque[_Connection] = deque()
    opened = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(request: bytes, due: float) -> None:
        nonlocal opened
        connection = idle.pop() if idle else None
        try:
            if connection is None:
                _, connection = await loop.create_connection(_Connection, host, port)
            status = await connection.send(request)
        except OSError:
            status = CONNECTION_ERROR
        finished = loop.time()
        result.latencies.setdefault(status, []).append(finished - due)
        if status == 200:
            result.last_ok_seconds = max(result.last_ok_seconds, finished - start)
        if connection is not None and not connection.closed and status != CONNECTION_ERROR:
            idle.append(connection)
        else:
            opened -= 1

    start = loop.time() + 0.05
    total = int(rate * seconds)
    for index in range(total):
        due = start + index / rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        while idle and idle[-1].closed:  # the server closed it while idle (keep-alive timeout)
            idle.pop()
            opened -= 1
        if not idle and opened >= max_connections:
            result.unsent += 1
            continue
        if not idle:
            opened += 1
        task = loop.create_task(one(requests[index % len(requests)], due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    result.send_seconds = loop.time() - start
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    for connection in idle:
        if connection.transport is not None:
            connection.transport.close()
    return result


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
