"""When a version that failed to load may be tried again: exponential backoff, capped.

A half-copied artifact or a briefly unreadable volume heals by itself; a version that is
truly broken must not be re-read and re-verified on every poll or every request naming it.
So the n-th consecutive failure of one version waits `first_delay * 2**(n-1)` seconds,
at most `max_delay`, before the next attempt.
"""

import time
from collections.abc import Callable, Container
from dataclasses import dataclass

VersionKey = tuple[str, int]  # (model name, version)


@dataclass(frozen=True)
class _Failure:
    reason: str
    attempts: int
    retry_at: float  # monotonic


class LoadRetries:
    def __init__(
        self,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first_delay, self._max_delay, self._clock = first_delay, max_delay, clock
        self._failures: dict[VersionKey, _Failure] = {}

    def failed(self, key: VersionKey, reason: str) -> float:
        """Note a failed attempt; returns the seconds until the next one is due."""
        previous = self._failures.get(key)
        attempts = 1 if previous is None else previous.attempts + 1
        delay: float = min(self._max_delay, self._first_delay * 2.0 ** min(attempts - 1, 30))
        self._failures[key] = _Failure(reason, attempts, self._clock() + delay)
        return delay

    def succeeded(self, key: VersionKey) -> None:
        self._failures.pop(key, None)

    def waiting(self, key: VersionKey) -> str | None:
        """Why `key` last failed while its next attempt is not yet due; None when it may
        be tried now (it never failed, or its delay has passed)."""
        failure = self._failures.get(key)
        if failure is None or self._clock() >= failure.retry_at:
            return None
        return failure.reason

    def forget(self, name: str) -> None:
        """Every failure of `name`: an operator asked for a fresh attempt."""
        self._failures = {key: f for key, f in self._failures.items() if key[0] != name}

    def keep_only(self, existing: Container[VersionKey]) -> None:
        """Drop the versions that no longer exist, so the table stays bounded."""
        self._failures = {key: f for key, f in self._failures.items() if key in existing}
