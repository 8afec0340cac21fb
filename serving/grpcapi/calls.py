"""What every RPC gets around its handler: status codes, a log line, metrics, credentials.

`observed` wraps a servicer method: a ServingError ends the call with the status its code
implies (status.py) and its message; anything else with INTERNAL and a logged traceback.
Each call writes one JSON log line, as an HTTP request does, and counts in
`serving_grpc_requests_total{method,code}` and `serving_grpc_request_seconds{method}`.
When tracing is on, each call is a server span continuing the caller's W3C trace context
(`traceparent` / `tracestate` metadata), as an HTTP request is.
"""

import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any, Protocol, TypeVar

import grpc
from grpc import aio
from prometheus_client import CollectorRegistry, Counter, Histogram

from serving.core.errors import ServingError
from serving.core.tracing import Tracing, trace_ids
from serving.grpcapi.status import status_of

log = logging.getLogger("serving.access")
REQUEST_ID_KEY = "x-request-id"
SERVICE = "inference.GRPCInferenceService"
_TRACE_KEYS = ("traceparent", "tracestate")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
Context = aio.ServicerContext[Any, Any]
CredentialCheck = Callable[[str | None], None]  # raises AuthenticationError and the like

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Fields a handler adds to its call's log line (model, version, cache). Every RPC runs in
# a task of its own, so the variable set when the call starts is this call's alone.
_LOG_FIELDS: ContextVar[dict[str, Any]] = ContextVar("grpc_log_fields")


class CallMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "serving_grpc_requests_total",
            "gRPC calls answered, by method and status code",
            ["method", "code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "serving_grpc_request_seconds",
            "Time from a gRPC call's arrival to its answer",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def record(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.calls.labels(method, code.name).inc()
        self.seconds.labels(method).observe(seconds)


@dataclass(frozen=True)
class Guard:
    """Credential checks (the API layer's), applied to the call's `authorization` metadata."""

    api_key: CredentialCheck
    admin: CredentialCheck

    def require_api_key(self, context: Context) -> None:
        self.api_key(_authorization(context))

    def require_admin(self, context: Context) -> None:
        self.admin(_authorization(context))


def _authorization(context: Context) -> str | None:
    return _metadata_value(context, "authorization")


def routing_key(context: Context) -> str | None:
    """The caller's x-routing-key metadata: keeps it on one arm of a traffic split, as the
    X-Routing-Key header does over HTTP."""
    return _metadata_value(context, "x-routing-key")


def _metadata_value(context: Context, wanted: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == wanted:
            return value if isinstance(value, str) else None  # "-bin" keys carry bytes
    return None


def _request_id(context: Context) -> str:
    """The caller's x-request-id metadata when it is a sane id, as over HTTP; else a new one."""
    supplied = _metadata_value(context, REQUEST_ID_KEY)
    if supplied is not None and _VALID_REQUEST_ID.match(supplied):
        return supplied
    return uuid.uuid4().hex


def log_fields() -> dict[str, Any]:
    """This call's log fields, for the handler to add to."""
    return _LOG_FIELDS.get()


def _past_deadline(code: grpc.StatusCode, context: Context) -> grpc.StatusCode:
    """A call cancelled because its deadline passed is logged and counted as such."""
    if code is not grpc.StatusCode.CANCELLED:
        return code
    remaining = context.time_remaining()
    past = remaining is not None and remaining <= 0
    return grpc.StatusCode.DEADLINE_EXCEEDED if past else code


def _log_call(
    method: str, code: grpc.StatusCode, elapsed: float, context: Context, fields: dict[str, Any]
) -> None:
    log.info(
        "rpc",
        extra={
            "request_id": _request_id(context),
            "rpc": method,
            "code": code.name,
            "duration_ms": round(elapsed * 1000, 3),
            "pid": os.getpid(),  # which worker answered: a connection stays with one
            **fields,
        },
    )


class _Observed(Protocol):
    metrics: CallMetrics
    tracing: Tracing


S = TypeVar("S", bound=_Observed)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[S, Req, Context], Awaitable[Resp]]


def observed(handler: Handler[S, Req, Resp]) -> Handler[S, Req, Resp]:
    method = handler.__name__

    @wraps(handler)
    async def call(self: S, request: Req, context: Context) -> Resp:
        fields: dict[str, Any] = {}
        _LOG_FIELDS.set(fields)
        if self.tracing.tracer is None:  # tracing off: not one OpenTelemetry call
            return await _answer(handler, self, request, context, fields)
        attributes = {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": method}
        carrier = _trace_metadata(context)
        with self.tracing.request_span(f"{SERVICE}/{method}", carrier, attributes) as span:
            fields.update(trace_ids(span))
            return await _answer(handler, self, request, context, fields)

    return call


async def _answer(
    handler: Handler[S, Req, Resp], self: S, request: Req, context: Context, fields: dict[str, Any]
) -> Resp:
    method = handler.__name__
    started = time.perf_counter()
    code = grpc.StatusCode.CANCELLED  # stays so if the client leaves or its deadline passes
    try:
        answer = await handler(self, request, context)
        code = grpc.StatusCode.OK
        return answer
    except ServingError as exc:
        code = status_of(exc)
        await context.abort(code, exc.message)
    except Exception as exc:
        if isinstance(exc, aio.AbortError):
            raise
        log.exception("unhandled error", extra={"rpc": method})
        code = grpc.StatusCode.INTERNAL
        await context.abort(code, "internal error; see the server log")
    finally:
        code = _past_deadline(code, context)
        elapsed = time.perf_counter() - started
        self.metrics.record(method, code, elapsed)
        _log_call(method, code, elapsed, context, fields)
    raise AssertionError("context.abort always raises")  # for the type checker


def _trace_metadata(context: Context) -> dict[str, str]:
    """The caller's W3C trace context from the call's metadata (keys arrive lower-case)."""
    return {
        key: value
        for key, value in context.invocation_metadata() or ()
        if key in _TRACE_KEYS and isinstance(value, str)
    }
