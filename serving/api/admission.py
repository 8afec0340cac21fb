"""Admission control and deadlines for the routes that score.

A worker holds at most `SERVING_MAX_INFLIGHT` prediction requests. One more is refused at
once with 503 `overloaded` and `Retry-After`, before its body is read: a refusal costs a
path match and a pre-encoded answer, so a flood of them leaves the worker free to finish
the requests it admitted, and to answer probes.

An admitted request runs under a deadline `SERVING_REQUEST_TIMEOUT_SECONDS` after it
arrived. When the deadline passes, whatever the request is waiting on is cancelled (its
body, a batching queue, its turn for a scoring thread), so it is never scored late, and the
client gets 504 `timeout`. What cannot be interrupted is work already running in a thread.
An estimator call finishes on its own (the scoring pool bounds how many run) and its answer
is dropped, without delaying the 504. Decoding a large body and loading a version on demand
(anyio threads the route waits for) delay the 504 until they end.

Probes and every other route pass straight through: they are never counted or refused.
"""

import math
import re

import anyio
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.core.errors import DeadlineExceededError, OverloadedError
from serving.core.metrics import ServingMetrics
from serving.v2.errors import is_protocol_path, protocol_error

_SCORING_PATH = re.compile(
    r"/predict|/models/[^/]+(?:/versions/[^/]+)?/predict"
    r"|/v2/models/[^/]+(?:/versions/[^/]+)?/infer"
)


def is_scoring(scope: Scope) -> bool:
    return scope["method"] == "POST" and _SCORING_PATH.fullmatch(scope["path"]) is not None


class _Refusal:
    """One error answer, encoded once in both shapes (/v2 and the rest)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str]) -> None:
        self.status = status
        self.bodies = {
            False: orjson.dumps({"error": {"code": code, "message": message}}),
            True: orjson.dumps(protocol_error(message)),
        }
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def send(self, path: str, send: Send) -> None:
        body = self.bodies[is_protocol_path(path)]
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class AdmissionControl:
    """Pure ASGI middleware; one per worker process, so `inflight` is that worker's count."""

    def __init__(
        self, app: ASGIApp, max_inflight: int, timeout_seconds: float, metrics: ServingMetrics
    ) -> None:
        self.app, self.max_inflight, self.timeout_seconds = app, max_inflight, timeout_seconds
        self.inflight = 0
        self._shed = metrics.requests_shed.labels(OverloadedError.code)
        self._timed_out = metrics.requests_shed.labels(DeadlineExceededError.code)
        retry_after = OverloadedError.retry_after_seconds
        self._overloaded = _Refusal(
            OverloadedError.status_code,
            OverloadedError.code,
            f"this worker already holds {max_inflight} prediction requests "
            f"(SERVING_MAX_INFLIGHT); retry after {retry_after} s",
            {"Retry-After": str(retry_after)},
        )
        self._timeout = _Refusal(
            DeadlineExceededError.status_code,
            DeadlineExceededError.code,
            f"no answer within {timeout_seconds:g} s of arrival (SERVING_REQUEST_TIMEOUT_SECONDS)",
            {},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_scoring(scope):
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            self._shed.inc()
            await self._overloaded.send(scope["path"], send)
            return
        self.inflight += 1
        try:
            await self._within_deadline(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _within_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        answering = False
        with anyio.CancelScope(deadline=anyio.current_time() + self.timeout_seconds) as deadline:

            async def send_answer(message: Message) -> None:
                nonlocal answering
                if message["type"] == "http.response.start":
                    answering = True
                    deadline.deadline = math.inf  # an answer under way is finished, not cut
                await send(message)

            await self.app(scope, receive, send_answer)
        if deadline.cancelled_caught and not answering:
            self._timed_out.inc()
            await self._timeout.send(scope["path"], send)
