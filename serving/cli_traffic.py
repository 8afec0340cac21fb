"""`serving traffic`: split a model's requests between aliases and shadow them, locally or
on a server (--url/--token). The CLI on a local registry refuses what the API refuses."""

import argparse
from typing import Any

from pydantic import ValidationError

from serving.core.errors import InvalidInputError
from serving.core.settings import Settings
from serving.remote import RemoteRegistry
from serving.repository.traffic import TrafficTable


def add_traffic_verb(verbs: Any) -> None:
    """Register the verb on the CLI's subparsers (argparse's type for them is private)."""
    traffic = verbs.add_parser(
        "traffic", help="split requests between aliases by weight, and shadow them"
    )
    traffic.add_argument("name")
    traffic.add_argument(
        "weights", nargs="*", metavar="ALIAS=WEIGHT", help="integers summing to 100"
    )
    traffic.add_argument("--shadow", metavar="ALIAS", help="alias that scores a copy of each")
    traffic.add_argument("--clear", action="store_true", help="back to production alone")
    traffic.add_argument("--url", help="a running server; default: the local registry")
    traffic.add_argument("--token", help="admin token for --url (SERVING_ADMIN_TOKENS there)")
    traffic.set_defaults(run=run_traffic)


def run_traffic(args: argparse.Namespace) -> int:
    table = _requested(args)
    if args.url:
        with RemoteRegistry(args.url, args.token) as remote:
            stored = remote.set_traffic(args.name, table)
    else:
        stored = _set_locally(args.name, table)
    shown = " ".join(f"{alias}={weight}" for alias, weight in stored.weights.items())
    print(f"{args.name}: {shown}; shadow {stored.shadow or 'none'}")
    return 0


def _requested(args: argparse.Namespace) -> TrafficTable:
    if args.clear:
        if args.weights or args.shadow:
            raise InvalidInputError("--clear takes no weights and no --shadow")
        return TrafficTable()
    if not args.weights:
        raise InvalidInputError("give ALIAS=WEIGHT pairs summing to 100, or --clear")
    try:
        return TrafficTable(weights=_weights(args.weights), shadow=args.shadow)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise InvalidInputError(f"invalid traffic: {problem['msg']}") from None


def _weights(pairs: list[str]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for pair in pairs:
        alias, equals, weight = pair.partition("=")
        if not equals or not (weight.isascii() and weight.isdigit()) or alias in weights:
            raise InvalidInputError(f"{pair!r}: expected ALIAS=WEIGHT, each alias once")
        weights[alias] = int(weight)
    return weights


def _set_locally(name: str, table: TrafficTable) -> TrafficTable:
    import anyio

    from serving.registry.notify import announce
    from serving.repository.signing import trusted_keys_from
    from serving.repository.store import ModelStore

    settings = Settings()
    ModelStore(settings.model_dir, trusted_keys_from(settings)).set_traffic(name, table)
    if settings.redis_url:  # servers sharing this registry follow at once, not at their poll
        anyio.run(announce, settings.redis_url, name)
    return table
