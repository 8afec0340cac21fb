"""`serving train` and `serving push`: sign a model and publish it as the next version."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from serving.cli.environment import load_settings
from serving.cli.targets import add_target_flags, announce, local_store, target
from serving.core.errors import InvalidInputError, ServingError
from serving.core.settings import Settings
from serving.remote import RemoteRegistry
from serving.repository.names import check_alias_name

if TYPE_CHECKING:  # imported when used: scikit-learn takes a second to import
    from training.publish import SignedVersion

# The bundled data sets of training/data.py (a test keeps the two lists equal).
DEMO_MODELS = ("iris", "breast_cancer", "diabetes")


def add_commands(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    train = add_parser("train", help="train demo models and publish the next version")
    train.add_argument(
        "names",
        nargs="*",
        type=_demo_model,
        metavar="NAME",
        help=f"demo model to train: {', '.join(DEMO_MODELS)}",
    )
    train.add_argument("--all", action="store_true", help="train every demo model")
    train.add_argument(
        "--if-empty", action="store_true", help="skip models that already have a version"
    )
    train.add_argument("--promote", metavar="ALIAS", help="point ALIAS at the new version")
    train.set_defaults(run=train_demo_models)

    push = add_parser("push", help="sign a model file and publish it as the next version")
    push.add_argument("file", type=Path, metavar="FILE", help="a .joblib or .skops model file")
    push.add_argument("--name", required=True, help="the model to publish FILE as")
    push.add_argument("--promote", metavar="ALIAS", help="point ALIAS at the new version")
    push.add_argument(
        "--format",
        choices=("joblib", "skops"),
        default="joblib",
        help="how FILE is serialised (default: joblib)",
    )
    push.add_argument("--features", help="comma-separated feature names (default: f0, f1, ...)")
    push.add_argument("--example", help="comma-separated example row (default: zeros)")
    push.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="training rows (.npy, or CSV without labels; the first 10,000 are read): the "
        "compiled form must agree on them, and they give the drift profile (without --data, "
        "the version has no drift series)",
    )
    add_target_flags(push)
    push.set_defaults(run=push_file)


def _demo_model(name: str) -> str:
    if name not in DEMO_MODELS:
        raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(DEMO_MODELS)}")
    return name


def train_demo_models(args: argparse.Namespace) -> int:
    from serving.repository.signing import load_or_create_private_key
    from training.train import train

    settings = load_settings()
    names = DEMO_MODELS if args.all else tuple(args.names)
    if not names:
        print("error: name a model or pass --all", file=sys.stderr)
        return 2
    if args.promote:
        check_alias_name(args.promote)  # before anything is trained and published
    key = load_or_create_private_key(settings.signing_key_file)
    store = local_store(settings)
    for name in names:
        if args.if_empty and store.versions(name):
            print(f"[{name}] already has versions; skipped", file=sys.stderr)
            continue
        version = train(name, settings.model_dir, key)
        if args.promote:
            store.set_alias(name, args.promote, version)
            print(f"[{name}] {args.promote} -> v{version}", file=sys.stderr)
    return 0


def push_file(args: argparse.Namespace) -> int:
    """Sign with the local signing key, then publish locally or upload to --url."""
    if args.promote:
        check_alias_name(args.promote)  # before anything is published
    signed = _signed_version(args, load_settings())
    manifest = signed.manifest
    with target(args) as registry:
        if isinstance(registry, RemoteRegistry):
            version = registry.upload(manifest, signed.artifact, signed.signature, signed.compiled)
        else:
            version = signed.publish_to(registry)
        print(f"{args.name}: published v{version}")
        if args.promote:
            registry.set_alias(args.name, args.promote, version)
            print(f"{args.name}: {args.promote} -> v{version}")
    announce(args, args.name)
    return 0


def _signed_version(args: argparse.Namespace, settings: Settings) -> "SignedVersion":
    from serving.repository.signing import load_or_create_private_key
    from training.parity import read_rows
    from training.publish import prepare, read_estimator

    if not args.file.is_file():
        raise InvalidInputError(f"no such file: {args.file}")
    try:
        estimator = read_estimator(args.file)
    except ServingError:
        raise
    except Exception as exc:  # unpickling a damaged or foreign file can raise anything
        raise InvalidInputError(f"cannot read a model from {args.file}: {exc!r}") from exc
    signing_key = load_or_create_private_key(settings.signing_key_file)
    try:
        example = [float(v) for v in _comma_list(args.example) or []] or None
        rows = read_rows(args.data, int(estimator.n_features_in_)) if args.data else None
        return prepare(
            estimator,
            name=args.name,
            signing_key=signing_key,
            feature_names=_comma_list(args.features),
            example=example,
            artifact_format=args.format,
            check_rows=rows,
            profile_rows=None if rows is None else rows.rows,  # one file feeds both
        )
    except (ValueError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidInputError(f"cannot describe {args.file} as {args.name!r}: {exc}") from exc


def _comma_list(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",")] if value else None
