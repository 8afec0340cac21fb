"""SIGKILL a gunicorn worker under load: the master replaces it, and the replacement serves
the versions the aliases point at when it starts.

The registry poller is turned off (a one-hour interval), so a worker only learns of an
alias move by starting: after `production` moves from v1 to v2, the surviving original
worker keeps answering v1, and every v2 answer comes from a replacement worker. The
workers are forked from a master that imported the app (preload_app), which must not
pin them to anything the master saw.

Every request opens its own connection, so a request fails only if the killed worker had
accepted it: at most one per client thread. The failures are counted and reported.
"""

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.signing import TrustedKeys, parse_public_key
from serving.repository.store import ModelStore
from tests.processes import running_server, worker_pids
from training.train import train

pytestmark = pytest.mark.slow

CLIENTS = 4
MAX_REQUESTS = 3_000  # the load stops at this many requests, or after LOAD_SECONDS
LOAD_SECONDS = 20.0
BODY = {"model": "iris", "instances": [[5.1, 3.5, 1.4, 0.2]]}
# What a client sees when the worker holding its connection dies mid-request.
DROPPED = ("RemoteProtocolError", "ReadError", "WriteError")

Outcome = int | str  # the version that answered, or what went wrong


def _one_request(url: str, client: httpx.Client | None = None) -> Outcome:
    try:
        if client is None:
            response = httpx.post(f"{url}/predict", json=BODY, timeout=10)
        else:
            response = client.post(f"{url}/predict", json=BODY)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    version: int = response.json()["version"]
    return version


@contextlib.contextmanager
def _load(url: str) -> Iterator[list[Outcome]]:
    """CLIENTS threads posting one request per connection until the block ends (bounded)."""
    outcomes: list[Outcome] = []
    stop = threading.Event()
    deadline = time.monotonic() + LOAD_SECONDS

    def run_client() -> None:
        no_keepalive = httpx.Limits(max_keepalive_connections=0)  # a connection per request
        with httpx.Client(limits=no_keepalive, timeout=10) as client:
            while not stop.is_set() and len(outcomes) < MAX_REQUESTS:
                if time.monotonic() > deadline:
                    return
                outcomes.append(_one_request(url, client))

    threads = [threading.Thread(target=run_client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _replacement(master_pid: int, gone: int, others: set[int]) -> int:
    """Waits until the master has replaced the worker `gone`; returns the new worker's PID."""
    found: set[int] = set()

    def replaced() -> bool:
        nonlocal found
        found = worker_pids(master_pid) - others - {gone}
        return len(found) == 1

    _wait_for(replaced, f"a replacement for worker {gone}")
    return found.pop()


def _two_versions(root: Path, signing_key: Ed25519PrivateKey, trusted_key: str) -> ModelStore:
    """iris v1 and v2 in the registry, `production` on v1."""
    train("iris", root, signing_key)
    store = ModelStore(root, TrustedKeys([parse_public_key(trusted_key)]))
    assert store.versions("iris") == [1, 2]
    store.set_alias("iris", "production", 1)
    return store


def test_killed_worker_is_replaced_by_one_serving_the_current_aliases(
    registry_dir: Path, signing_key: Ed25519PrivateKey, trusted_key_text: str, tmp_path: Path
) -> None:
    store = _two_versions(registry_dir, signing_key, trusted_key_text)
    env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_POLL_INTERVAL_SECONDS": "3600",
        "SERVING_CACHE_MAX_ENTRIES": "0",
    }
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        master = server.process.pid
        # Ready means one worker answers; the other may still be forking or loading v1.
        started = "Application startup complete"
        _wait_for(lambda: server.log().count(started) >= 2, "both workers to load v1", 60)
        victim, survivor = sorted(worker_pids(master))
        assert {_one_request(server.url) for _ in range(10)} == {1}
        store.set_alias("iris", "production", 2)  # after the workers loaded v1

        with _load(server.url) as outcomes:
            _wait_for(lambda: len(outcomes) >= 100, "load to build up")
            os.kill(victim, signal.SIGKILL)
            killed_at = len(outcomes)
            replacement = _replacement(master, victim, {survivor})
            _wait_for(lambda: 2 in outcomes[killed_at:], "an answer from the replacement")
            # The survivor may still be answering v1; give the replacement some more traffic.
            served_by_replacement = outcomes[killed_at:].count(2)
            _wait_for(lambda: outcomes[killed_at:].count(2) >= served_by_replacement + 20, "load")

        failures = [o for o in outcomes if isinstance(o, str)]
        print(f"{len(outcomes)} requests, {len(failures)} failed: {failures}")
        assert all(failure in DROPPED for failure in failures), failures
        assert len(failures) <= CLIENTS, failures  # at most one in flight per client
        assert 1 in outcomes[killed_at:], "the survivor stopped answering while it was replaced"

        # Replace the last original worker too: now every answer comes from a replacement.
        os.kill(survivor, signal.SIGKILL)
        _replacement(master, survivor, {replacement})
        assert [_one_request(server.url) for _ in range(40)] == [2] * 40
        assert server.process.poll() is None, server.log()
