"""How the store touches files: durable writes, optional reads, read-only volumes."""

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from serving.core.errors import RegistryReadOnlyError


@contextlib.contextmanager
def writable(root: Path) -> Iterator[None]:
    """A registry mounted read-only (a pod's volume, the image's default) can serve but
    not be changed: say so instead of failing with a bare OSError."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in {errno.EROFS, errno.EACCES, errno.EPERM}:
            raise
        raise RegistryReadOnlyError(f"the registry at {root} is read-only here") from exc


def write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_file(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of either."""
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    write_durably(staging, data)
    os.replace(staging, path)


def read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
