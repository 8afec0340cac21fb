"""`serving serve`: gunicorn with uvicorn workers, configured by serving/gunicorn_conf.py."""

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from serving.cli.environment import load_settings
from serving.core.metrics import DEFAULT_MULTIPROC_PREFIX, MULTIPROC_ENV
from serving.repository.signing import trusted_keys_from

_GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn_conf.py"


def add_commands(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    serve = add_parser("serve", help="run the server (gunicorn with uvicorn workers)")
    serve.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: SERVING_WORKERS, 2)"
    )
    serve.add_argument(
        "--host", metavar="ADDRESS", help="address to listen on (default: SERVING_HOST, 0.0.0.0)"
    )
    serve.add_argument(
        "--port", type=int, metavar="PORT", help="port to listen on (default: SERVING_PORT, 8000)"
    )
    serve.set_defaults(run=serve_forever)


def serve_forever(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn; flags become SERVING_* so the config file sees them."""
    for flag in ("workers", "host", "port"):
        value = getattr(args, flag)
        if value is not None:
            os.environ[f"SERVING_{flag.upper()}"] = str(value)
    settings = load_settings()
    # A missing or damaged trusted-keys file is one line here, not a traceback per worker.
    trusted_keys_from(settings)
    if settings.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Several workers need shared metric files, or each scrape sees one worker's counts.
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix=DEFAULT_MULTIPROC_PREFIX)
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(_GUNICORN_CONF)]
    os.execv(sys.executable, [*gunicorn, "serving.api.app:create_app()"])
