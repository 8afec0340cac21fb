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


def _client(redis_url: str) -> "Redis":
    return Redis.from_url(
        redis_url,
        socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
        socket_keepalive=True,
        health_check_interval=10,  # a silently dead connection is noticed within seconds
    )


class ChangeNotifier:
    """Tells this worker at once, and every other worker through Redis when configured."""

    def __init__(self, wake_local: Callable[[], None], redis_url: str | None) -> None:
        self._wake_local = wake_local
        self._client = _client(redis_url) if redis_url else None

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


async def listen_forever(redis_url: str, wake: Callable[[], None]) -> None:
    """Wake the poller on every change notice; reconnect by itself whenever Redis drops."""
    while True:
        try:
            await _listen(redis_url, wake)
        except (RedisError, OSError) as exc:
            log.warning("registry notices unavailable, retrying in %ss: %s", _RETRY_SECONDS, exc)
        await anyio.sleep(_RETRY_SECONDS)


async def _listen(redis_url: str, wake: Callable[[], None]) -> None:
    async with _client(redis_url) as client, client.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        log.info("listening for registry changes on Redis")
        wake()  # a change published while we were not subscribed is picked up now
        async for message in pubsub.listen():
            if message.get("type") == "message":
                wake()
