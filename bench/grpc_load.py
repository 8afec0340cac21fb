"""A closed-loop load generator for gRPC unary calls and HTTP/1.1 POSTs, light enough to
leave the server the CPU: several processes, each an event loop of concurrent streams
sending pre-serialised requests.

Every stream holds one connection of its own (a gRPC channel with a private subchannel
pool, or a keep-alive HTTP/1.1 connection), as wrk does with `-c`; requests are sent as
bytes (no protobuf or JSON work in the client). Each request differs from every other:
the first feature of the first row is `base + k * 1e-12` with `k` unique across processes
and runs, written into the template at a known place (8 little-endian bytes for gRPC's
raw tensor contents, `%.17g` text for JSON), so a server's result cache never hits.

Each process measures its own CPU time (getrusage) over the timed window, so the report
can show that the client did not saturate a core.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import struct
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

_DOUBLE = struct.Struct("<d")
Kind = Literal["grpc", "http"]


@dataclass(frozen=True)
class Template:
    """Request bytes with the perturbed value's place: `before` + value + `after`.

    gRPC: `before`/`after` surround 8 raw bytes of a float64. HTTP: they surround the
    `%.17g` text of the value in a JSON body (headers are built per request).
    """

    before: bytes
    after: bytes
    base: float

    def render(self, kind: Kind, k: int) -> bytes:
        value = self.base + k * 1e-12
        middle = _DOUBLE.pack(value) if kind == "grpc" else b"%.17g" % value
        return self.before + middle + self.after


def grpc_template(serialized: bytes, sentinel: float, base: float) -> Template:
    """Split a serialised request around the 8 bytes of `sentinel` (present exactly once)."""
    packed = _DOUBLE.pack(sentinel)
    if serialized.count(packed) != 1:
        raise ValueError("the sentinel must occur exactly once in the serialised request")
    before, after = serialized.split(packed)
    return Template(before, after, base)


@dataclass(frozen=True)
class LoadSpec:
    kind: Kind
    host: str
    port: int
    path: str  # gRPC method ("/package.Service/Method") or HTTP path
    template: Template
    streams: int  # concurrent requests (and connections) of this process
    warmup_s: float
    duration_s: float
    first_k: int  # this process's requests use k = first_k, first_k + 1, ...


@dataclass
class ProcessResult:
    requests: int = 0
    all_requests: int = 0  # the warm-up's too: the server's CPU covers both
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latencies_us: list[int] = field(default_factory=list)
    first_error: str = ""


def run(specs: list[LoadSpec]) -> list[ProcessResult]:
    """Runs each spec in a process of its own (spawned: no state from this one); all at once."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(specs), mp_context=context) as pool:
        return list(pool.map(run_process, specs))


def run_process(spec: LoadSpec) -> ProcessResult:
    with contextlib.suppress(ImportError):
        import uvloop  # the client's own overhead matters: the faster loop where there is one

        return uvloop.run(_run(spec))
    return asyncio.run(_run(spec))


async def _run(spec: LoadSpec) -> ProcessResult:
    result = ProcessResult()
    counter = iter(range(spec.first_k, spec.first_k + 10**9))
    connections = [await _connect(spec) for _ in range(spec.streams)]
    senders = [send for send, _ in connections]
    state = {"timing": False, "stop": False}

    async def stream(send: Callable[[bytes], Awaitable[bool]]) -> None:
        while not state["stop"]:
            body = spec.template.render(spec.kind, next(counter))
            started = time.perf_counter_ns()
            try:
                ok = await send(body)
            except Exception as exc:  # counted, and the first one kept for the report
                ok = False
                result.first_error = result.first_error or repr(exc)
            result.all_requests += 1
            if state["timing"]:
                result.requests += 1
                result.errors += not ok
                result.latencies_us.append((time.perf_counter_ns() - started) // 1000)

    tasks = [asyncio.create_task(stream(send)) for send in senders]
    await asyncio.sleep(spec.warmup_s)
    state["timing"] = True
    cpu_before, wall_before = _cpu_seconds(), time.perf_counter()
    await asyncio.sleep(spec.duration_s)
    result.cpu_seconds = _cpu_seconds() - cpu_before
    result.seconds = time.perf_counter() - wall_before
    state["timing"], state["stop"] = False, True
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, close in connections:
        await close()
    return result


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


Sender = Callable[[bytes], Awaitable[bool]]
Closer = Callable[[], Awaitable[None]]


async def _connect(spec: LoadSpec) -> tuple[Sender, Closer]:
    if spec.kind == "grpc":
        return await _grpc_sender(spec)
    return await _http_sender(spec)


async def _grpc_sender(spec: LoadSpec) -> tuple[Sender, Closer]:
    from grpc import aio

    # A private subchannel pool: a connection of its own, as the server's workers each
    # accept connections, not calls. No (de)serialisers: bytes go out and come back as is.
    channel = aio.insecure_channel(
        f"{spec.host}:{spec.port}",
        options=[("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)],
    )
    await channel.channel_ready()
    call: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(spec.path)

    async def send(body: bytes) -> bool:
        answer = await call(body, timeout=30)
        return isinstance(answer, bytes) and len(answer) > 0

    async def close() -> None:
        await channel.close()

    return send, close


async def _http_sender(spec: LoadSpec) -> tuple[Sender, Closer]:
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    head = (
        f"POST {spec.path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()

    async def send(body: bytes) -> bool:
        writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
        headers = await reader.readuntil(b"\r\n\r\n")
        length = _content_length(headers)
        await reader.readexactly(length)
        return headers[9:12] == b"200"

    async def close() -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return send, close


def _content_length(headers: bytes) -> int:
    lowered = headers.lower()
    start = lowered.index(b"content-length:") + len(b"content-length:")
    return int(lowered[start : lowered.index(b"\r\n", start)])
