"""One model as a worker sees it, and which versions it falls back to when one fails."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from serving.repository.aliases import DEFAULT_ALIAS, AliasTable
from serving.repository.loader import LoadObserver
from serving.repository.store import LoadedModel, ModelStore
from serving.repository.traffic import DEFAULT_TRAFFIC, TrafficTable


@dataclass(frozen=True)
class ModelState:
    """One model as this worker sees it. Immutable: a change builds a new one."""

    name: str
    served: LoadedModel | None  # what a request naming no version gets
    aliases: dict[str, int] = field(default_factory=dict)
    versions: tuple[int, ...] = ()
    failures: dict[int, str] = field(default_factory=dict)  # version -> why it is not served
    traffic: TrafficTable = DEFAULT_TRAFFIC  # how requests naming no version are split


class RegistryObserver(LoadObserver, Protocol):
    """Told about loads and about what is served, e.g. to keep metrics (ServingMetrics)."""

    def registry_changed(
        self, loaded: Mapping[str, Sequence[int]], aliases: Mapping[str, Mapping[str, int]]
    ) -> None: ...


def read_disk(store: ModelStore, name: str) -> tuple[AliasTable, list[int], int]:
    """Blocking: one model's alias table, versions and the version it serves by default."""
    aliases = store.read_aliases(name)
    return aliases, store.versions(name), store.served_version(name, aliases)


def fallbacks(aliases: AliasTable, versions: list[int], wanted: int, limit: int = 5) -> list[int]:
    """Versions to try, best first, when `wanted` cannot be served and nothing else is."""
    trail = aliases.history.get(DEFAULT_ALIAS, []) if DEFAULT_ALIAS in aliases.aliases else []
    ordered = [*reversed(trail), *sorted(versions, reverse=True)]
    existing, seen = set(versions), {wanted}
    candidates = []
    for version in ordered:
        if version in existing and version not in seen:
            candidates.append(version)
            seen.add(version)
    return candidates[:limit]


def version_of(model: LoadedModel | None) -> str:
    return "none" if model is None else str(model.manifest.version)
