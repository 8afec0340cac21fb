"""Input drift: bin the rows each version receives, export PSI against its training profile.

The request path only appends its matrix to a list (`observe`). Once a second a background
task counts what gathered, per version: one concatenation, one searchsorted per feature and
one bincount, in a worker thread, and adds the counts to the version's SharedCounts file.
Cache hits count as inputs too: the question is what callers send, not what was scored.

At scrape time `DriftCollector` reads every version's file in the directory (whichever worker
wrote it) and exports serving_feature_drift{model,version,feature}, the PSI of the window's
counts against the profile, and serving_feature_drift_rows{model,version}, the rows the
window holds. A version whose manifest has no profile has no series.
"""

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from serving.core.metrics import DRIFT_FILES
from serving.dataplane.drift_window import DriftWindow, SharedCounts, read_header
from serving.dataplane.inputs import Matrix
from serving.repository.profile import FeatureProfile, bin_counts, psi
from serving.repository.store import LoadedModel

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_PENDING_ROWS = 50_000  # per worker between flushes; rows beyond are not counted


class DriftMonitor:
    """One per worker: gathers inputs on the event loop, counts them in a thread."""

    def __init__(self, directory: Path, window: DriftWindow) -> None:
        self._directory, self._window = directory, window
        self._pending: dict[LoadedModel, list[Matrix]] = {}
        self._pending_rows = 0
        self._files: dict[Path, SharedCounts] = {}

    def observe(self, model: LoadedModel, matrix: Matrix) -> None:
        """On the request path: a list append, nothing else."""
        if model.manifest.profile is None or self._pending_rows >= MAX_PENDING_ROWS:
            return
        self._pending.setdefault(model, []).append(matrix)
        self._pending_rows += len(matrix)

    async def run(self) -> None:
        """Forever: count what gathered, once a second."""
        while True:
            await anyio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        # Swapped on the event loop, so no request appends to a list being counted.
        pending, self._pending, self._pending_rows = self._pending, {}, 0
        if pending:
            await anyio.to_thread.run_sync(self._count, pending)

    def close(self) -> None:
        for counts in self._files.values():
            counts.close()
        self._files.clear()

    def _count(self, pending: dict[LoadedModel, list[Matrix]]) -> None:
        now = time.time()
        for model, matrices in pending.items():
            profile = model.manifest.profile
            assert profile is not None  # observe() keeps only profiled versions
            matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
            width = max(feature.bins for feature in profile)
            counts = bin_counts(matrix, profile, width)
            self._counts_file(model, profile, width).add(counts, len(matrix), now)

    def _counts_file(
        self, model: LoadedModel, profile: list[FeatureProfile], width: int
    ) -> SharedCounts:
        manifest = model.manifest
        name = f"drift-{manifest.name}-{manifest.version}-{manifest.artifact.sha256[:16]}.counts"
        path = self._directory / name
        if path not in self._files:
            header = {
                "model": manifest.name,
                "version": manifest.version,
                "features": manifest.feature_names,
                "profile": [feature.model_dump() for feature in profile],
                "window": {"rows": self._window.rows, "seconds": self._window.seconds},
            }
            self._files[path] = SharedCounts(path, header, len(profile), width)
        return self._files[path]


class DriftCollector(Collector):
    """Reads every version's counts file at scrape time (blocking: file locks)."""

    def __init__(self) -> None:
        self.directory: Path | None = None  # set once the worker's drift directory exists
        self._files: dict[Path, SharedCounts] = {}

    def close(self) -> None:
        for counts in self._files.values():
            counts.close()
        self._files.clear()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        drift = GaugeMetricFamily(
            "serving_feature_drift",
            "Population stability index of each feature's recent inputs against the training "
            "profile in the version's manifest (0: same distribution; above 0.25: large shift)",
            labels=["model", "version", "feature"],
        )
        rows = GaugeMetricFamily(
            "serving_feature_drift_rows",
            "Input rows in the drift window of each version (SERVING_DRIFT_WINDOW)",
            labels=["model", "version"],
        )
        now = time.time()
        paths = [] if self.directory is None else sorted(self.directory.glob(DRIFT_FILES))
        for path in paths:
            counts_file = self._open(path)
            if counts_file is None:
                continue
            header = counts_file.header
            counts, window_rows = counts_file.read(now)
            labels = [str(header["model"]), str(header["version"])]
            rows.add_metric(labels, window_rows)
            if window_rows == 0:
                continue
            for feature, profile, feature_counts in _features(header, counts):
                drift.add_metric([*labels, feature], psi(feature_counts, profile))
        yield drift
        yield rows

    def _open(self, path: Path) -> SharedCounts | None:
        if path in self._files:
            return self._files[path]
        try:
            header = read_header(path)
            if header is None:
                return None
            profile = [FeatureProfile.model_validate(item) for item in header["profile"]]
            width = max(feature.bins for feature in profile)
            self._files[path] = SharedCounts(path, header, len(profile), width)
        except (OSError, ValueError, KeyError, TypeError):  # half-written or foreign: skip it
            log.warning("unreadable drift counts file", extra={"path": str(path)}, exc_info=True)
            return None
        return self._files[path]


def _features(header: dict[str, Any], counts: Any) -> Iterator[tuple[str, FeatureProfile, Any]]:
    for index, (feature, raw) in enumerate(zip(header["features"], header["profile"], strict=True)):
        yield str(feature), FeatureProfile.model_construct(**raw), counts[index]
