"""A real gunicorn server pushed past its admission limit: probes still answer at once.

The load runs in another process (tests/load.py), so the probe times measured here share
no interpreter with it; the 2 cores are shared by the load, both workers and this test.
"""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.api.test_upload_limits import multipart
from tests.metrics_text import scrape, total
from tests.processes import ServerProcess, running_server, server_environment
from tests.uploads import ADMIN, ADMIN_TOKEN, signed_iris, upload_parts

pytestmark = pytest.mark.slow

LOAD_SECONDS = 6.0
PROBE_BOUND_SECONDS = 1.0


@pytest.fixture
def server(registry_dir: Path, trusted_key_text: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_ADMIN_TOKENS": ADMIN_TOKEN,
        "SERVING_MAX_INFLIGHT": "8",
        "SERVING_CACHE_MAX_ENTRIES": "0",  # every request reaches the forest
    }
    with running_server(env, tmp_path / "server.log") as started:
        yield started


def test_live_and_ready_answer_within_a_second_while_the_workers_shed(
    server: ServerProcess,
) -> None:
    load_args = [server.url, str(LOAD_SECONDS), "48", "breast_cancer", "32"]
    load = subprocess.Popen(
        [sys.executable, "-m", "tests.load", *load_args],
        env=server_environment({}),
        stdout=subprocess.PIPE,
    )
    probes: list[tuple[str, int, float]] = []
    try:
        _wait_for_shedding(server.url)
        deadline = time.monotonic() + LOAD_SECONDS / 2
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while time.monotonic() < deadline:
                for path in ("/health/live", "/health/ready"):
                    started = time.monotonic()
                    status = client.get(path).status_code
                    probes.append((path, status, time.monotonic() - started))
                time.sleep(0.05)
        shed_during_probes = total(scrape(server.url), "serving_requests_shed_total")
        out, _ = load.communicate(timeout=LOAD_SECONDS + 60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    statuses = {int(s): n for s, n in json.loads(out).items()}

    assert len(probes) >= 20, probes
    assert {status for _, status, _ in probes} == {200}
    slowest = max(seconds for _, _, seconds in probes)
    assert slowest < PROBE_BOUND_SECONDS, f"slowest probe {slowest:.3f}s"
    assert shed_during_probes > 0
    assert set(statuses) <= {200, 503}, statuses  # shed or answered, nothing else
    assert statuses.get(200, 0) > 0 and statuses.get(503, 0) > 0


def _wait_for_shedding(url: str, timeout_seconds: float = 30.0) -> None:
    """Until the load has pushed a worker past its limit: the shed counter moved."""
    deadline = time.monotonic() + timeout_seconds
    while total(scrape(url), "serving_requests_shed_total") == 0:
        if time.monotonic() > deadline:
            raise AssertionError("the load never made the server shed")
        time.sleep(0.05)


def test_a_chunked_upload_over_its_limit_is_413_from_gunicorn(
    registry_dir: Path, trusted_key_text: str, tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    signed = signed_iris(registry_dir, signing_key)
    big = upload_parts(signed.manifest, signed.artifact + b"\0" * 200_000, signed.signature)
    body, content_type = multipart(big)
    env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_ADMIN_TOKENS": ADMIN_TOKEN,
        "SERVING_MAX_UPLOAD_BYTES": str(len(signed.artifact) + 4096),
    }

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    with running_server(env, tmp_path / "server.log", workers=1) as started:
        refused = httpx.post(
            f"{started.url}/models/iris/versions",
            content=chunks(),
            headers={**ADMIN, "content-type": content_type},
            timeout=30,
        )

    assert "content-length" not in refused.request.headers
    assert refused.request.headers["transfer-encoding"] == "chunked"
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "body_too_large"
    assert sorted(p.name for p in (registry_dir / "iris").iterdir() if p.name.isdigit()) == ["1"]
