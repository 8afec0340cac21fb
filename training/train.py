"""Train one demo model end to end: data, fit, evaluate, publish; with progress on stderr."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from training.data import load_dataset
from training.evaluate import evaluate
from training.parity import CheckRows
from training.pipelines import build_pipeline
from training.publish import publish


@contextmanager
def _step(model: str, number: int, total: int, what: str) -> Iterator[None]:
    print(f"[{model}] {number}/{total} {what} ...", end="", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    print(f" done in {time.perf_counter() - started:.2f}s", file=sys.stderr, flush=True)


def train(name: str, root: Path, signing_key: Ed25519PrivateKey) -> int:
    """Fit the demo model `name`, evaluate it on its held-out split, publish the next version."""
    with _step(name, 1, 4, "loading the bundled data set"):
        data = load_dataset(name)
    with _step(name, 2, 4, f"fitting on {len(data.x_train)} rows"):
        estimator = build_pipeline(name).fit(data.x_train, data.y_train)
    with _step(name, 3, 4, f"evaluating on {len(data.x_test)} held-out rows"):
        metrics = evaluate(estimator, data)
    with _step(name, 4, 4, "compiling, checking on the held-out rows, signing, publishing"):
        version = publish(
            estimator,
            name=name,
            root=root,
            signing_key=signing_key,
            feature_names=data.feature_names,
            metrics=metrics,
            example=data.x_test[0].tolist(),
            check_rows=CheckRows(data.x_test, "held-out"),
            profile_rows=data.x_train,  # the distribution the model learned, for drift
        )
    shown = ", ".join(f"{key}={value:.4f}" for key, value in metrics.items())
    print(f"[{name}] published version {version} ({shown})", file=sys.stderr)
    return version
