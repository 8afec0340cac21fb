"""Change notices over a real Redis: listeners reconnect by themselves; an outage fails nothing."""

import sys
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.registry.notify import CHANNEL, announce
from serving.repository.signing import TrustedKeys
from serving.repository.store import ModelStore
from tests.conftest import ClientFactory, SettingsFactory
from tests.processes import free_port, server_environment
from tests.redis_server import running_redis
from tests.uploads import ADMIN, ADMIN_TOKEN, eventually, served_version, signed_iris
from tests.waiting import RegistryPolls

_NO_POLL = 3600.0  # only a notice can make the app reload within a test


def _publish_v2(registry_dir: Path, key: Ed25519PrivateKey) -> ModelStore:
    store = ModelStore(registry_dir, TrustedKeys([key.public_key()]))
    signed = signed_iris(registry_dir, key)
    signed.publish_to(store)
    store.set_alias("iris", "production", 1)
    return store


def _subscribers(url: str) -> int:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return int(dict(client.pubsub_numsub(CHANNEL))[CHANNEL.encode()])
    except redis.RedisError:
        return 0
    finally:
        client.close()


async def _is_subscribed(url: str) -> bool:
    return _subscribers(url) >= 1


async def test_the_listener_resubscribes_after_redis_restarts(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    polls = RegistryPolls(caplog)
    store = _publish_v2(registry_dir, signing_key)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings = settings_for(redis_url=url, poll_interval_seconds=_NO_POLL)

    with ExitStack() as first_redis:
        first_redis.enter_context(running_redis(tmp_path, port))
        async with client_for(settings) as client:
            await eventually(partial(_is_subscribed, url))
            first_redis.close()  # Redis goes away under the running app
            polls_before = polls.count
            with running_redis(tmp_path, port):
                await eventually(partial(_is_subscribed, url), timeout_seconds=10)
                await polls.wait_beyond(polls_before)  # the refresh that follows resubscribing
                store.set_alias("iris", "production", 2)  # `serving promote` on another host
                await announce(url, "iris")

                took = await eventually(partial(_serves, client, 2), timeout_seconds=2)

    assert took <= 2


async def _serves(client: httpx.AsyncClient, version: int) -> bool:
    return await served_version(client, "iris") == version


async def test_with_redis_unreachable_management_and_predictions_still_work(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    _publish_v2(registry_dir, signing_key)
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(
        redis_url=unreachable, admin_tokens=[ADMIN_TOKEN], poll_interval_seconds=_NO_POLL
    )

    async with client_for(settings) as client:
        before = await served_version(client)
        moved = await client.put(
            "/models/iris/aliases/production", json={"version": 2}, headers=ADMIN
        )
        await eventually(partial(_serves, client, 2), timeout_seconds=2)

    assert before == 1
    assert moved.status_code == 200


async def test_a_promotion_by_the_cli_on_the_shared_folder_is_announced_over_redis(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    redis_url: str,
    trusted_key_text: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    polls = RegistryPolls(caplog)
    _publish_v2(registry_dir, signing_key)
    settings = settings_for(redis_url=redis_url, poll_interval_seconds=_NO_POLL)
    cli_env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_REDIS_URL": redis_url,
    }

    async with client_for(settings) as client:
        await eventually(partial(_is_subscribed, redis_url))
        await polls.wait_beyond(0)  # the refresh that follows subscribing
        promoted = await anyio.run_process(
            [sys.executable, "-m", "serving.cli", "promote", "iris", "2"],
            env=server_environment(cli_env),
            check=False,
        )
        took = await eventually(partial(_serves, client, 2), timeout_seconds=2)

    assert promoted.returncode == 0, promoted.stderr
    assert took <= 2
