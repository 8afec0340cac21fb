"""The HTTP side's admission rules for ModelInfer: an in-flight bound and a deadline per call.

A worker holds at most SERVING_MAX_INFLIGHT inference calls; one more is refused at once with
`overloaded` (RESOURCE_EXHAUSTED) before its tensors are decoded. An admitted call runs under
SERVING_REQUEST_TIMEOUT_SECONDS from its arrival (`timeout`, DEADLINE_EXCEEDED), as a REST
prediction does; a client's own shorter deadline still ends it sooner. Health and metadata
calls are not counted, so probes are never refused because predictions pile up.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from serving.core.errors import DeadlineExceededError, OverloadedError

T = TypeVar("T")


class CallAdmission:
    """Counts this worker's inference calls in flight; one instance per gRPC server."""

    def __init__(self, max_inflight: int, timeout_seconds: float) -> None:
        self.max_inflight, self.timeout_seconds = max_inflight, timeout_seconds
        self.inflight = 0

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work()` if there is room, within the deadline; raises the contract's 503 or 504."""
        if self.inflight >= self.max_inflight:
            raise OverloadedError(
                f"this worker already holds {self.max_inflight} inference calls; retry shortly"
            )
        self.inflight += 1
        try:
            with anyio.fail_after(self.timeout_seconds):
                return await work()
        except TimeoutError:
            raise DeadlineExceededError(
                f"not answered within {self.timeout_seconds:g} s of its arrival"
            ) from None
        finally:
            self.inflight -= 1
