"""Where a registry command acts: the local registry, or a running server named by --url."""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from serving.cli.environment import ADMIN_TOKEN_ENV, admin_token, load_settings
from serving.core.settings import Settings
from serving.remote import RemoteRegistry

if TYPE_CHECKING:  # imported when used: `serving serve` should not load the registry code
    from serving.repository.store import ModelStore


def add_target_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        metavar="URL",
        help="act on the server at URL through its management API "
        "(default: the local registry in SERVING_MODEL_DIR)",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"admin token for --url, one of the server's SERVING_ADMIN_TOKENS "
        f"(default: ${ADMIN_TOKEN_ENV}, which keeps it out of shell history)",
    )


def local_store(settings: Settings) -> "ModelStore":
    from serving.repository.signing import trusted_keys_from
    from serving.repository.store import ModelStore

    return ModelStore(settings.model_dir, trusted_keys_from(settings))


@contextmanager
def target(args: argparse.Namespace) -> Iterator["ModelStore | RemoteRegistry"]:
    """The running server named by --url, or else the local registry."""
    if args.url:
        with RemoteRegistry(args.url, admin_token(args)) as remote:
            yield remote
    else:
        yield local_store(load_settings())


def announce(args: argparse.Namespace, name: str) -> None:
    """After a change to the local registry, tell servers sharing it through Redis (when
    SERVING_REDIS_URL is set) so they follow at once rather than at their next poll."""
    settings = load_settings()
    if args.url or not settings.redis_url:
        return
    import anyio

    from serving.registry.notify import announce as publish_change

    anyio.run(publish_change, settings.redis_url, name)
