"""Real gunicorn workers: one model's garbage alias table never holds back another's promotion.

breast_cancer's aliases.json is garbage before the server starts, iris's becomes garbage
while it runs; diabetes is then promoted on disk. Every worker must serve the new diabetes
version, and iris and breast_cancer keep answering with what they served.
"""

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.aliases import ALIAS_FILE
from serving.repository.signing import TrustedKeys
from serving.repository.store import ModelStore
from tests.processes import ServerProcess, running_server, worker_pids

pytestmark = pytest.mark.slow

GARBAGE = b"\x00{not json"
_WAIT_SECONDS = 60.0


def _workers_serving(server: ServerProcess, model: str, version: int) -> set[int]:
    """pids of the workers whose log says they swapped `model` to `version`."""
    pids = set()
    for line in server.complete_log_lines():
        if not line.startswith("{"):
            continue
        record: dict[str, Any] = orjson.loads(line)
        if (record.get("event"), record.get("model"), record.get("version")) == (
            "swapped",
            model,
            version,
        ):
            pids.add(record["pid"])
    return pids


def _both_workers_started(server: ServerProcess) -> set[int]:
    """Ready means one worker serves; wait (bounded) until both have loaded diabetes v1."""
    deadline = time.monotonic() + _WAIT_SECONDS
    while len(started := _workers_serving(server, "diabetes", 1)) < 2:
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.1)
    assert started == worker_pids(server.process.pid)
    return started


def _versions_answered(url: str, model: str, row: list[float], count: int) -> set[int]:
    versions = set()
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(count):
            answer = client.post(f"/models/{model}/predict", json={"instances": [row]})
            assert answer.status_code == 200, answer.text
            versions.add(answer.json()["version"])
    return versions


def _example(root: Path, model: str) -> list[float]:
    example: list[float] = orjson.loads((root / model / "1" / "manifest.json").read_bytes())[
        "example"
    ]
    return example


def test_a_promotion_reaches_every_worker_while_alias_tables_are_garbage(
    registry_dir: Path, trusted_key_text: str, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    (registry_dir / "breast_cancer" / ALIAS_FILE).write_bytes(GARBAGE)
    env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "no-key.pem"),
        "SERVING_POLL_INTERVAL_SECONDS": "0.2",
    }
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        workers = _both_workers_started(server)
        (registry_dir / "iris" / ALIAS_FILE).write_bytes(GARBAGE)
        shutil.copytree(registry_dir / "diabetes" / "1", registry_dir / "diabetes" / "2")
        store = ModelStore(registry_dir, TrustedKeys([signing_key.public_key()]))
        store.set_alias("diabetes", "production", 2)

        deadline = time.monotonic() + _WAIT_SECONDS
        while _workers_serving(server, "diabetes", 2) != workers:
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.1)

        assert _versions_answered(
            server.url, "diabetes", _example(registry_dir, "diabetes"), 20
        ) == {2}
        assert _versions_answered(server.url, "iris", _example(registry_dir, "iris"), 20) == {1}
        assert "breast_cancer" in httpx.get(f"{server.url}/models", timeout=10).text
