"""Pure ASGI middleware: request id, body-size limit, one JSON log line per request, and
the request's server span and payload sample when those are on.

Pure ASGI rather than BaseHTTPMiddleware, which adds a task and a stream per request.
"""

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.core.errors import BodyTooLargeError
from serving.core.tracing import Tracing, trace_ids
from serving.dataplane.payload_log import PayloadLog, PayloadRecord
from serving.v2.errors import is_protocol_path, protocol_error

if TYPE_CHECKING:  # OpenTelemetry is imported only once tracing is on
    from opentelemetry.trace import Span

log = logging.getLogger("serving.access")
LOG_FIELDS = "serving.log"  # scope key where routes leave model, version and cache outcome
REQUESTED_MODEL = "serving.model"  # scope key: the model a body named (error metrics)
# Present only on a request the payload log sampled: the route leaves its body and answer here.
PAYLOAD_FIELDS = "serving.payload"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
LogFields = dict[str, Any]
_UPLOAD_PATH = re.compile(r"^/models/[^/]+/versions/?$")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int = 0,
        tracing: Tracing | None = None,
        payload_log: PayloadLog | None = None,
    ) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        # Model uploads (POST /models/{name}/versions) carry whole artifacts: their own limit.
        self.max_upload_bytes = max_upload_bytes or max_body_bytes
        self.tracing, self.payload_log = tracing or Tracing(), payload_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.tracing.tracer is None:  # tracing off: not one OpenTelemetry call
            await self._handle(scope, receive, send, {})
            return
        carrier = _trace_headers(scope)
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        with self.tracing.request_span(scope["method"], carrier, attributes) as span:
            fields = trace_ids(span)
            await self._handle(scope, receive, send, fields)
            if span is not None and span.is_recording():
                _finish_span(span, scope, fields)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, fields: LogFields) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope[LOG_FIELDS] = fields
        if self.payload_log is not None and self.payload_log.is_sampled():
            scope[PAYLOAD_FIELDS] = {}
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        limit = _Limit.upload(self.max_upload_bytes) if _is_upload(scope) else None
        limit = limit or _Limit.body(self.max_body_bytes)
        body = _LimitedBody(receive, limit)

        async def send_app_answer(message: Message) -> None:
            if not body.exceeded:
                await send_with_id(message)
            elif message["type"] == "http.response.start":
                # Whatever the app made of the error (a form parser answers 400), it is a 413.
                await _reject_too_large(limit, scope["path"], send_with_id)

        try:
            if _declared_length(scope) > limit.bytes:
                await _reject_too_large(limit, scope["path"], send_with_id)
                return
            await self.app(scope, body.receive, send_app_answer)
        finally:
            seconds = time.perf_counter() - started
            fields["status"] = status
            log.info(
                "request",
                extra={
                    "request_id": request_id.decode(),
                    "method": scope["method"],
                    "path": scope["path"],
                    "duration_ms": round(seconds * 1000, 3),
                    **fields,
                },
            )
            if PAYLOAD_FIELDS in scope and self.payload_log is not None:
                _offer_payload(self.payload_log, scope, request_id, fields, seconds)


def _trace_headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in (b"traceparent", b"tracestate")
    }


def _finish_span(span: "Span", scope: Scope, fields: LogFields) -> None:
    """Name the span after the matched route (low cardinality), and record the outcome."""
    from opentelemetry.trace import StatusCode

    route_path = getattr(scope.get("route"), "path", None)
    if isinstance(route_path, str):
        span.update_name(f"{scope['method']} {route_path}")
        span.set_attribute("http.route", route_path)
    span.set_attribute("http.response.status_code", fields.get("status", 500))
    if fields.get("status", 500) >= 500:
        span.set_status(StatusCode.ERROR)


def _offer_payload(
    payload_log: PayloadLog, scope: Scope, request_id: bytes, fields: LogFields, seconds: float
) -> None:
    sampled = scope[PAYLOAD_FIELDS]
    if "outputs" not in sampled:  # not a prediction that was answered
        return
    payload_log.offer(
        PayloadRecord(
            request_id=request_id.decode(),
            trace_id=fields.get("trace_id"),
            model=str(fields.get("model", "")),
            version=int(fields.get("version", 0)),
            inputs=sampled["inputs"],
            outputs=sampled["outputs"],
            latency_ms=round(seconds * 1000, 3),
        )
    )


@dataclass(frozen=True)
class _Limit:
    bytes: int
    setting: str

    @classmethod
    def body(cls, size: int) -> "_Limit":
        return cls(size, "SERVING_MAX_BODY_BYTES")

    @classmethod
    def upload(cls, size: int) -> "_Limit":
        return cls(size, "SERVING_MAX_UPLOAD_BYTES")


def _is_upload(scope: Scope) -> bool:
    return scope["method"] == "POST" and bool(_UPLOAD_PATH.match(scope["path"]))


class _LimitedBody:
    """Counts streamed body bytes: a chunked body can't skip the limit."""

    def __init__(self, receive: Receive, limit: _Limit) -> None:
        self._receive, self._limit = receive, limit
        self._received = 0
        self.exceeded = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit.bytes:
                self.exceeded = True
                raise BodyTooLargeError(_too_large_message(self._limit))
        return message


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _VALID_REQUEST_ID.match(value):
            return bytes(value)
    return uuid.uuid4().hex.encode()


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def _too_large_message(limit: _Limit) -> str:
    return f"request body is larger than {limit.bytes} bytes ({limit.setting})"


async def _reject_too_large(limit: _Limit, path: str, send: Send) -> None:
    message = _too_large_message(limit)
    error = {"code": BodyTooLargeError.code, "message": message}
    body = orjson.dumps(protocol_error(message) if is_protocol_path(path) else {"error": error})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GZipIfAccepted(GZipMiddleware):
    """Starlette's GZip, entered only when the client accepts gzip.

    Starlette wraps every answer in a responder even when it will not compress; a client
    that sends no Accept-Encoding (most service-to-service callers) skips that cost here.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _accepts_gzip(scope):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _accepts_gzip(scope: Scope) -> bool:
    return any(name == b"accept-encoding" and b"gzip" in value for name, value in scope["headers"])
