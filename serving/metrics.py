"""ServingMetrics: the model-level Prometheus series, created on an injected registry.

Names follow serving_<what>_<unit>; label values come from small fixed sets (model names
from the registry, versions, fixed outcomes), never from request ids or inputs.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self.model_loaded = Gauge(
            "serving_model_version_loaded",
            "1 for each model version loaded in this process",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.alias_version = Gauge(
            "serving_model_alias_version",
            "The version each alias points at",
            ["model", "alias"],
            registry=registry,
            multiprocess_mode="max",
        )
