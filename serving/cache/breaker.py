"""CircuitBreaker: stop calling a dependency that keeps failing, and probe it again later.

Closed: every call goes through. After `failure_threshold` consecutive failures the breaker
opens: calls are refused without touching the dependency, so a dead Redis costs a request
nothing. Once `cooldown_seconds` have passed one call is let through as a probe (half-open);
its success closes the breaker, its failure re-opens it for another cool-down. A probe that
never reports back (its task was cancelled) only delays the next probe by one cool-down.
Single event loop, no locks: every method runs on the loop's thread.
"""

import time
from collections.abc import Callable


class CircuitBreaker:
    """Counts consecutive failures of one dependency and decides whether to call it."""

    def __init__(
        self,
        failure_threshold: int = 3,
        cooldown_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._threshold, self._cooldown, self._clock = failure_threshold, cooldown_seconds, clock
        self._on_change = on_change
        self._failures = 0
        self._opened_at: float | None = None  # None while closed

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allows_call(self) -> bool:
        """True when closed, and once per cool-down while open (that call is the probe)."""
        if self._opened_at is None:
            return True
        if self._clock() - self._opened_at < self._cooldown:
            return False
        self._opened_at = self._clock()  # re-arm: the next probe waits a full cool-down
        return True

    def record_success(self) -> None:
        self._failures = 0
        if self._opened_at is not None:
            self._opened_at = None
            self._notify()

    def record_failure(self) -> None:
        self._failures += 1
        if self._opened_at is None and self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(self.is_open)
