"""ModelStore: the registry on disk, `<root>/<name>/<version>/`.

Publishing is atomic (a hidden staging folder renamed into place under a per-model
lock), version numbers are never reused (deleted ones leave a tombstone), and alias
tables are replaced whole with os.replace, so a reader never sees half of anything.
"""

import contextlib
import fcntl
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from serving.core.errors import (
    AliasInUseError,
    AliasNotFoundError,
    ModelLoadError,
    ModelNotFoundError,
    VersionInUseError,
    VersionNotFoundError,
)
from serving.repository.aliases import ALIAS_FILE, DEFAULT_ALIAS, AliasTable
from serving.repository.artifacts import verify_artifact
from serving.repository.compiled import RuntimeMode
from serving.repository.files import replace_file, writable, write_durably
from serving.repository.loading import LoadedModel as LoadedModel
from serving.repository.loading import load_version
from serving.repository.manifest import MANIFEST_FILE, SIGNATURE_FILE, ModelManifest
from serving.repository.names import (
    check_alias_name,
    check_model_name,
    is_valid_name,
    is_version_number,
)
from serving.repository.signing import TrustedKeys
from serving.repository.traffic import TRAFFIC_FILE, TrafficTable, read_traffic_file

_LOCK_FILE = ".lock"
_TOMBSTONE_PREFIX = ".deleted-"


class ModelStore:
    """Reads and writes the registry folder. All methods block on file I/O."""

    def __init__(
        self, root: Path, trusted_keys: TrustedKeys, runtime: RuntimeMode = "auto"
    ) -> None:
        self.root = root
        self._trusted_keys = trusted_keys
        self.runtime_mode: RuntimeMode = runtime  # which form of a version load() opens

    # --- reading -----------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """Folders holding at least one version; one whose folder cannot be listed is
        included, so the registry reports it (its own problem) instead of forgetting it."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if is_valid_name(entry.name) and entry.is_dir() and self._may_have_versions(entry.name)
        )

    def versions(self, name: str) -> list[int]:
        """Published versions; ModelLoadError when the model's folder cannot be read."""
        model_dir = self._model_dir(name)
        try:
            if not model_dir.is_dir():
                return []
            return sorted(
                int(entry.name)
                for entry in model_dir.iterdir()
                if is_version_number(entry.name) and (entry / MANIFEST_FILE).is_file()
            )
        except OSError as exc:
            raise ModelLoadError(f"{model_dir}: cannot list versions: {exc.strerror}") from exc

    def read_manifest(self, name: str, version: int) -> ModelManifest:
        path = self.version_dir(name, version) / MANIFEST_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise self._missing(name, version) from None
        except OSError as exc:
            raise ModelLoadError(f"{path}: cannot read the manifest: {exc.strerror}") from exc
        try:
            return ModelManifest.model_validate_json(raw).with_version(version)
        except ValidationError as exc:
            raise ModelLoadError(f"{path}: invalid manifest: {exc.errors()[0]['msg']}") from exc

    def read_aliases(self, name: str) -> AliasTable:
        """The model's alias table; ModelLoadError when the file is unreadable or corrupt."""
        path = self._model_dir(name) / ALIAS_FILE
        try:
            return AliasTable.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return AliasTable()
        except OSError as exc:
            raise ModelLoadError(f"{path}: cannot read the alias table: {exc.strerror}") from exc
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise ModelLoadError(f"{path}: invalid alias table: {problem}") from exc

    def read_traffic(self, name: str) -> TrafficTable:
        return read_traffic_file(self._model_dir(name) / TRAFFIC_FILE)

    def served_version(self, name: str, aliases: AliasTable | None = None) -> int:
        """The `production` version, or the highest where there is no `production` alias."""
        aliases = aliases if aliases is not None else self.read_aliases(name)
        if DEFAULT_ALIAS in aliases.aliases:
            return aliases.aliases[DEFAULT_ALIAS]
        versions = self.versions(name)
        if not versions:
            raise ModelNotFoundError(f"unknown model {name!r}")
        return versions[-1]

    def resolve(self, name: str, version: int | str | None) -> int:
        """Turn a version number, an alias or nothing into a published version number."""
        if version is None:
            return self.served_version(name)
        if isinstance(version, int):
            if version not in self.versions(name):
                raise self._missing(name, version)
            return version
        aliases = self.read_aliases(name).aliases
        if version not in aliases:
            if not self.versions(name):
                raise ModelNotFoundError(f"unknown model {name!r}")
            raise AliasNotFoundError(f"model {name!r} has no alias {version!r}")
        return aliases[version]

    def version_dir(self, name: str, version: int) -> Path:
        return self._model_dir(name) / str(version)

    def load(self, name: str, version: int) -> LoadedModel:
        """Verify the whole version, then load the form the runtime mode picks. Blocking.

        Raises ArtifactRejectedError naming the file when verification fails.
        """
        manifest = self.read_manifest(name, version)
        folder = self.version_dir(name, version)
        return load_version(manifest, folder, self._trusted_keys, self.runtime_mode)

    # --- writing -----------------------------------------------------------------------
    def publish(
        self,
        manifest: ModelManifest,
        artifact: bytes,
        signature: bytes | None,
        *,
        verify: bool,
        compiled: bytes | None = None,
    ) -> int:
        """Store a new version of `manifest.name` and return its number.

        With `verify`, the signature and checksum are checked first and nothing is written
        when they fail. Two publishers never get the same number: allocation and the final
        rename happen under the model's lock, and the rename refuses an existing folder.
        """
        if verify:
            verify_artifact(manifest, artifact, signature, self._trusted_keys, compiled)
        model_dir = self._model_dir(manifest.name)
        staging = model_dir / f".staging-{uuid.uuid4().hex}"
        with writable(self.root):
            staging.mkdir(parents=True)
        try:
            write_durably(staging / manifest.artifact.file_name, artifact)
            if compiled is not None and manifest.compiled is not None:
                write_durably(staging / manifest.compiled.file_name, compiled)
            if signature is not None:
                write_durably(staging / SIGNATURE_FILE, signature)
            with self._locked(manifest.name, create=True):
                version = self._next_version(manifest.name)
                write_durably(staging / MANIFEST_FILE, manifest.with_version(version).to_json())
                staging.rename(model_dir / str(version))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    def set_alias(self, name: str, alias: str, version: int) -> None:
        check_alias_name(alias)
        with self._locked(name):
            if version not in self.versions(name):
                raise self._missing(name, version)
            self._write_aliases(name, self.read_aliases(name).pointed_at(alias, version))

    def remove_alias(self, name: str, alias: str) -> None:
        with self._locked(name):
            table = self.read_aliases(name)
            if alias not in table.aliases:
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}")
            if alias in self.read_traffic(name).aliases():
                raise AliasInUseError(f"{name}'s traffic uses alias {alias!r}; change it first")
            self._write_aliases(name, table.without(alias))

    def set_traffic(self, name: str, traffic: TrafficTable) -> None:
        """Store `traffic` once every alias it names exists; the default removes the file."""
        if not self.versions(name):  # checked before the lock, which would create the folder
            raise ModelNotFoundError(f"unknown model {name!r}")
        with self._locked(name):
            traffic.check_aliases_exist(name, self.read_aliases(name).aliases.keys())
            path = self._model_dir(name) / TRAFFIC_FILE
            if traffic.is_default:
                path.unlink(missing_ok=True)
            else:
                replace_file(path, traffic.model_dump_json(indent=2).encode())

    def rollback(self, name: str, alias: str) -> int:
        """Point `alias` back at the version it held before; return that version."""
        with self._locked(name):
            table = self.read_aliases(name)
            if alias not in table.aliases:
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}")
            rolled = table.rolled_back(alias, set(self.versions(name)))
            if rolled is None:
                raise AliasNotFoundError(f"alias {alias!r} of {name!r} has no earlier version")
            self._write_aliases(name, rolled[0])
            return rolled[1]

    def delete_version(self, name: str, version: int) -> None:
        with self._locked(name):
            if version not in self.versions(name):
                raise self._missing(name, version)
            holders = sorted(a for a, v in self.read_aliases(name).aliases.items() if v == version)
            if holders:
                raise VersionInUseError(
                    f"{name} v{version} is what alias {', '.join(holders)} points at; "
                    "move the alias first"
                )
            model_dir = self._model_dir(name)
            # Rename first so readers stop seeing the version at once; the tombstone keeps
            # the number from ever being handed out again.
            doomed = model_dir / f".trash-{version}-{uuid.uuid4().hex}"
            (model_dir / str(version)).rename(doomed)
            (model_dir / f"{_TOMBSTONE_PREFIX}{version}").touch()
        shutil.rmtree(doomed, ignore_errors=True)

    # --- internals ---------------------------------------------------------------------
    def _model_dir(self, name: str) -> Path:
        check_model_name(name)
        return self.root / name

    def _may_have_versions(self, name: str) -> bool:
        try:
            return bool(self.versions(name))
        except ModelLoadError:
            return True

    def _missing(self, name: str, version: int) -> ModelNotFoundError | VersionNotFoundError:
        if not self.versions(name):
            return ModelNotFoundError(f"unknown model {name!r}")
        return VersionNotFoundError(f"model {name!r} has no version {version}")

    def _next_version(self, name: str) -> int:
        model_dir = self._model_dir(name)
        tombstones = [
            int(entry.name.removeprefix(_TOMBSTONE_PREFIX))
            for entry in model_dir.iterdir()
            if entry.name.startswith(_TOMBSTONE_PREFIX)
            and entry.name.removeprefix(_TOMBSTONE_PREFIX).isdigit()
        ]
        return max([*self.versions(name), *tombstones], default=0) + 1

    def _write_aliases(self, name: str, table: AliasTable) -> None:
        replace_file(self._model_dir(name) / ALIAS_FILE, table.model_dump_json(indent=2).encode())

    @contextlib.contextmanager
    def _locked(self, name: str, *, create: bool = False) -> Iterator[None]:
        """An exclusive lock across processes (and pods sharing the volume) on one model.

        Only a publish (`create`) makes the model's folder; any other change to a model
        that does not exist is a 404 that leaves nothing behind.
        """
        model_dir = self._model_dir(name)
        if not create and not model_dir.is_dir():
            raise ModelNotFoundError(f"unknown model {name!r}")
        with writable(self.root):
            model_dir.mkdir(parents=True, exist_ok=True)
            lock = open(model_dir / _LOCK_FILE, "a+b")  # noqa: SIM115 - closed below
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
