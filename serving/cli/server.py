"""`serving serve`: gunicorn with uvicorn workers, configured by serving/gunicorn_conf.py."""

import argparse
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from serving.cli.environment import load_settings
from serving.core.errors import InvalidInputError
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


def _refuse_taken_grpc_port(host: str, port: int) -> None:
    """Every worker binds the gRPC port with SO_REUSEPORT, which the kernel also grants to
    another server of the same user: the two would silently split each other's calls. So a
    port that already accepts connections is refused before any worker starts."""
    if port == 0:
        return
    probe_host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    with socket.socket(socket.AF_INET6 if ":" in probe_host else socket.AF_INET) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((probe_host, port)) == 0:
            raise InvalidInputError(
                f"the gRPC port {port} is already in use on {probe_host}: another server? "
                "Set SERVING_GRPC_PORT to a free port, or 0 to turn gRPC off"
            )


def serve_forever(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn; flags become SERVING_* so the config file sees them."""
    for flag in ("workers", "host", "port"):
        value = getattr(args, flag)
        if value is not None:
            os.environ[f"SERVING_{flag.upper()}"] = str(value)
    settings = load_settings()
    # A missing or damaged trusted-keys file is one line here, not a traceback per worker.
    trusted_keys_from(settings)
    _refuse_taken_grpc_port(settings.host, settings.grpc_port)
    if settings.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Several workers need shared metric files, or each scrape sees one worker's counts.
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix=DEFAULT_MULTIPROC_PREFIX)
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(_GUNICORN_CONF)]
    os.execv(sys.executable, [*gunicorn, "serving.api.app:create_app()"])
