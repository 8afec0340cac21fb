"""Waiting on conditions, bounded in time: never a fixed sleep that hopes something happened."""

import logging
import time
from collections.abc import Callable

import anyio
import pytest

_POLLER = "serving.registry.poller"


def wait_until(
    condition: Callable[[], bool], what: str, timeout_seconds: float = 30.0, interval: float = 0.05
) -> float:
    """Call `condition` until it is true; the seconds that took. AssertionError at the timeout."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_seconds, f"timed out waiting for {what}"
        time.sleep(interval)
    return time.monotonic() - started


class RegistryPolls:
    """Counts the registry refreshes the poller has finished in this process (from its
    debug log line), so a test can wait for polls to happen rather than sleep through them."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger=_POLLER)
        self._caplog = caplog

    @property
    def count(self) -> int:
        return sum(
            1
            for record in self._caplog.records
            if record.name == _POLLER and str(record.msg).startswith("registry refreshed")
        )

    async def wait_beyond(self, count: int, timeout_seconds: float = 10.0) -> None:
        """Until more than `count` refreshes have finished."""
        with anyio.fail_after(timeout_seconds):
            while True:
                if self.count > count:
                    return
                await anyio.sleep(0.02)
