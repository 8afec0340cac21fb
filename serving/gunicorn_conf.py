"""gunicorn configuration used by `serving serve`, in development and in production alike.

Values come from the SERVING_* settings, so the container, the CLI and the tests share them.
"""

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
# gunicorn 27's control socket sits at one fixed path per user, so every server on a machine
# (replicas, tests, benchmarks) would fight over it; nothing here uses gunicornc.
control_socket_disable = True
