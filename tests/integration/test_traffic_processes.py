"""Traffic across real processes: two replicas (gunicorn, 2 workers each) share one registry.

A change made with `serving traffic` (through one replica's API, or on the shared folder)
reaches every worker of both replicas within 2 seconds, and a routing key lands on the
same version in every worker of every replica, the one this test process computes too.
"""

import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from serving.registry.traffic import choose_alias
from tests.processes import ServerProcess, run_cli, running_server
from tests.traffic_versions import IRIS_ROWS
from tests.uploads import ADMIN_TOKEN

pytestmark = pytest.mark.slow

_BOUND_SECONDS = 2.0
_VERSIONS = {"production": 1, "canary": 2}


def _events(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    records = (orjson.loads(line) for line in server.complete_log_lines() if line[:1] == "{")
    return [record for record in records if record.get("event") == event]


def _wall(record: dict[str, Any]) -> float:
    at = datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return at.timestamp()


def _workers(servers: list[ServerProcess]) -> set[int]:
    """Every worker pid of both replicas, once each has loaded iris."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        per_server = [
            {r["pid"] for r in _events(s, "swapped") if r["model"] == "iris"} for s in servers
        ]
        if all(len(pids) == 2 for pids in per_server):
            return per_server[0] | per_server[1]
        time.sleep(0.1)
    raise AssertionError("the workers never all loaded iris")


def _seconds_until_every_worker_follows(
    servers: list[ServerProcess], workers: set[int], weights: dict[str, int], since: float
) -> float:
    deadline = time.monotonic() + _BOUND_SECONDS + 3
    while time.monotonic() < deadline:
        followed: dict[int, float] = {}
        for server in servers:
            for record in _events(server, "traffic"):
                if record["weights"] == weights and _wall(record) >= since - 0.002:
                    followed.setdefault(record["pid"], _wall(record))
        if set(followed) >= workers:
            return max(followed[pid] for pid in workers) - since
        time.sleep(0.02)
    raise AssertionError(f"not every worker followed {weights} within {_BOUND_SECONDS + 3}s")


@pytest.fixture
def environment(traffic_registry: Path, tmp_path: Path, trusted_key_text: str) -> dict[str, str]:
    return {
        "SERVING_MODEL_DIR": str(traffic_registry),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "no-dev-key.pem"),
        "SERVING_ADMIN_TOKENS": ADMIN_TOKEN,
        "SERVING_POLL_INTERVAL_SECONDS": "1.0",
    }


@pytest.fixture
def replicas(environment: dict[str, str], tmp_path: Path) -> Iterator[list[ServerProcess]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(running_server(environment, tmp_path / f"replica-{i}.log"))
            for i in range(2)
        ]


def _put_answered_at(server: ServerProcess) -> float:
    lines = (orjson.loads(line) for line in server.complete_log_lines() if line[:1] == "{")
    puts = [
        r for r in lines if r.get("path") == "/models/iris/traffic" and r.get("method") == "PUT"
    ]
    assert len(puts) == 1
    return _wall(puts[0])


def _versions_by_key(url: str, keys: list[str]) -> dict[str, int]:
    """One request per key, each on a fresh connection, so the workers take turns."""
    seen: dict[str, int] = {}
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=10, limits=no_reuse) as client:
        for key in keys:
            answer = client.post(
                "/models/iris/predict",
                json={"instances": IRIS_ROWS[:1]},
                headers={"X-Routing-Key": key},
            )
            assert answer.status_code == 200, answer.text
            seen[key] = answer.json()["version"]
    return seen


def test_a_split_reaches_every_worker_and_keys_stick_across_replicas(
    replicas: list[ServerProcess], environment: dict[str, str]
) -> None:
    workers = _workers(replicas)
    weights = {"production": 50, "canary": 50}

    done = run_cli(
        environment,
        *("traffic", "iris", "production=50", "canary=50", "--shadow", "canary"),
        *("--url", replicas[0].url, "--token", ADMIN_TOKEN),
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "iris: production=50 canary=50; shadow canary"
    since = _put_answered_at(replicas[0])  # the CLI's own start-up is not the server's time
    took = _seconds_until_every_worker_follows(replicas, workers, weights, since)
    print(f"\nsplit followed by all {len(workers)} workers after {took * 1000:.0f} ms")
    assert took <= _BOUND_SECONDS

    keys = [f"user-{i}" for i in range(100)]
    expected = {key: _VERSIONS[choose_alias(weights, key)] for key in keys}
    for _ in range(2):
        for server in replicas:
            assert _versions_by_key(server.url, keys) == expected
    assert set(expected.values()) == {1, 2}


def test_the_cli_on_the_shared_folder_clears_the_split_everywhere_and_refuses_bad_weights(
    replicas: list[ServerProcess], environment: dict[str, str], traffic_registry: Path
) -> None:
    workers = _workers(replicas)
    set_up = run_cli(environment, "traffic", "iris", "production=10", "canary=90")
    assert set_up.returncode == 0, set_up.stderr
    written = (traffic_registry / "iris" / "traffic.json").stat().st_mtime
    split = {"production": 10, "canary": 90}
    assert _seconds_until_every_worker_follows(replicas, workers, split, written) <= 2.0
    stored = (traffic_registry / "iris" / "traffic.json").read_bytes()

    for refused in (
        ["production=90", "canary=20"],
        ["production=90", "canary=10.0"],
        ["production=90", "staging=10"],
        ["production=100", "--shadow", "nosuch"],
        [],
    ):
        done = run_cli(environment, "traffic", "iris", *refused)
        assert done.returncode != 0, refused
        assert done.stderr.startswith(("error:", "usage:")), done.stderr
        assert (traffic_registry / "iris" / "traffic.json").read_bytes() == stored

    started = time.time()
    cleared = run_cli(environment, "traffic", "iris", "--clear")
    exited = time.time()

    assert cleared.returncode == 0, cleared.stderr
    # The file goes somewhere between the CLI's start and its exit: bound from the exit.
    took = _seconds_until_every_worker_follows(replicas, workers, {"production": 100}, started)
    assert took <= exited - started + _BOUND_SECONDS
    assert not (traffic_registry / "iris" / "traffic.json").exists()
