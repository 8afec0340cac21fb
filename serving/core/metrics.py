"""ServingMetrics: the model-level Prometheus series, created on an injected registry.

Names follow serving_<what>_<unit>; label values come from small fixed sets (model names
from the registry, versions, fixed outcomes), never from request ids or inputs.

Several gunicorn workers: prometheus_client's multiprocess mode, switched on by the
PROMETHEUS_MULTIPROC_DIR environment variable before the first metric exists (`serving
serve` sets one when it starts more than one worker). Every worker writes its samples to
files there and /metrics merges them, so one scrape counts what all workers did.
"""

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

# prometheus_client itself reads this variable (at import), so the setting cannot live in
# Settings: both must agree, and the library's reading is the one that counts.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_MULTIPROC_PREFIX = "serving-metrics-"  # temporary directories `serving serve` makes
DRIFT_FILES = "drift-*.counts"  # input counts per version, shared by the workers (drift)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 10000)


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.predictions = Counter(
            "serving_predictions_total",
            "Prediction requests answered, by model, version and result",
            ["model", "version", "cache"],
            registry=registry,
        )
        self.rows = Counter(
            "serving_prediction_rows_total",
            "Rows scored or answered from the cache",
            ["model", "version"],
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "serving_inference_seconds",
            "Time inside the estimator's predict/predict_proba",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "serving_batch_rows",
            "Rows per call to the estimator (after adaptive batching)",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.cache_lookups = Counter(
            "serving_cache_lookups_total",
            "Result cache lookups by outcome",
            ["result"],  # hit, miss, error
            registry=registry,
        )
        self.cache_errors = Counter(
            "serving_cache_errors_total",
            "Failed calls to the shared cache (the request went on without it)",
            ["operation", "error"],  # get|set; timeout|connection|backlog|other
            registry=registry,
        )
        self.cache_circuit_open = Gauge(
            "serving_cache_circuit_open",
            "Worker processes currently skipping Redis after repeated failures",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.model_load_seconds = Histogram(
            "serving_model_load_seconds",
            "Time to read, verify and deserialise a model version",
            ["model"],
            registry=registry,
        )
        self.model_load_failures = Counter(
            "serving_model_load_failures_total",
            "Model versions that failed to load or verify",
            ["model"],
            registry=registry,
        )
        self.loaded_versions = Gauge(
            "serving_model_version_loaded",
            "Worker processes that have this model version loaded (0: unloaded)",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.alias_version = Gauge(
            "serving_model_alias_version",
            "The version each alias points at (0: alias removed)",
            ["model", "alias"],
            registry=registry,
            # Set only on change, so the newest value is the newest alias move.
            multiprocess_mode="livemostrecent",
        )
        self._shown_loaded: set[tuple[str, str]] = set()
        self._shown_aliases: dict[tuple[str, str], int] = {}

    # --- fed by ModelRegistry (it calls these as its observer) ----------------------------
    def model_loaded(self, name: str, seconds: float) -> None:
        self.model_load_seconds.labels(name).observe(seconds)

    def model_load_failed(self, name: str) -> None:
        self.model_load_failures.labels(name).inc()

    def registry_changed(
        self, loaded: Mapping[str, Sequence[int]], aliases: Mapping[str, Mapping[str, int]]
    ) -> None:
        """Show what is loaded and where aliases point; what disappeared drops to 0."""
        now_loaded = {(name, str(v)) for name, versions in loaded.items() for v in versions}
        for labels in now_loaded - self._shown_loaded:
            self.loaded_versions.labels(*labels).set(1)
        for labels in self._shown_loaded - now_loaded:
            self.loaded_versions.labels(*labels).set(0)
        self._shown_loaded = now_loaded
        now_aliases = {(n, a): v for n, table in aliases.items() for a, v in table.items()}
        for labels in self._shown_aliases.keys() - now_aliases.keys():
            self.alias_version.labels(*labels).set(0)
        for labels, version in now_aliases.items():
            if self._shown_aliases.get(labels) != version:
                self.alias_version.labels(*labels).set(version)
        self._shown_aliases = now_aliases


# Request latencies: hits answer in well under a millisecond, big batches take seconds.
def exposition(registry: CollectorRegistry, *shared: Collector) -> Callable[[], bytes]:
    """Renders /metrics: this process's registry, or every worker's files merged; plus the
    `shared` collectors, which read state every worker shares (e.g. drift counts files).

    Blocking (it reads the files in multiprocess mode): call it in a worker thread.
    """
    directory = multiprocess_dir()
    if directory is None:
        for collector in shared:
            registry.register(collector)
        return lambda: generate_latest(registry)
    merged = CollectorRegistry()  # the collector re-reads the files on every scrape
    MultiProcessCollector(merged, path=str(directory))  # type: ignore[no-untyped-call]
    for collector in shared:
        merged.register(collector)
    return lambda: generate_latest(merged)


def multiprocess_dir() -> Path | None:
    directory = os.environ.get(MULTIPROC_ENV)
    return Path(directory) if directory else None


def clear_multiprocess_dir(directory: Path) -> None:
    """Called by the gunicorn master before any worker starts and after the last one stops.

    Only prometheus_client's own *.db files and our drift counts are removed, in case the
    variable points at a directory that holds anything else.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.db", DRIFT_FILES):
        for stale in directory.glob(pattern):
            stale.unlink(missing_ok=True)


def remove_multiprocess_dir(directory: Path) -> None:
    """At shutdown: empty the files, and remove the directory if `serving serve` made it."""
    clear_multiprocess_dir(directory)
    if directory.name.startswith(DEFAULT_MULTIPROC_PREFIX):
        with contextlib.suppress(OSError):  # something else lives there: leave it
            directory.rmdir()


def forget_worker(pid: int, directory: Path) -> None:
    """A worker exited: its live gauges (loaded versions, open circuits) stop counting."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
