"""Recent input counts per (feature, bin) of one model version, shared by every worker.

Why a file: the drift of a version is a function of the bin counts summed over all workers.
Per-worker Prometheus counters would merge by sum, but a PSI computed in each worker and
merged by any gauge mode is wrong (the PSI of a sum is not a sum or mean of PSIs), and a
sliding window cannot be expressed as counters. So each version has one small file in the
metrics directory, mapped into every worker (numpy memmap, MAP_SHARED); writers add under an
exclusive flock, the scrape reads under a shared one and computes the PSI from the sums.
Works with one worker or many, without Redis, and dies with the server's metrics directory.

The window is a ring of SEGMENTS segments: by rows (each holds window/SEGMENTS rows, the
oldest is zeroed when a new one starts, and a read sums the newest segments until it has the
window's rows) or by time (each covers window/SEGMENTS seconds, keyed by absolute time, so
every worker agrees which segment is current without talking to the others).

Layout: 8-byte magic, 8-byte header length, the JSON header (model, version, features,
profile, window), padding to 8 bytes, then int64 cells: [current segment id], and per segment
[segment id, rows, features * width counts].
"""

import fcntl
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

SEGMENTS = 10
_MAGIC = b"SVDRIFT1"


@dataclass(frozen=True)
class DriftWindow:
    """`rows` recent rows, or the inputs of the last `seconds`; SERVING_DRIFT_WINDOW."""

    rows: int = 0
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "DriftWindow":
        """`10000` (rows), `900s`, `15m`, `1h`; `0` turns drift counting off."""
        text = text.strip().lower()
        units = {"s": 1, "m": 60, "h": 3600}
        if text and text[-1] in units and _is_number(text[:-1]):
            return cls(seconds=float(text[:-1]) * units[text[-1]])
        if text.isdigit():
            return cls(rows=int(text))
        raise ValueError(f"drift window must be rows (10000) or a time (15m, 900s, 1h): {text!r}")

    @property
    def is_enabled(self) -> bool:
        return self.rows > 0 or self.seconds > 0

    def segment_rows(self) -> int:
        return max(1, math.ceil(self.rows / SEGMENTS))


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


class SharedCounts:
    """The mapped file of one version. Open it in every worker; the first creates it."""

    def __init__(self, path: Path, header: dict[str, Any], features: int, width: int) -> None:
        self.path, self.header, self._features, self._width = path, header, features, width
        self._window = DriftWindow(**header["window"])
        encoded = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
        offset = 16 + len(encoded) + (-(16 + len(encoded)) % 8)
        cells = 1 + SEGMENTS * (2 + features * width)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked(fcntl.LOCK_EX):
            if _read_prefix(self._fd, 16 + len(encoded)) != _prefix(encoded):
                _initialise(self._fd, encoded, offset + cells * 8)
        self._cells = np.memmap(path, dtype=np.int64, mode="r+", offset=offset, shape=(cells,))
        self._segments = self._cells[1:].reshape(SEGMENTS, 2 + features * width)

    def add(self, counts: npt.NDArray[np.int64], rows: int, now: float) -> None:
        """Blocking (a file lock): add one flush's counts to the current segment."""
        with self._locked(fcntl.LOCK_EX):
            segment = self._current_segment(rows, now)
            segment[1] += rows
            segment[2:] += counts.ravel()

    def read(self, now: float) -> tuple[npt.NDArray[np.int64], int]:
        """Blocking: counts (features x width) and rows in the window."""
        with self._locked(fcntl.LOCK_SH):
            current = int(self._cells[0])
            total = np.zeros(self._features * self._width, dtype=np.int64)
            rows = 0
            for segment_id in range(current, current - SEGMENTS, -1):
                segment = self._segments[segment_id % SEGMENTS]
                if (
                    segment_id < 0
                    or int(segment[0]) != segment_id
                    or not self._is_recent(segment_id, now)
                ):
                    continue
                total += segment[2:]
                rows += int(segment[1])
                if self._window.rows and rows >= self._window.rows:
                    break
        return total.reshape(self._features, self._width), rows

    def close(self) -> None:
        del self._segments, self._cells
        os.close(self._fd)

    def _current_segment(self, rows: int, now: float) -> npt.NDArray[np.int64]:
        current = int(self._cells[0])
        if self._window.seconds:
            wanted = int(now // (self._window.seconds / SEGMENTS))
        else:
            filled = int(self._segments[current % SEGMENTS][1])
            is_full = filled > 0 and filled + rows > self._window.segment_rows()
            wanted = current + 1 if is_full else current
        segment = self._segments[wanted % SEGMENTS]
        if int(segment[0]) != wanted:  # a new segment: the oldest one's counts go
            segment[:] = 0
            segment[0] = wanted
        self._cells[0] = max(current, wanted)
        chosen: npt.NDArray[np.int64] = segment
        return chosen

    def _is_recent(self, segment_id: int, now: float) -> bool:
        if not self._window.seconds:
            return True
        return segment_id > int(now // (self._window.seconds / SEGMENTS)) - SEGMENTS

    def _locked(self, operation: int) -> "_FileLock":
        return _FileLock(self._fd, operation)


class _FileLock:
    def __init__(self, fd: int, operation: int) -> None:
        self._fd, self._operation = fd, operation

    def __enter__(self) -> None:
        fcntl.flock(self._fd, self._operation)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


def read_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a counts file, or None if it is not one (or not complete yet)."""
    with path.open("rb") as file:
        prefix = file.read(16)
        if len(prefix) < 16 or prefix[:8] != _MAGIC:
            return None
        length = int.from_bytes(prefix[8:16], "little")
        if length > 16 * 1024 * 1024:
            return None
        try:
            header: dict[str, Any] = orjson.loads(file.read(length))
        except orjson.JSONDecodeError:
            return None
    return header


def _prefix(encoded: bytes) -> bytes:
    return _MAGIC + len(encoded).to_bytes(8, "little") + encoded


def _read_prefix(fd: int, size: int) -> bytes:
    return os.pread(fd, size, 0)


def _initialise(fd: int, encoded: bytes, size: int) -> None:
    """A new file, or one another configuration wrote (window or profile changed): zeroed."""
    os.ftruncate(fd, 0)
    os.ftruncate(fd, size)
    os.pwrite(fd, _prefix(encoded), 0)
