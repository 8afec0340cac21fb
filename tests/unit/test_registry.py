"""ModelRegistry's races and retries, on a real trained registry.

The races are forced with a seam we own: a ModelStore whose `resolve` or `load` waits, in
its worker thread, until the test has done the competing operation.
"""

import shutil
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.core.errors import ModelLoadError, ModelNotFoundError, NotReadyError, ServingError
from serving.registry.registry import ModelRegistry
from serving.registry.retries import LoadRetries
from serving.repository.signing import TrustedKeys
from serving.repository.store import LoadedModel, ModelStore

_WAIT_SECONDS = 30


class _HeldStore(ModelStore):
    """Blocks `held` ("resolve" or "load") until released; says when a call is waiting."""

    def __init__(self, root: Path, keys: TrustedKeys, held: str) -> None:
        super().__init__(root, keys)
        self.held, self.waiting, self.release = held, threading.Event(), threading.Event()
        self.load_calls = 0

    def _hold(self, operation: str) -> None:
        if operation == self.held:
            self.waiting.set()
            assert self.release.wait(_WAIT_SECONDS)

    def resolve(self, name: str, version: int | str | None) -> int:
        self._hold("resolve")
        return super().resolve(name, version)

    def load(self, name: str, version: int) -> LoadedModel:
        self.load_calls += 1
        self._hold("load")
        return super().load(name, version)


def _registry(root: Path, key: Ed25519PrivateKey, held: str) -> tuple[ModelRegistry, _HeldStore]:
    store = _HeldStore(root, TrustedKeys([key.public_key()]), held)
    return ModelRegistry(store), store


@pytest.fixture
def two_iris_versions(registry_dir: Path) -> Path:
    """iris v1 (served) and v2 (loaded only when a request names it)."""
    shutil.copytree(registry_dir / "iris" / "1", registry_dir / "iris" / "2")
    (registry_dir / "iris" / "aliases.json").write_text(
        '{"aliases": {"production": 1}, "history": {"production": [1]}}'
    )
    return registry_dir


async def _resolve_while(
    registry: ModelRegistry,
    store: _HeldStore,
    version: int,
    meanwhile: Callable[[], Awaitable[None]],
) -> BaseException | LoadedModel:
    """resolve("iris", version) with `meanwhile()` run while the store holds it."""
    outcome: list[BaseException | LoadedModel] = []

    async def request() -> None:
        try:
            outcome.append(await registry.resolve("iris", version))
        except Exception as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(request)
        assert await anyio.to_thread.run_sync(store.waiting.wait, _WAIT_SECONDS)
        await meanwhile()
        store.release.set()
    return outcome[0]


async def test_an_unload_during_an_on_demand_load_keeps_nothing_loaded(
    two_iris_versions: Path, signing_key: Ed25519PrivateKey
) -> None:
    registry, store = _registry(two_iris_versions, signing_key, held="load")
    store.release.set()  # the start-up load of v1 goes through
    await registry.refresh()
    store.release.clear()

    async def unload() -> None:
        await registry.unload("iris")

    outcome = await _resolve_while(registry, store, 2, unload)

    assert isinstance(outcome, NotReadyError)
    assert registry.loaded_versions("iris") == []


async def test_a_model_deleted_while_a_request_waits_for_its_load_lock_is_a_404(
    two_iris_versions: Path, signing_key: Ed25519PrivateKey
) -> None:
    """Request A loads v2 (held); B resolved v2 and waits for A's lock; iris is deleted."""
    registry, store = _registry(two_iris_versions, signing_key, held="load")
    store.release.set()
    await registry.refresh()
    store.release.clear()
    outcomes: dict[str, BaseException | LoadedModel] = {}

    async def request(label: str) -> None:
        outcomes[label] = await _outcome(registry.resolve("iris", 2))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(request, "a")
        assert await anyio.to_thread.run_sync(store.waiting.wait, _WAIT_SECONDS)
        tasks.start_soon(request, "b")
        await anyio.lowlevel.checkpoint()  # b runs up to the lock A holds
        shutil.rmtree(two_iris_versions / "iris")
        await registry.refresh()
        assert "iris" not in registry.models
        store.release.set()

    assert isinstance(outcomes["b"], ModelNotFoundError), repr(outcomes["b"])
    assert registry.loaded_versions("iris") == []


async def test_a_failing_version_named_by_requests_is_not_reloaded_by_each(
    two_iris_versions: Path, signing_key: Ed25519PrivateKey
) -> None:
    registry, store = _registry(two_iris_versions, signing_key, held="none")
    await registry.refresh()
    (two_iris_versions / "iris" / "2" / "model.joblib").write_bytes(b"half a file")
    loads_before = store.load_calls

    first = await _outcome(registry.resolve("iris", 2))
    second = await _outcome(registry.resolve("iris", 2))

    assert isinstance(first, ServingError) and isinstance(second, ModelLoadError)
    assert str(second) == f"iris v2 cannot be served: {first}"
    assert store.load_calls == loads_before + 1  # the second was refused during the backoff


async def _outcome(call: Awaitable[LoadedModel]) -> BaseException | LoadedModel:
    try:
        return await call
    except Exception as exc:
        return exc


def test_the_backoff_doubles_up_to_thirty_seconds() -> None:
    now = [0.0]
    retries = LoadRetries(clock=lambda: now[0])
    key = ("iris", 2)

    delays = [retries.failed(key, "truncated") for _ in range(8)]

    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert retries.waiting(key) == "truncated"
    now[0] = 29.9
    assert retries.waiting(key) == "truncated"
    now[0] = 30.0
    assert retries.waiting(key) is None
    retries.succeeded(key)
    assert retries.failed(key, "again") == 1


def test_forgotten_and_deleted_versions_leave_the_table() -> None:
    retries = LoadRetries(clock=lambda: 0.0)
    retries.failed(("iris", 2), "x")
    retries.failed(("iris", 3), "x")
    retries.failed(("wine", 1), "x")

    retries.keep_only({("iris", 2), ("wine", 1)})
    retries.forget("wine")

    assert retries.waiting(("iris", 2)) == "x"
    assert retries.waiting(("iris", 3)) is None
    assert retries.waiting(("wine", 1)) is None
