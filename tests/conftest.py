"""Fixtures shared by every test: real trained models, signing keys, the real app."""

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.api.app import create_app
from serving.core.settings import Settings
from serving.repository.signing import public_key_text
from tests.redis_server import RedisServer, running_redis
from training.train import train

pytest_plugins = ["tests.traffic_versions"]  # its registry fixtures, for any test module

DEMO_MODELS = ("iris", "breast_cancer", "diabetes")
ClientFactory = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
SettingsFactory = Callable[..., Settings]


@pytest.fixture(autouse=True)
def _no_serving_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell must not change results."""
    for name in list(os.environ):
        if name.startswith(("SERVING_", "OTEL_")) or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def trusted_key_text(signing_key: Ed25519PrivateKey) -> str:
    return public_key_text(signing_key.public_key())


@pytest.fixture(scope="session")
def trained_registry(
    tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey
) -> Path:
    """The three demo models, trained once per session with the real trainer."""
    root = tmp_path_factory.mktemp("trained-registry")
    for name in DEMO_MODELS:
        train(name, root, signing_key)
    return root


@pytest.fixture
def registry_dir(trained_registry: Path, tmp_path: Path) -> Path:
    """A private copy of the trained registry that a test may change."""
    root = tmp_path / "models"
    shutil.copytree(trained_registry, root)
    return root


@pytest.fixture
def settings_for(registry_dir: Path, trusted_key_text: str, tmp_path: Path) -> SettingsFactory:
    """Settings on the test's registry, trusting the session's signing key."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "model_dir": registry_dir,
            "trusted_keys": [trusted_key_text],
            "signing_key_file": tmp_path / "no-dev-key.pem",
            "poll_interval_seconds": 0.2,
            "grpc_port": 0,  # a test that wants gRPC asks for a free port
        }
        return Settings(**(values | overrides))

    return build


@pytest.fixture
def client_for() -> ClientFactory:
    """Runs the app's lifespan, then yields an HTTP client wired straight to it."""

    @asynccontextmanager
    async def open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client

    return open_client


@pytest.fixture
async def client(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the three demo models, with default settings."""
    async with client_for(settings_for()) as opened:
        yield opened


@pytest.fixture(scope="session")
def repo_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server for the session; tests flush it, never the shared one."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The private Redis, emptied before and after the test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield redis_server.url
    client.flushdb()
    client.close()
