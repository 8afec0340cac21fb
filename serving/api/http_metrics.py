"""HTTP request metrics by route template, from prometheus-fastapi-instrumentator."""

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator

_HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_HTTP_HANDLER_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5)


def instrument_http(app: FastAPI, registry: CollectorRegistry) -> None:
    """HTTP request counts, sizes and latencies by route template.

    Paths that match no route are counted under handler "none", so random 404 paths can't
    create series; /metrics itself is not counted, so scrapes don't disturb request counts.
    """
    Instrumentator(
        should_group_status_codes=True,
        should_group_untemplated=True,
        excluded_handlers=["^/metrics"],
        registry=registry,
    ).instrument(
        app,
        latency_highr_buckets=_HTTP_BUCKETS,
        latency_lowr_buckets=_HTTP_HANDLER_BUCKETS,
    )
