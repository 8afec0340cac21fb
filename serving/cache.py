"""Prediction result cache: the key, the PredictionCache protocol, an in-process LRU, no cache.

The cache is cache-aside and an optimisation only: a failing cache never fails a request.
The shared Redis cache is in redis_cache.py.
"""

import hashlib
import time
from collections import OrderedDict
from typing import Protocol

import numpy as np
import numpy.typing as npt

KEY_PREFIX = "pred:v1"  # bump when the stored answer format changes


def cache_key(name: str, version: int, matrix: npt.NDArray[np.float64], probabilities: bool) -> str:
    """Key of one answer: model, resolved version, what was asked for, and the rows.

    The rows are hashed after conversion to the float64 feature matrix, so key order in
    by-name rows and `1` versus `1.0` give the same key.
    """
    digest = hashlib.sha256(f"{matrix.shape}".encode())
    digest.update(np.ascontiguousarray(matrix).tobytes())
    wanted = "proba" if probabilities else "labels"
    return f"{KEY_PREFIX}:{name}:{version}:{wanted}:{digest.hexdigest()}"


class CacheUnavailableError(Exception):
    """A lookup got no answer: the cache failed, timed out, or its circuit is open."""


class PredictionCache(Protocol):
    # False only for NullCache: the predictor then skips hashing the rows into a key.
    is_enabled: bool

    async def get(self, key: str) -> bytes | None:
        """The cached answer, None on a miss; raises only CacheUnavailableError."""
        ...

    async def set(self, key: str, value: bytes) -> None:
        """Store an answer. Never raises: a failed write is counted, not reported."""
        ...

    async def aclose(self) -> None: ...


class NullCache:
    """Caches nothing: SERVING_CACHE_MAX_ENTRIES=0."""

    is_enabled = False

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes) -> None:
        return None

    async def aclose(self) -> None:
        return None


class InProcessCache:
    """LRU bounded in entries and in bytes, with a TTL per entry. One per worker process."""

    is_enabled = True

    def __init__(self, max_entries: int, max_bytes: int, ttl_seconds: float) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries, self._max_bytes, self._ttl = max_entries, max_bytes, ttl_seconds
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at < time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes) -> None:
        if len(value) > self._max_bytes:
            return
        self._drop(key)
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._bytes += len(value)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])
