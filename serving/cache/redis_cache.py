"""RedisCache: prediction answers shared by every worker and replica, with a circuit breaker."""

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serving.cache.base import CacheUnavailableError
from serving.cache.breaker import CircuitBreaker
from serving.core.metrics import ServingMetrics

log = logging.getLogger(__name__)

# Everything a Redis call can fail with: redis-py wraps most socket errors, not all.
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class RedisOptions:
    """How hard RedisCache tries before it gives up on Redis for a while."""

    timeout_seconds: float = 0.1  # connect, read, and waiting for a pooled connection
    failure_threshold: int = 3  # consecutive failures that open the circuit
    cooldown_seconds: float = 1.0  # open circuit: time between probes
    max_pending_writes: int = 256  # background writes in flight; more are dropped
    max_connections: int = 64  # per worker process


class RedisCache:
    """Answers shared by every worker and replica, each entry expiring after the TTL.

    A dead or slow Redis must not slow predictions: every call has a short deadline, no
    retries, and a circuit breaker that skips Redis after consecutive failures and probes
    it again after a cool-down. Writes run in the background, at most `max_pending_writes`
    at a time, so the answer never waits for one.
    """

    is_enabled = True

    def __init__(
        self,
        client: Redis,
        ttl_seconds: int,
        metrics: ServingMetrics,
        options: RedisOptions = RedisOptions(),
    ) -> None:
        self._client, self._ttl, self._metrics = client, ttl_seconds, metrics
        self._deadline = 2 * options.timeout_seconds  # bounds whatever redis-py does inside
        self._breaker = CircuitBreaker(
            options.failure_threshold, options.cooldown_seconds, on_change=self._breaker_changed
        )
        self._max_pending = options.max_pending_writes
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        ttl_seconds: int,
        metrics: ServingMetrics,
        options: RedisOptions = RedisOptions(),
    ) -> "RedisCache":
        """No I/O: connections open on first use, so a Redis outage never stops start-up."""
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=options.max_connections,
            timeout=options.timeout_seconds,
            socket_connect_timeout=options.timeout_seconds,
            socket_timeout=options.timeout_seconds,
            retry=Retry(NoBackoff(), 0),  # the breaker decides when to try again, not redis-py
        )
        return cls(Redis.from_pool(pool), ttl_seconds, metrics, options)

    async def get(self, key: str) -> bytes | None:
        if not self._breaker.allows_call():
            raise CacheUnavailableError("redis circuit is open")
        try:
            async with asyncio.timeout(self._deadline):
                # decode_responses is off, so redis-py's `bytes | str | None` is bytes | None
                value: bytes | None = await self._client.get(key)  # type: ignore[assignment]
        except _REDIS_FAILURES as exc:
            self._failed("get", exc)
            raise CacheUnavailableError(f"redis get failed: {exc!r}") from exc
        self._breaker.record_success()
        return value

    async def set(self, key: str, value: bytes) -> None:
        if self._breaker.is_open:
            return
        if len(self._pending) >= self._max_pending:
            self._metrics.cache_errors.labels("set", "backlog").inc()
            return
        task = asyncio.create_task(self._write(key, value))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        """Waits for the writes in flight (each bounded by the deadline), then disconnects."""
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self._client.aclose()

    async def _write(self, key: str, value: bytes) -> None:
        try:
            async with asyncio.timeout(self._deadline):
                await self._client.set(key, value, ex=self._ttl)
        except _REDIS_FAILURES as exc:
            self._failed("set", exc)
        else:
            self._breaker.record_success()

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._metrics.cache_errors.labels(operation, _error_kind(exc)).inc()
        self._breaker.record_failure()

    def _breaker_changed(self, is_open: bool) -> None:
        self._metrics.cache_circuit_open.set(1 if is_open else 0)
        if is_open:
            log.warning("redis cache unavailable: skipping it until a probe succeeds")
        else:
            log.info("redis cache reachable again: caching resumed")


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "connection"
    return "other"
