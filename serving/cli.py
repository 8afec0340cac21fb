"""The `serving` command: serve, train, push, promote, rollback, models, drift."""

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from serving.core.errors import InvalidInputError, ServingError
from serving.core.metrics import DEFAULT_MULTIPROC_PREFIX, MULTIPROC_ENV
from serving.core.settings import Settings
from serving.remote import ModelListing, RemoteRegistry, read_drift
from serving.repository.aliases import DEFAULT_ALIAS

if TYPE_CHECKING:  # imported lazily: `serve` should not load scikit-learn before exec
    from serving.repository.store import ModelStore
    from training.publish import SignedVersion

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

    push = verbs.add_parser("push", help="sign a model file and publish it as the next version")
    push.add_argument("file", type=Path, metavar="FILE", help="a .joblib or .skops model file")
    push.add_argument("--name", required=True)
    push.add_argument("--promote", metavar="ALIAS", help="point ALIAS at the new version")
    push.add_argument("--format", choices=("joblib", "skops"), default="joblib")
    push.add_argument("--features", help="comma-separated feature names (default: f0, f1, ...)")
    push.add_argument("--example", help="comma-separated example row (default: zeros)")
    push.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="training rows (.csv or .npy) for the drift profile; without it, no drift series",
    )
    _add_remote_flags(push)
    push.set_defaults(run=_push)

    promote = verbs.add_parser("promote", help="point an alias at a version")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--alias", default=DEFAULT_ALIAS)
    _add_remote_flags(promote)
    promote.set_defaults(run=_promote)

    rollback = verbs.add_parser("rollback", help="point an alias back at its previous version")
    rollback.add_argument("name")
    rollback.add_argument("--alias", default=DEFAULT_ALIAS)
    _add_remote_flags(rollback)
    rollback.set_defaults(run=_rollback)

    listing = verbs.add_parser("models", help="list models, versions and aliases")
    _add_remote_flags(listing)
    listing.set_defaults(run=_models)

    drift = verbs.add_parser("drift", help="input drift (PSI) per feature of a model, worst first")
    drift.add_argument("name")
    drift.add_argument("--version", type=int, help="one version (default: every version)")
    drift.add_argument("--url", help="the server to ask (default: http://127.0.0.1:SERVING_PORT)")
    drift.set_defaults(run=_drift)
    return parser


def _add_remote_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running server; default: the local registry")
    parser.add_argument("--token", help="admin token for --url (SERVING_ADMIN_TOKENS there)")


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
    os.execv(sys.executable, [*gunicorn, "serving.api.app:create_app()"])


def _local_store(settings: Settings) -> "ModelStore":
    from serving.repository.signing import trusted_keys_from
    from serving.repository.store import ModelStore

    return ModelStore(settings.model_dir, trusted_keys_from(settings))


def _train(args: argparse.Namespace) -> int:
    from serving.repository.signing import load_or_create_private_key
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


def _push(args: argparse.Namespace) -> int:
    """Sign with the local signing key, then publish locally or upload to --url."""
    signed = _signed_version(args, Settings())
    manifest = signed.manifest
    with _target(args) as target:
        if isinstance(target, RemoteRegistry):
            version = target.upload(manifest, signed.artifact, signed.signature)
        else:
            version = target.publish(manifest, signed.artifact, signed.signature, verify=True)
        print(f"{args.name}: published v{version}")
        if args.promote:
            target.set_alias(args.name, args.promote, version)
            print(f"{args.name}: {args.promote} -> v{version}")
    _announce(args)
    return 0


def _signed_version(args: argparse.Namespace, settings: Settings) -> "SignedVersion":
    from serving.repository.signing import load_or_create_private_key
    from training.publish import prepare, read_estimator
    from training.rows import read_rows

    if not args.file.is_file():
        raise InvalidInputError(f"no such file: {args.file}")
    try:
        profile_rows = None if args.data is None else read_rows(args.data)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read training rows from {args.data}: {exc}") from exc
    try:
        estimator = read_estimator(args.file)
    except ServingError:
        raise
    except Exception as exc:  # unpickling a damaged or foreign file can raise anything
        raise InvalidInputError(f"cannot read a model from {args.file}: {exc!r}") from exc
    try:
        example = [float(v) for v in _comma_list(args.example) or []] or None
        return prepare(
            estimator,
            name=args.name,
            signing_key=load_or_create_private_key(settings.signing_key_file),
            feature_names=_comma_list(args.features),
            example=example,
            artifact_format=args.format,
            profile_rows=profile_rows,
        )
    except (ValueError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidInputError(f"cannot describe {args.file} as {args.name!r}: {exc}") from exc


def _comma_list(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",")] if value else None


@contextmanager
def _target(args: argparse.Namespace) -> Iterator["ModelStore | RemoteRegistry"]:
    """The running server named by --url, or else the local registry."""
    if args.url:
        with RemoteRegistry(args.url, args.token) as remote:
            yield remote
    else:
        yield _local_store(Settings())


def _promote(args: argparse.Namespace) -> int:
    with _target(args) as target:
        target.set_alias(args.name, args.alias, args.version)
    print(f"{args.name}: {args.alias} -> v{args.version}")
    _announce(args)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    with _target(args) as target:
        version = target.rollback(args.name, args.alias)
    print(f"{args.name}: {args.alias} -> v{version}")
    _announce(args)
    return 0


def _announce(args: argparse.Namespace) -> None:
    """After a change to the local registry, tell servers sharing it through Redis (when
    SERVING_REDIS_URL is set) so they follow at once rather than at their next poll."""
    settings = Settings()
    if args.url or not settings.redis_url:
        return
    import anyio

    from serving.registry.notify import announce

    anyio.run(announce, settings.redis_url, args.name)


def _models(args: argparse.Namespace) -> int:
    with _target(args) as target:
        listing = target.listing() if isinstance(target, RemoteRegistry) else _listing(target)
    for model in listing:
        aliases = sorted(model.aliases.items())
        shown = ", ".join(f"{alias}=v{v}" for alias, v in aliases) or "no aliases"
        print(f"{model.name}: versions {model.versions}; {shown}")
    return 0


def _drift(args: argparse.Namespace) -> int:
    url = args.url or f"http://127.0.0.1:{Settings().port}"
    report = read_drift(url, args.name)
    versions = sorted(v for v in report if args.version is None or v == args.version)
    if not versions:
        print(f"{args.name}: no drift series at {url} (no profile, or no inputs yet)")
        return 1
    for version in versions:
        drift = report[version]
        print(f"{args.name} v{version}: {drift.rows} rows in the window")
        for feature, value in drift.worst_first():
            print(f"  {feature:<32} {value:8.4f}")
    return 0


def _listing(store: "ModelStore") -> list[ModelListing]:
    return [
        ModelListing(name, store.versions(name), store.read_aliases(name).aliases)
        for name in store.model_names()
    ]


if __name__ == "__main__":
    sys.exit(main())
