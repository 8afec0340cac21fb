"""The prediction cache's key and protocol, and NullCache for when caching is off.

The cache is cache-aside and an optimisation only: a failing cache never fails a request.
The in-process LRU is in memory.py, the shared Redis cache in redis_cache.py.
"""

import hashlib
from typing import Protocol

import numpy as np
import numpy.typing as npt

KEY_PREFIX = "pred:v2"  # bump when the key's parts or the stored answer format change


def cache_key(
    name: str,
    version: int,
    artifact_sha256: str,
    matrix: npt.NDArray[np.float64],
    probabilities: bool,
) -> str:
    """Key of one answer: model, resolved version, the artifact's identity, what was asked
    for, and the rows.

    The artifact's sha256 is there because a name and a version number do not identify a
    model: two registries sharing one Redis may each hold a different iris v1.
    The rows are hashed after conversion to the float64 feature matrix, so key order in
    by-name rows and `1` versus `1.0` give the same key.
    """
    digest = hashlib.sha256(f"{matrix.shape}".encode())
    digest.update(np.ascontiguousarray(matrix).tobytes())
    wanted = "proba" if probabilities else "labels"
    return f"{KEY_PREFIX}:{name}:{version}:{artifact_sha256}:{wanted}:{digest.hexdigest()}"


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
