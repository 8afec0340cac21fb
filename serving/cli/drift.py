"""`serving drift NAME`: a running server's input drift (PSI) per feature, worst first."""

import argparse
from collections.abc import Callable

from serving.cli.environment import admin_token, load_settings
from serving.cli.targets import add_target_flags
from serving.remote import read_drift

NO_SERIES = 1  # exit code: the server has no drift series for the model


def add_commands(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    drift = add_parser("drift", help="input drift (PSI) per feature of a model, worst first")
    drift.add_argument("name", metavar="NAME", help="the model to report on")
    drift.add_argument("--version", type=int, help="one version (default: every version)")
    add_target_flags(drift)
    drift.set_defaults(run=show_drift)


def show_drift(args: argparse.Namespace) -> int:
    """Reads the server's /metrics: --url, or else this host's SERVING_PORT (drift lives in
    the server's memory and counts files, not in the registry)."""
    url = args.url or f"http://127.0.0.1:{load_settings().port}"
    report = read_drift(url, args.name, admin_token(args))
    versions = sorted(v for v in report if args.version is None or v == args.version)
    if not versions:
        print(f"{args.name}: no drift series at {url} (no profile, or no inputs yet)")
        return NO_SERIES
    for version in versions:
        drift = report[version]
        print(f"{args.name} v{version}: {drift.rows} rows in the window")
        for feature, value in drift.worst_first():
            print(f"  {feature:<32} {value:8.4f}")
    return 0
