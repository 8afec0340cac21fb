"""gunicorn configuration used by `serving serve`, in development and in production alike.

Values come from the SERVING_* settings, so the container, the CLI and the tests share them.
"""

import os

from serving.settings import Settings

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

# BLAS and OpenMP threads per worker, so that workers x threads never exceeds the cores:
# oversubscribed OpenMP (HistGradientBoosting) spins and collapses. Set before any worker
# imports numpy or scikit-learn; an operator's own value wins.
_threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, _threads)
