"""gunicorn configuration used by `serving serve`, in development and in production alike.

Values come from the SERVING_* settings, so the container, the CLI and the tests share them.
"""

import gc
import os
from typing import Any

from serving.core.logging import json_log_config
from serving.core.metrics import (
    clear_multiprocess_dir,
    forget_worker,
    multiprocess_dir,
    remove_multiprocess_dir,
)
from serving.core.settings import Settings

_settings = Settings()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = _settings.graceful_timeout_seconds
timeout = 60  # a worker silent this long is killed and replaced
keepalive = 5  # seconds; above typical load-balancer idle probes
accesslog = None  # the app logs one JSON line per request itself
errorlog = "-"
loglevel = _settings.log_level
# Every line on stderr is one JSON object, gunicorn's lifecycle lines (and uvicorn's, which
# the worker class sends to gunicorn's error handlers) included. gunicorn applies this before
# it logs anything; the app's own configure_logging later takes the root logger over.
logconfig_dict = json_log_config(_settings.log_level)
# gunicorn 27's control socket sits at one fixed path per user, so every server on a machine
# (replicas, tests, benchmarks) would fight over it; nothing here uses gunicornc.
control_socket_disable = True
# Import the libraries and build the app once in the master; workers share those pages
# copy-on-write (docs/memory.md has the figures). Models still load in each worker's
# lifespan, after the fork, so every worker reads the current aliases when it starts.
preload_app = True
# Building the app creates its unlabelled gauges' metric files, in the master and before
# any hook runs: the directory must exist by then. (on_starting then clears the stale
# files, the master's own included: the master never reports metrics.)
if (_metrics_dir := multiprocess_dir()) is not None:
    _metrics_dir.mkdir(parents=True, exist_ok=True)

# BLAS and OpenMP threads per worker, so that workers x threads never exceeds the cores:
# oversubscribed OpenMP (HistGradientBoosting) spins and collapses. Set before any worker
# imports numpy or scikit-learn; an operator's own value wins.
_threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, _threads)


# Prometheus multiprocess mode (see serving.core.metrics): the master owns the metric files.
# gunicorn is untyped, hence Any for its arbiter and workers.
def on_starting(server: Any) -> None:
    """Before any worker: counters from an earlier run must not leak into this one."""
    directory = multiprocess_dir()
    if directory is not None:
        clear_multiprocess_dir(directory)


def child_exit(server: Any, worker: Any) -> None:
    directory = multiprocess_dir()
    if directory is not None:
        forget_worker(worker.pid, directory)


def on_exit(server: Any) -> None:
    directory = multiprocess_dir()
    if directory is not None:
        remove_multiprocess_dir(directory)


def when_ready(server: Any) -> None:
    """Before the first fork: move the preloaded objects out of the collector's reach, and
    collect the young generation less often (the workers inherit both).

    A collection in a worker would otherwise write to the GC header of every object
    inherited from the master, copying those pages (gc.freeze, Python docs on fork).
    A request's own objects mostly die with it, untracked before any collection sees them.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_settings.gc_threshold)
