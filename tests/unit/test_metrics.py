"""ServingMetrics fed by the registry: loaded versions and aliases, and what leaves /metrics."""

from pathlib import Path

from prometheus_client import CollectorRegistry

from serving.core.metrics import ServingMetrics, clear_multiprocess_dir


def _value(metrics: ServingMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_registry_changes_show_loaded_versions_and_unloaded_ones_disappear() -> None:
    metrics = ServingMetrics(CollectorRegistry())

    metrics.registry_changed({"iris": [1, 2]}, {})
    metrics.registry_changed({"iris": [2]}, {})

    assert _value(metrics, "serving_model_version_loaded", model="iris", version="2") == 1
    assert _value(metrics, "serving_model_version_loaded", model="iris", version="1") is None


def test_alias_moves_and_removals_are_shown() -> None:
    metrics = ServingMetrics(CollectorRegistry())

    metrics.registry_changed({"iris": [1]}, {"iris": {"production": 1, "canary": 2}})
    metrics.registry_changed({"iris": [1]}, {"iris": {"production": 2}})

    assert _value(metrics, "serving_model_alias_version", model="iris", alias="production") == 2
    assert _value(metrics, "serving_model_alias_version", model="iris", alias="canary") is None


def test_model_loads_and_failures_are_counted_by_model() -> None:
    metrics = ServingMetrics(CollectorRegistry())

    metrics.model_loaded("iris", 0.25)
    metrics.model_load_failed("iris")
    metrics.model_load_failed("iris")

    assert _value(metrics, "serving_model_load_seconds_count", model="iris") == 1
    assert _value(metrics, "serving_model_load_seconds_sum", model="iris") == 0.25
    assert _value(metrics, "serving_model_load_failures_total", model="iris") == 2


def test_clearing_the_multiprocess_dir_removes_only_metric_files(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"x")
    (tmp_path / "gauge_livesum_123.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("keep me")

    clear_multiprocess_dir(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
