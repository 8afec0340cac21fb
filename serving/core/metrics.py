"""ServingMetrics: the model-level Prometheus series, created on an injected registry.

Names follow serving_<what>_<unit>; label values come from small fixed sets (model names
from the registry, versions, fixed outcomes), never from request ids or inputs.

Several gunicorn workers: prometheus_client's multiprocess mode, switched on by the
PROMETHEUS_MULTIPROC_DIR environment variable before the first metric exists (`serving
serve` sets one when it starts more than one worker). Every worker writes its samples to
files there and /metrics merges them, so one scrape counts what all workers did.

Series a dashboard queries exist from start-up at 0 (cache errors by operation and kind, load
failures of every model in the registry), so a query never confuses "none yet" with "no data".
A version that is no longer loaded and an alias that no longer exists leave /metrics: their
children are removed, or in multiprocess mode (where prometheus_client cannot remove a
child from the workers' files) set to 0 and left out when the files are merged.
"""

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

# prometheus_client itself reads this variable (at import), so the setting cannot live in
# Settings: both must agree, and the library's reading is the one that counts.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_MULTIPROC_PREFIX = "serving-metrics-"  # temporary directories `serving serve` makes
DRIFT_FILES = "drift-*.counts"  # input counts per version, shared by the workers (drift)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 10000)
_CACHE_OPERATIONS = ("get", "set")
_CACHE_ERROR_KINDS = ("timeout", "connection", "backlog", "other")
_CACHE_RESULTS = ("hit", "miss", "error")
# Label of errors on a model route whose model the registry does not hold: a name a caller
# made up must not become a series (model names never start with an underscore).
UNKNOWN_MODEL = "_unknown"
# Gauges whose 0 means "gone": left out of a multiprocess scrape (see _WithoutGoneSeries).
_ABSENT_AT_ZERO = frozenset({"serving_model_version_loaded", "serving_model_alias_version"})


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.predictions = Counter(
            "serving_predictions_total",
            "Prediction requests answered, by model, version and result",
            ["model", "version", "cache"],
            registry=registry,
        )
        self.prediction_errors = Counter(
            "serving_prediction_errors_total",
            "Prediction requests refused or failed after their version was chosen",
            ["model", "version", "code"],  # code: the error answer's stable code
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
            "Time inside the estimator's predict/predict_proba, or the compiled model's run",
            ["model", "version", "runtime"],  # runtime: sklearn or onnx
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
        self.requests_shed = Counter(
            "serving_requests_shed_total",
            "Prediction requests refused unscored: overloaded (503) or past their deadline (504)",
            ["reason"],  # overloaded, timeout
            registry=registry,
        )
        self.scoring_errors = Counter(
            "serving_scoring_errors_total",
            "Requests whose estimator call raised: refused (422, a ValueError) or failed (500)",
            ["model", "version", "error"],  # error: refused, failed
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
            ["operation", "error"],
            registry=registry,
        )
        self.request_errors = Counter(
            "serving_request_errors_total",
            "Error answers of a model's routes, by model and error code",
            ["model", "code"],
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
        self._start_at_zero()
        self._shown_loaded: set[tuple[str, str]] = set()
        self._shown_aliases: dict[tuple[str, str], int] = {}

    def _start_at_zero(self) -> None:
        for result in _CACHE_RESULTS:
            self.cache_lookups.labels(result)
        for operation in _CACHE_OPERATIONS:
            for kind in _CACHE_ERROR_KINDS:
                self.cache_errors.labels(operation, kind)

    # --- fed by ModelRegistry (it calls these as its observer) ----------------------------
    def model_loaded(self, name: str, seconds: float) -> None:
        self.model_load_seconds.labels(name).observe(seconds)

    def model_load_failed(self, name: str) -> None:
        self.model_load_failures.labels(name).inc()

    def registry_changed(
        self, loaded: Mapping[str, Sequence[int]], aliases: Mapping[str, Mapping[str, int]]
    ) -> None:
        """Show what is loaded and where aliases point; what disappeared leaves /metrics."""
        for name in loaded:
            self.model_load_failures.labels(name)  # 0 from the start, for every model
        now_loaded = {(name, str(v)) for name, versions in loaded.items() for v in versions}
        for labels in now_loaded - self._shown_loaded:
            self.loaded_versions.labels(*labels).set(1)
        for labels in self._shown_loaded - now_loaded:
            _hide(self.loaded_versions, labels)
        self._shown_loaded = now_loaded
        now_aliases = {(n, a): v for n, table in aliases.items() for a, v in table.items()}
        for labels in self._shown_aliases.keys() - now_aliases.keys():
            _hide(self.alias_version, labels)
        for labels, version in now_aliases.items():
            if self._shown_aliases.get(labels) != version:
                self.alias_version.labels(*labels).set(version)
        self._shown_aliases = now_aliases


def _hide(gauge: Gauge, labels: tuple[str, str]) -> None:
    if multiprocess_dir() is None:
        gauge.remove(*labels)
    else:  # the workers' files keep every child: 0 marks it gone (_WithoutGoneSeries)
        gauge.labels(*labels).set(0)


class _WithoutGoneSeries(Collector):
    """The merged samples of every worker, less the gauges whose 0 means gone."""

    def __init__(self, directory: Path) -> None:
        self._merged = CollectorRegistry()  # the collector re-reads the files on every scrape
        MultiProcessCollector(self._merged, path=str(directory))  # type: ignore[no-untyped-call]  # untyped in prometheus_client

    def collect(self) -> list[Metric]:
        families = list(self._merged.collect())
        for family in families:
            if family.name in _ABSENT_AT_ZERO:
                family.samples = [sample for sample in family.samples if sample.value != 0]
        return families


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
    merged = CollectorRegistry()
    merged.register(_WithoutGoneSeries(directory))
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
