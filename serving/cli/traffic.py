"""`serving traffic`: split a model's requests between aliases by weight, and shadow them."""

import argparse
from collections.abc import Callable

from pydantic import ValidationError

from serving.cli.targets import add_target_flags, announce, target
from serving.core.errors import InvalidInputError
from serving.remote import RemoteRegistry
from serving.repository.traffic import TrafficTable


def add_commands(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    traffic = add_parser(
        "traffic", help="split requests between aliases by weight, and shadow them"
    )
    traffic.add_argument("name", metavar="NAME", help="the model")
    traffic.add_argument(
        "weights",
        nargs="*",
        metavar="ALIAS=WEIGHT",
        help="whole-number weights over existing aliases, summing to 100",
    )
    traffic.add_argument(
        "--shadow", metavar="ALIAS", help="an alias that scores a copy of each routed request"
    )
    traffic.add_argument(
        "--clear", action="store_true", help="back to production alone, with no shadow"
    )
    add_target_flags(traffic)
    traffic.set_defaults(run=set_traffic)


def set_traffic(args: argparse.Namespace) -> int:
    table = _requested(args)
    with target(args) as registry:
        if isinstance(registry, RemoteRegistry):
            stored = registry.set_traffic(args.name, table)
        else:
            registry.set_traffic(args.name, table)
            stored = table
    announce(args, args.name)
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
