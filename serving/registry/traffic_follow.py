"""Reading a model's traffic table during a registry refresh, in a worker thread."""

import logging
import os

from serving.core.errors import ServingError
from serving.repository.store import ModelStore
from serving.repository.traffic import TrafficTable

log = logging.getLogger(__name__)


def read_traffic(store: ModelStore, name: str, current: TrafficTable) -> TrafficTable:
    """The stored table. A damaged file keeps the split this worker had (it never stops the
    model from serving); a change is logged with the worker's pid, as a version swap is."""
    try:
        traffic = store.read_traffic(name)
    except ServingError as exc:
        log.warning("keeping the traffic of %s: %s", name, exc)
        return current
    if traffic != current:
        log.info(
            "traffic of %s: %s, shadow %s",
            name,
            traffic.weights,
            traffic.shadow,
            extra={
                "event": "traffic",
                "model": name,
                "weights": traffic.weights,
                "shadow": traffic.shadow,
                "pid": os.getpid(),
            },
        )
    return traffic
