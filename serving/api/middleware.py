"""Pure ASGI middleware: request id, body-size limit, and one JSON log line per request.

Pure ASGI rather than BaseHTTPMiddleware, which adds a task and a stream per request.
"""

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.core.errors import BodyTooLargeError
from serving.v2.errors import is_protocol_path, protocol_error

log = logging.getLogger("serving.access")
LOG_FIELDS = "serving.log"  # scope key where routes leave model, version and cache outcome
REQUESTED_MODEL = "serving.model"  # scope key: the model a body named (error metrics)
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_UPLOAD_PATH = re.compile(r"^/models/[^/]+/versions/?$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int = 0) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        # Model uploads (POST /models/{name}/versions) carry whole artifacts: their own limit.
        self.max_upload_bytes = max_upload_bytes or max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        fields: dict[str, Any] = {}
        scope[LOG_FIELDS] = fields
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
            log.info(
                "request",
                extra={
                    "request_id": request_id.decode(),
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    **fields,
                },
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
