"""The `serving` command: serve, train, push, promote, rollback, models."""

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from serving.aliases import DEFAULT_ALIAS
from serving.errors import ServingError
from serving.metrics import DEFAULT_MULTIPROC_PREFIX, MULTIPROC_ENV
from serving.settings import Settings
from serving.signing import trusted_keys_from
from serving.store import ModelStore

_GUNICORN_CONF = Path(__file__).with_name("gunicorn_conf.py")
DEMO_MODELS = ("iris", "breast_cancer", "diabetes")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serving", description=__doc__)
    verbs = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = verbs.add_parser("serve", help="run the server (gunicorn with uvicorn workers)")
    serve.add_argument("--workers", type=int)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)

    train = verbs.add_parser("train", help="train demo models and publish the next version")
    train.add_argument("names", nargs="*", choices=[[], *DEMO_MODELS], metavar="NAME")
    train.add_argument("--all", action="store_true", help="every demo model")
    train.add_argument("--if-empty", action="store_true", help="skip models that have versions")
    train.add_argument("--promote", metavar="ALIAS", help="point ALIAS at the new version")
    train.set_defaults(run=_train)

    promote = verbs.add_parser("promote", help="point an alias at a version")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--alias", default=DEFAULT_ALIAS)
    promote.set_defaults(run=_promote)

    rollback = verbs.add_parser("rollback", help="point an alias back at its previous version")
    rollback.add_argument("name")
    rollback.add_argument("--alias", default=DEFAULT_ALIAS)
    rollback.set_defaults(run=_rollback)

    listing = verbs.add_parser("models", help="list models, versions and aliases")
    listing.set_defaults(run=_models)
    return parser


def _serve(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn; flags become SERVING_* so the config file sees them."""
    for flag in ("workers", "host", "port"):
        value = getattr(args, flag)
        if value is not None:
            os.environ[f"SERVING_{flag.upper()}"] = str(value)
    if Settings().workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Several workers need shared metric files, or each scrape sees one worker's counts.
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix=DEFAULT_MULTIPROC_PREFIX)
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(_GUNICORN_CONF)]
    os.execv(sys.executable, [*gunicorn, "serving.app:create_app()"])


def _local_store(settings: Settings) -> ModelStore:
    return ModelStore(settings.model_dir, trusted_keys_from(settings))


def _train(args: argparse.Namespace) -> int:
    from serving.signing import load_or_create_private_key
    from training.train import train

    settings = Settings()
    names = DEMO_MODELS if args.all else tuple(args.names)
    if not names:
        print("error: name a model or pass --all", file=sys.stderr)
        return 2
    key = load_or_create_private_key(settings.signing_key_file)
    store = _local_store(settings)
    for name in names:
        if args.if_empty and store.versions(name):
            print(f"[{name}] already has versions; skipped", file=sys.stderr)
            continue
        version = train(name, settings.model_dir, key)
        if args.promote:
            store.set_alias(name, args.promote, version)
            print(f"[{name}] {args.promote} -> v{version}", file=sys.stderr)
    return 0


def _promote(args: argparse.Namespace) -> int:
    _local_store(Settings()).set_alias(args.name, args.alias, args.version)
    print(f"{args.name}: {args.alias} -> v{args.version}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    version = _local_store(Settings()).rollback(args.name, args.alias)
    print(f"{args.name}: {args.alias} -> v{version}")
    return 0


def _models(args: argparse.Namespace) -> int:
    store = _local_store(Settings())
    for name in store.model_names():
        aliases = store.read_aliases(name).aliases
        shown = ", ".join(f"{alias}=v{v}" for alias, v in sorted(aliases.items())) or "no aliases"
        print(f"{name}: versions {store.versions(name)}; {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
