"""Registry change notices over Redis pub/sub: near-instant propagation between replicas.

Optional and best effort. A management change publishes the model's name; every worker of
every replica listens and wakes its registry poller. If Redis is down, or a message is
missed while a listener reconnects, the disk poll still brings every worker up to date
within one poll interval, so nothing here can leave a worker stale for long.
"""

import logging
from collections.abc import Callable

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "serving:registry:changed"
_RETRY_SECONDS = 1.0
_CONNECT_TIMEOUT_SECONDS = 2.0
_PUBLISH_TIMEOUT_SECONDS = 2.0  # a management call must not hang on a Redis that went quiet
_READ_TIMEOUT_SECONDS = 5.0
_HEALTH_CHECK_SECONDS = 10  # the listener pings this often, so a dead link is noticed


def _client(
    redis_url: str, *, socket_timeout: float | None = None, health_check_interval: int = 0
) -> "Redis":
    return Redis.from_url(
        redis_url,
        socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
        socket_keepalive=True,
        socket_timeout=socket_timeout,
        health_check_interval=health_check_interval,
    )


class ChangeNotifier:
    """Tells this worker at once, and every other worker through Redis when configured."""

    def __init__(self, wake_local: Callable[[], None], redis_url: str | None) -> None:
        self._wake_local = wake_local
        self._client = (
            _client(redis_url, socket_timeout=_PUBLISH_TIMEOUT_SECONDS) if redis_url else None
        )

    async def changed(self, name: str) -> None:
        self._wake_local()
        if self._client is None:
            return
        try:
            await self._client.publish(CHANNEL, name)
        except (RedisError, OSError) as exc:
            log.warning("could not announce a change of %s (the poll covers it): %s", name, exc)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def announce(redis_url: str, name: str) -> None:
    """One change notice from a process that serves nothing (the CLI)."""
    notifier = ChangeNotifier(lambda: None, redis_url)
    try:
        await notifier.changed(name)
    finally:
        await notifier.aclose()


async def listen_forever(redis_url: str, wake: Callable[[], None]) -> None:
    """Wake the poller on every change notice; reconnect by itself whenever Redis drops."""
    while True:
        try:
            await _listen(redis_url, wake)
        except (RedisError, OSError) as exc:
            log.warning("registry notices unavailable, retrying in %ss: %s", _RETRY_SECONDS, exc)
        await anyio.sleep(_RETRY_SECONDS)


async def _listen(redis_url: str, wake: Callable[[], None]) -> None:
    client = _client(redis_url, health_check_interval=_HEALTH_CHECK_SECONDS)
    async with client, client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(CHANNEL)
        log.info("listening for registry changes on Redis")
        wake()  # a change published while we were not subscribed is picked up now
        while True:
            # Polling get_message (not listen()) gives the health check its turn to run.
            if await pubsub.get_message(timeout=_READ_TIMEOUT_SECONDS) is not None:
                wake()
