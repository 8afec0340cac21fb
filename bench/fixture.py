"""A freshly trained registry and a real `serving serve` for benchmarks."""

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.signing import public_key_text
from tests.processes import ServerProcess, running_server, wait_until_ready
from training.train import train

DEMO_MODELS = ("iris", "breast_cancer", "diabetes")


@contextlib.contextmanager
def trained_server(workers: int, **settings: str) -> Iterator[ServerProcess]:
    """Trains the demo models into a temporary registry and serves them on loopback."""
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as scratch:
        root, key = Path(scratch), Ed25519PrivateKey.generate()
        for name in DEMO_MODELS:
            train(name, root / "models", key)
        env = {
            "SERVING_MODEL_DIR": str(root / "models"),
            "SERVING_TRUSTED_KEYS": public_key_text(key.public_key()),
            "SERVING_SIGNING_KEY_FILE": str(root / "no-key.pem"),
            "SERVING_LOG_LEVEL": "warning",
            **settings,
        }
        with running_server(env, root / "server.log", workers=workers) as server:
            wait_until_ready(server.url)
            yield server
