"""Where sampled payloads go, named by one URL in SERVING_PAYLOAD_LOG.

- `redis://[:password@]host:port[/db][?maxlen=N]#stream`: XADD to `stream` (default
  `serving:payloads`) with `MAXLEN ~ N` (default 100,000), so the stream stays bounded
  whoever reads it; each entry has one field, `record`, holding the JSON object.
- `file:/path/payloads.jsonl[?max_bytes=N&backups=K]` (or a bare path): JSON lines, rotated
  at N bytes (default 64 MiB) keeping K old files (default 5), by the standard library's
  RotatingFileHandler, which also serialises writers of one process.
"""

import logging
import logging.handlers
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import anyio
from redis.asyncio import Redis

from serving.dataplane.payload_log import PayloadSink

DEFAULT_STREAM = "serving:payloads"
DEFAULT_MAXLEN = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BACKUPS = 5
_REDIS_TIMEOUT_SECONDS = 1.0


class RedisStreamSink:
    def __init__(self, client: "Redis", stream: str, maxlen: int) -> None:
        self._client, self.stream, self.maxlen = client, stream, maxlen

    async def write(self, lines: Sequence[bytes]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for line in lines:
                pipe.xadd(self.stream, {"record": line}, maxlen=self.maxlen, approximate=True)
            await pipe.execute()

    async def aclose(self) -> None:
        await self._client.aclose()


class RotatingFileSink:
    """JSON lines through RotatingFileHandler, written in a worker thread (disk I/O blocks)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )

    async def write(self, lines: Sequence[bytes]) -> None:
        await anyio.to_thread.run_sync(self._write_lines, lines)

    def _write_lines(self, lines: Sequence[bytes]) -> None:
        for line in lines:
            self._handler.handle(logging.makeLogRecord({"msg": line.decode()}))

    async def aclose(self) -> None:
        self._handler.close()


def sink_from_url(url: str) -> PayloadSink:
    """Raises ValueError for a value that names no sink."""
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if parts.scheme in ("redis", "rediss"):
        client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        client = Redis.from_url(
            client_url,
            socket_timeout=_REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        )
        maxlen = _positive(query, "maxlen", DEFAULT_MAXLEN)
        return RedisStreamSink(client, parts.fragment or DEFAULT_STREAM, maxlen)
    if parts.scheme in ("file", ""):
        if not parts.path:
            raise ValueError(f"no file path in SERVING_PAYLOAD_LOG={url!r}")
        max_bytes = _positive(query, "max_bytes", DEFAULT_MAX_BYTES)
        return RotatingFileSink(
            Path(parts.path), max_bytes, _positive(query, "backups", DEFAULT_BACKUPS)
        )
    raise ValueError(f"SERVING_PAYLOAD_LOG must be redis://…#stream or file:/path, not {url!r}")


def _positive(query: dict[str, str], key: str, default: int) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{key} must be a positive integer, not {raw!r}")
    return int(raw)
