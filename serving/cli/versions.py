"""Moving aliases and versions: promote, rollback, delete-alias, delete-version, models."""

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from serving.cli.targets import add_target_flags, announce, target
from serving.remote import ModelListing, RemoteRegistry
from serving.repository.aliases import DEFAULT_ALIAS

if TYPE_CHECKING:
    from serving.repository.store import ModelStore

_ALIAS_HELP = f"the alias (default: {DEFAULT_ALIAS})"


def add_commands(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    promote = add_parser("promote", help="point an alias at a version")
    promote.add_argument("name", metavar="NAME", help="the model")
    promote.add_argument("version", type=int, metavar="VERSION", help="the version to serve")
    promote.add_argument("--alias", default=DEFAULT_ALIAS, help=_ALIAS_HELP)
    add_target_flags(promote)
    promote.set_defaults(run=promote_version)

    rollback = add_parser("rollback", help="point an alias back at the version it held before")
    rollback.add_argument("name", metavar="NAME", help="the model")
    rollback.add_argument("--alias", default=DEFAULT_ALIAS, help=_ALIAS_HELP)
    add_target_flags(rollback)
    rollback.set_defaults(run=roll_back)

    unalias = add_parser("delete-alias", help="remove an alias (its version stays)")
    unalias.add_argument("name", metavar="NAME", help="the model")
    unalias.add_argument("alias", metavar="ALIAS", help="the alias to remove")
    add_target_flags(unalias)
    unalias.set_defaults(run=delete_alias)

    delete = add_parser(
        "delete-version", help="delete a version no alias points at; its number is never reused"
    )
    delete.add_argument("name", metavar="NAME", help="the model")
    delete.add_argument("version", type=int, metavar="VERSION", help="the version to delete")
    add_target_flags(delete)
    delete.set_defaults(run=delete_version)

    listing = add_parser("models", help="list models, versions and aliases")
    add_target_flags(listing)
    listing.set_defaults(run=list_models)


def promote_version(args: argparse.Namespace) -> int:
    with target(args) as registry:
        registry.set_alias(args.name, args.alias, args.version)
    print(f"{args.name}: {args.alias} -> v{args.version}")
    announce(args, args.name)
    return 0


def roll_back(args: argparse.Namespace) -> int:
    with target(args) as registry:
        version = registry.rollback(args.name, args.alias)
    print(f"{args.name}: {args.alias} -> v{version}")
    announce(args, args.name)
    return 0


def delete_alias(args: argparse.Namespace) -> int:
    with target(args) as registry:
        registry.remove_alias(args.name, args.alias)
    print(f"{args.name}: {args.alias} removed")
    announce(args, args.name)
    return 0


def delete_version(args: argparse.Namespace) -> int:
    with target(args) as registry:
        registry.delete_version(args.name, args.version)
    print(f"{args.name}: v{args.version} deleted")
    announce(args, args.name)
    return 0


def list_models(args: argparse.Namespace) -> int:
    with target(args) as registry:
        if isinstance(registry, RemoteRegistry):
            listing = registry.listing()
        else:
            listing = _local_listing(registry)
    for model in listing:
        aliases = sorted(model.aliases.items())
        shown = ", ".join(f"{alias}=v{v}" for alias, v in aliases) or "no aliases"
        print(f"{model.name}: versions {model.versions}; {shown}")
    return 0


def _local_listing(store: "ModelStore") -> list[ModelListing]:
    return [
        ModelListing(name, store.versions(name), store.read_aliases(name).aliases)
        for name in store.model_names()
    ]
