"""How alias moves reach every worker: poll the registry on disk, and wake early when told.

The disk is the source of truth. Each worker re-reads it every `poll_interval_seconds`;
a management change made in this worker, or a Redis message about one made elsewhere
(serving/registry/notify.py), wakes the poller at once. A lost wake-up therefore costs at most one
poll interval, never a stale worker.
"""

import logging
import time

import anyio

from serving.registry.registry import ModelRegistry

log = logging.getLogger(__name__)


class RefreshWakeup:
    """A wake-up call for the registry poller; wakes that arrive during a refresh are kept."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout_seconds: float) -> None:
        """Return when woken or after `timeout_seconds`, whichever comes first; then re-arm."""
        with anyio.move_on_after(timeout_seconds):
            await self._event.wait()
        self._event = anyio.Event()


async def follow_registry(
    registry: ModelRegistry, wakeup: RefreshWakeup, interval_seconds: float
) -> None:
    """Refresh on every wake-up and at least every `interval_seconds`, for ever."""
    while True:
        await wakeup.wait(interval_seconds)
        started = time.perf_counter()
        try:
            await registry.refresh()
        except Exception:  # the poller must survive anything the disk throws at it
            log.exception("registry refresh failed")
        log.debug("registry refreshed in %.1f ms", (time.perf_counter() - started) * 1000)
