"""gunicorn configuration used by `serving serve`, in development and in production alike.

Values come from the SERVING_* settings, so the container, the CLI and the tests share them.
"""

import gc
from typing import Any

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
# No `gunicornc` control socket (gunicorn >= 25): its default path is under $HOME, which
# the image's user does not have (read-only root filesystem), and servers started side
# by side would all claim the same one.
control_socket_disable = True
# Import the libraries and build the app once in the master; workers share those pages
# copy-on-write (docs/memory.md has the figures). Models still load in each worker's
# lifespan, after the fork, so every worker reads the current aliases when it starts.
preload_app = True


def when_ready(server: Any) -> None:
    """Before the first fork: move the preloaded objects out of the collector's reach.

    A collection in a worker would otherwise write to the GC header of every object
    inherited from the master, copying those pages (gc.freeze, Python docs on fork).
    """
    gc.collect()
    gc.freeze()
