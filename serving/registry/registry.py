"""ModelRegistry: the versions this worker has loaded, and what each model serves by default.

The disk (ModelStore) is the source of truth. `refresh()` compares it with what is loaded,
loads and verifies whatever a model should now serve off the event loop, and then swaps
one reference. Requests hold the LoadedModel they resolved, so a swap never disturbs a
request already running. Writers replace whole dicts; readers never see half an update.
"""

import logging
import os
import time
from collections import OrderedDict
from dataclasses import replace

import anyio

from serving.core.errors import (
    MalformedRequestError,
    ModelLoadError,
    ModelNotFoundError,
    NotReadyError,
    ServingError,
)
from serving.registry.retries import LoadRetries
from serving.registry.state import ModelState, RegistryObserver, fallbacks, read_disk, version_of
from serving.registry.traffic import split_alias
from serving.registry.traffic_follow import read_traffic
from serving.repository.loader import VerifiedLoader
from serving.repository.manifest import ModelManifest
from serving.repository.store import LoadedModel, ModelStore

__all__ = ["ModelRegistry", "ModelState", "RegistryObserver"]
log = logging.getLogger(__name__)


class ModelRegistry:
    """Loaded versions per model; resolves a request's version to a LoadedModel."""

    def __init__(
        self,
        store: ModelStore,
        max_on_demand_versions: int = 4,
        observer: RegistryObserver | None = None,
        unload_idle_seconds: float = 300.0,
    ) -> None:
        self._store = store
        self._observer = observer
        self._loader = VerifiedLoader(store, observer)
        self._models: dict[str, ModelState] = {}
        # Versions loaded on demand, because a request named them and they are not what the
        # model serves by default; least recently used first, at most max_on_demand_versions.
        self._on_demand: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._used_at: dict[tuple[str, int], float] = {}  # monotonic time of the last request
        self._max_on_demand = max_on_demand_versions
        self._unload_idle_seconds = unload_idle_seconds
        self._refresh_lock = anyio.Lock()
        self._load_locks: dict[tuple[str, int], anyio.Lock] = {}
        self._retries = LoadRetries()  # failed versions: when each may be tried again
        self._unloaded: frozenset[str] = frozenset()  # by the V2 repository extension
        self.has_started = False

    # --- what is served ------------------------------------------------------------------
    @property
    def models(self) -> dict[str, ModelState]:
        return self._models

    def is_ready(self) -> bool:
        """Every model found at start-up has been tried, and at least one serves."""
        return self.has_started and any(s.served is not None for s in self._models.values())

    def served_manifests(self) -> list[ModelManifest]:
        return [s.served.manifest for s in self._models.values() if s.served is not None]

    def sole_model_name(self) -> str:
        """The model a request naming none gets: only defined while exactly one is served."""
        if len(self._models) != 1:
            raise MalformedRequestError(
                f"model is required: this server serves {len(self._models)} models"
            )
        return next(iter(self._models))

    def loaded_versions(self, name: str) -> list[int]:
        state = self._models.get(name)
        served = [state.served.manifest.version] if state and state.served else []
        on_demand = [version for (model, version) in self._on_demand if model == name]
        return sorted({*served, *on_demand})

    async def resolve(
        self, name: str, version: int | str | None, routing_key: str | None = None
    ) -> LoadedModel:
        """The loaded model a request gets; loads an explicitly named version on demand.

        No version: the model's traffic split picks an alias (by `routing_key` when given).
        Aliases resolve through the last refresh (at most one poll interval old), as the
        default version does; only a version number this worker has not seen reads the disk.
        """
        self._check_servable(name)
        state = self._models[name]
        if version is None:
            version = split_alias(state.traffic.weights, routing_key)
            if version is None and state.served is not None:
                return state.served
        number = self._known_number(state, version)
        if number is None:
            number = await anyio.to_thread.run_sync(self._store.resolve, name, version)
        if state.served is not None and state.served.manifest.version == number:
            return state.served
        on_demand = self._on_demand.get((name, number))
        if on_demand is None:
            return await self._load_on_demand(name, number)
        self._used_at[(name, number)] = time.monotonic()
        return on_demand

    @staticmethod
    def _known_number(state: ModelState, version: int | str | None) -> int | None:
        if isinstance(version, str):
            return state.aliases.get(version)
        if isinstance(version, int) and version in state.versions:
            return version
        return None

    # --- keeping up with the disk ----------------------------------------------------------
    async def refresh(self) -> None:
        """Bring every model in line with the disk. Safe to call concurrently."""
        async with self._refresh_lock:
            names = await anyio.to_thread.run_sync(self._store.model_names)
            models = {name: await self._contained(name) for name in names}
            self._models = models
            self._retries.keep_only({(n, v) for n, state in models.items() for v in state.versions})
            self._on_demand = self._kept_on_demand(models)
            self.has_started = True
            self._notify_changed()

    def _kept_on_demand(
        self, models: dict[str, ModelState]
    ) -> OrderedDict[tuple[str, int], LoadedModel]:
        now = time.monotonic()
        kept = OrderedDict(
            (key, model)
            for key, model in self._on_demand.items()
            if self._is_still_needed(key, models.get(key[0]), now)
        )
        self._used_at = {key: self._used_at.get(key, now) for key in kept}
        return kept

    def _is_still_needed(self, key: tuple[str, int], state: ModelState | None, now: float) -> bool:
        """Unload deleted versions, the new default (held as `served`), and versions that
        no alias points at and no request has named for `unload_idle_seconds`."""
        version = key[1]
        if state is None or version not in state.versions or key[0] in self._unloaded:
            return False
        if state.served is not None and state.served.manifest.version == version:
            return False
        idle_seconds = now - self._used_at.get(key, now)
        return version in state.aliases.values() or idle_seconds < self._unload_idle_seconds

    async def _contained(self, name: str) -> ModelState:
        """`_refreshed`, where anything one model's files throw stays with that model: it
        keeps what it served, and every other model refreshes as usual."""
        try:
            return await self._refreshed(name)
        except Exception:
            log.exception("refreshing model %s failed; it keeps its current state", name)
            return self._models.get(name) or ModelState(name=name, served=None)

    async def _refreshed(self, name: str) -> ModelState:
        current = self._models.get(name) or ModelState(name=name, served=None)
        try:
            aliases, versions, wanted = await anyio.to_thread.run_sync(read_disk, self._store, name)
        except ServingError as exc:  # the model vanished or its files are unreadable
            log.warning("cannot read model %s from the registry: %s", name, exc)
            return current
        traffic = await anyio.to_thread.run_sync(read_traffic, self._store, name, current.traffic)
        failures = {v: why for v, why in current.failures.items() if v in versions}
        state = replace(
            current,
            aliases=aliases.aliases,
            versions=tuple(versions),
            failures=failures,
            traffic=traffic,
        )
        if name in self._unloaded:
            return state
        if state.served is not None and state.served.manifest.version == wanted:
            return state
        if self._retries.waiting((name, wanted)) is not None:
            return state  # failed lately: tried again once its backoff has passed
        state = await self._swapped_to(state, wanted)
        if state.served is None:
            state = await self._fallen_back(state, fallbacks(aliases, versions, wanted))
        return state

    async def _swapped_to(self, state: ModelState, version: int) -> ModelState:
        """`state` serving `version` once it loads and verifies; else with the failure noted."""
        name = state.name
        try:
            # A version already loaded for explicit requests is verified: reuse, do not copy.
            loaded = self._on_demand.get((name, version)) or await self._loader.load(name, version)
        except ServingError as exc:
            delay = self._retries.failed((name, version), str(exc))
            log.error("not serving %s v%s (next attempt in %.0f s): %s", name, version, delay, exc)
            return replace(state, failures={**state.failures, version: str(exc)})
        self._retries.succeeded((name, version))
        failures = {v: why for v, why in state.failures.items() if v != version}
        log.info(
            "serving %s v%s (was %s)",
            name,
            version,
            version_of(state.served),
            extra={"event": "swapped", "model": name, "version": version, "pid": os.getpid()},
        )
        return replace(state, served=loaded, failures=failures)

    async def _fallen_back(self, state: ModelState, candidates: list[int]) -> ModelState:
        """A worker with nothing to serve yet (just started) whose wanted version fails
        serves what the workers that were already running kept serving: the version
        the alias held before, or the next lower one."""
        for version in candidates:
            if self._retries.waiting((state.name, version)) is None:
                state = await self._swapped_to(state, version)
                if state.served is not None:
                    break
        return state

    # --- explicit load and unload (V2 repository extension); this worker only ------------
    def is_unloaded(self, name: str) -> bool:
        return name in self._unloaded

    async def load(self, name: str) -> LoadedModel:
        """Serve `name` again in this worker: load its default version, retrying a failure."""
        async with self._refresh_lock:
            if not await anyio.to_thread.run_sync(self._store.versions, name):
                raise ModelNotFoundError(f"unknown model {name!r}")
            self._unloaded = self._unloaded - {name}
            self._retries.forget(name)  # an operator's load tries failed versions at once
            state = await self._refreshed(name)
            self._models = {**self._models, name: state}
        if state.served is None:
            why = "; ".join(state.failures.values()) or "its files could not be read"
            raise ModelLoadError(f"{name} cannot be served: {why}")
        return state.served

    async def unload(self, name: str) -> None:
        """Stop serving `name` in this worker, and free its memory, until `load(name)`."""
        async with self._refresh_lock:
            state = self._models.get(name)
            if state is None:
                raise ModelNotFoundError(f"unknown model {name!r}")
            self._unloaded = self._unloaded | {name}
            self._models = {**self._models, name: replace(state, served=None)}
            self._on_demand = OrderedDict(
                (key, model) for key, model in self._on_demand.items() if key[0] != name
            )

    async def _load_on_demand(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        lock = self._load_locks.setdefault(key, anyio.Lock())
        async with lock:
            self._used_at[key] = time.monotonic()
            if key in self._on_demand:
                self._on_demand.move_to_end(key)
                return self._on_demand[key]
            # Checked under the lock: the model may have been deleted (a refresh dropped
            # it) or unloaded while this request resolved its version or waited here.
            self._check_servable(name)
            reason = self._retries.waiting(key)
            if reason is not None:
                raise ModelLoadError(f"{name} v{version} cannot be served: {reason}")
            loaded = await self._loaded_or_noted(name, version)
            # And again: an unload or a refresh may have run while it loaded. Keeping the
            # copy then would hold its memory for a model this worker no longer serves.
            self._check_servable(name)
            self._on_demand[key] = loaded
            while len(self._on_demand) > self._max_on_demand:
                self._used_at.pop(self._on_demand.popitem(last=False)[0], None)
            self._notify_changed()
            return loaded

    def _check_servable(self, name: str) -> None:
        if name not in self._models:
            raise ModelNotFoundError(f"unknown model {name!r}")
        if name in self._unloaded:
            raise NotReadyError(f"model {name!r} is unloaded in this worker; load it to serve it")

    async def _loaded_or_noted(self, name: str, version: int) -> LoadedModel:
        try:
            loaded = await self._loader.load(name, version)
        except ServingError as exc:
            self._retries.failed((name, version), str(exc))
            raise
        self._retries.succeeded((name, version))
        return loaded

    def _notify_changed(self) -> None:
        if self._observer is not None:
            loaded = {name: self.loaded_versions(name) for name in self._models}
            aliases = {name: state.aliases for name, state in self._models.items()}
            self._observer.registry_changed(loaded, aliases)
