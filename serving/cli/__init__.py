"""The `serving` command: run the server, publish versions, move aliases, list models.

One module per group of verbs: `server` (serve), `publishing` (train, push), `versions`
(promote, rollback, delete-alias, delete-version, models), `traffic` (traffic split and
shadow) and `drift` (input drift per feature). `environment` reads the settings and the
admin token; `targets` picks the local registry or a running server.
"""

import argparse
import sys
from collections.abc import Sequence

from serving.cli import drift, publishing, server, traffic, versions
from serving.cli.environment import ADMIN_TOKEN_ENV, SettingsError
from serving.core.errors import ServingError

# Exit codes: 1 for a refused or failed command, 2 for a usage or settings error (as argparse).
FAILED = 1
USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED
    except OSError as exc:  # the registry folder or a key file cannot be read or written
        print(f"error: {_os_problem(exc)}", file=sys.stderr)
        return FAILED
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serving",
        description="Serve scikit-learn models and manage their versions and aliases.",
        epilog=(
            "Settings come from SERVING_* environment variables (docs/api.md lists them). "
            f"With --url, the admin token may come from {ADMIN_TOKEN_ENV} instead of --token."
        ),
    )
    verbs = parser.add_subparsers(required=True, metavar="COMMAND")
    server.add_commands(verbs.add_parser)
    publishing.add_commands(verbs.add_parser)
    versions.add_commands(verbs.add_parser)
    traffic.add_commands(verbs.add_parser)
    drift.add_commands(verbs.add_parser)
    return parser


def _os_problem(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"
