"""In-process LRU prediction cache: one per worker, bounded in entries, bytes and time."""

import time
from collections import OrderedDict


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
