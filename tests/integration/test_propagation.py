"""Alias moves reach every worker of every replica under load, with no failed request.

Two real server processes (gunicorn, 2 workers each) share one registry folder, as pods
share a volume; with Redis they also share a real redis-server. Both take continuous
/predict traffic while the production alias is promoted and rolled back five times each.
"""

import os
import signal
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.signing import TrustedKeys
from serving.repository.store import ModelStore
from tests.processes import ServerProcess, running_server, wait_until_ready
from tests.uploads import ADMIN, ADMIN_TOKEN, signed_iris

pytestmark = pytest.mark.slow

# Five promotions each rolled back, then one more, so the final version differs from v1.
_MOVES = [move for i in range(5) for move in (("promote", 2 + i % 2), ("rollback", 1))]
_MOVES.append(("promote", 3))
_LOOPS_PER_REPLICA = 2
_MAX_REQUESTS = 50_000  # a bound on the load besides the stop signal
_MAX_LOAD_SECONDS = 50.0
_ANSWERS_PER_STEP = 20  # answers the load gets before the first move and after each move


@dataclass(frozen=True)
class Answer:
    sent: float  # monotonic
    received: float
    version: int | None  # None: the request failed
    failure: str = ""


@dataclass
class Move:
    version: int
    sent: float  # monotonic, before the management call
    done: float  # monotonic, after its answer
    wall: float  # time.time() before the call, to compare with the servers' log times
    seconds_until_all_serve: float = 0.0


@dataclass
class Replicas:
    servers: list[ServerProcess]
    workers: dict[int, set[int]] = field(default_factory=dict)  # server index -> worker pids


@pytest.fixture
def shared_registry(tmp_path: Path, trained_registry: Path, signing_key: Ed25519PrivateKey) -> Path:
    """iris v1, v2 and v3, production at v1."""
    root = tmp_path / "models"
    root.mkdir()
    store = ModelStore(root, TrustedKeys([signing_key.public_key()]))
    for _ in range(3):
        signed = signed_iris(trained_registry, signing_key)
        signed.publish_to(store)
    store.set_alias("iris", "production", 1)
    return root


def _start_replicas(stack: ExitStack, env: dict[str, str], tmp_path: Path) -> Replicas:
    servers = [
        stack.enter_context(running_server(env, tmp_path / f"replica-{i}.log", ready=False))
        for i in range(2)
    ]
    for server in servers:
        wait_until_ready(server.url)
    replicas = Replicas(servers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replicas.workers = {i: set(_swaps(s, 1)) for i, s in enumerate(servers)}
        if all(len(pids) == 2 for pids in replicas.workers.values()):
            return replicas
        time.sleep(0.1)
    raise AssertionError(f"workers never all served v1: {replicas.workers}")


def _swaps(server: ServerProcess, version: int, after_wall: float = 0.0) -> dict[int, float]:
    """pid -> wall time at which that worker first served `version` after `after_wall`."""
    first: dict[int, float] = {}
    for line in server.complete_log_lines():
        if not line.startswith("{"):
            continue
        record: dict[str, Any] = orjson.loads(line)
        if record.get("event") != "swapped" or record.get("version") != version:
            continue
        at = datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        # log times are truncated to the millisecond
        if at.timestamp() >= after_wall - 0.002 and record["pid"] not in first:
            first[record["pid"]] = at.timestamp()
    return first


async def _load(url: str, answers: list[Answer], stop: anyio.Event, deadline: float) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        count = 0
        while not stop.is_set() and time.monotonic() < deadline and len(answers) < _MAX_REQUESTS:
            body = {"instances": [rows[count % 3]]}
            count += 1
            sent = time.monotonic()
            try:
                response = await client.post("/models/iris/predict", json=body)
            except httpx.HTTPError as exc:
                answers.append(Answer(sent, time.monotonic(), None, repr(exc)))
                continue
            if response.status_code != 200:
                answers.append(Answer(sent, time.monotonic(), None, response.text))
                continue
            answers.append(Answer(sent, time.monotonic(), response.json()["version"]))


async def _move(client: httpx.AsyncClient, kind: str, version: int) -> Move:
    wall, sent = time.time(), time.monotonic()
    if kind == "promote":
        path, body = "/models/iris/aliases/production", {"version": version}
        response = await client.put(path, json=body, headers=ADMIN)
    else:
        response = await client.post("/models/iris/aliases/production/rollback", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == version
    return Move(version, sent, time.monotonic(), wall)


async def _wait_for_every_worker(replicas: Replicas, move: Move, bound_seconds: float) -> None:
    deadline = time.monotonic() + bound_seconds + 3
    while time.monotonic() < deadline:
        swaps = [_swaps(s, move.version, move.wall) for s in replicas.servers]
        if all(set(swaps[i]) >= pids for i, pids in replicas.workers.items()):
            at = [swaps[i][pid] for i, pids in replicas.workers.items() for pid in pids]
            move.seconds_until_all_serve = max(at) - move.wall
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"not every worker served v{move.version} within {bound_seconds + 3}s")


async def _promote_and_roll_back(
    replicas: Replicas, bound_seconds: float
) -> tuple[list[Answer], list[Move]]:
    answers: list[Answer] = []
    moves: list[Move] = []
    stop = anyio.Event()
    deadline = time.monotonic() + _MAX_LOAD_SECONDS
    async with anyio.create_task_group() as load, httpx.AsyncClient(timeout=10) as admin:
        for server in replicas.servers:
            for _ in range(_LOOPS_PER_REPLICA):
                load.start_soon(_load, server.url, answers, stop, deadline)
        await _answered(answers, since=0.0)  # every loop is running
        for index, (kind, version) in enumerate(_MOVES):
            admin.base_url = httpx.URL(replicas.servers[index % 2].url)  # alternate replicas
            move = await _move(admin, kind, version)
            moves.append(move)
            await _wait_for_every_worker(replicas, move, bound_seconds)
            # The load sees the new version before the next move.
            await _answered(answers, since=move.done, version=version)
        stop.set()
    return answers, moves


async def _answered(answers: list[Answer], since: float, version: int | None = None) -> None:
    """Until `_ANSWERS_PER_STEP` answers were sent after `since` (monotonic), all of `version`
    when one is given (bounded: 20 s). Every step adds that much load, so the whole run
    carries more than 200 requests however fast the machine is."""
    enough = _ANSWERS_PER_STEP
    with anyio.fail_after(20):
        while True:
            fresh = [a for a in answers if a.sent >= since]
            if sum(1 for a in fresh if version is None or a.version == version) >= enough:
                return
            await anyio.sleep(0.02)


def _allowed_versions(answer: Answer, moves: list[Move], bound_seconds: float) -> set[int]:
    """What the alias held at some moment a worker could still have been following, from
    `bound_seconds` before the request was sent until its answer arrived."""
    window_start = answer.sent - bound_seconds
    in_effect = 1
    allowed: set[int] = set()
    for move in moves:
        if move.done <= window_start:
            in_effect = move.version
        elif move.sent <= answer.received:
            allowed.add(move.version)
    return allowed | {in_effect}


def _report(label: str, answers: list[Answer], moves: list[Move]) -> None:
    seconds = [move.seconds_until_all_serve for move in moves]
    print(f"\n[{label}] {len(answers)} requests, {len(moves)} alias moves")
    for number, move in enumerate(moves, 1):
        took = seconds[number - 1] * 1000
        print(f"  move {number:2d} -> v{move.version}: every worker serving after {took:7.1f} ms")
    print(f"  max {max(seconds) * 1000:.1f} ms, median {statistics.median(seconds) * 1000:.1f} ms")


def _restart_one_worker(replicas: Replicas, current: int) -> None:
    """Kill a worker outright: its replacement must read today's alias, not v1 from start-up."""
    server = replicas.servers[0]
    victim = min(replicas.workers[0])
    before = time.time()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        fresh = {pid for pid in _swaps(server, current, before) if pid not in replicas.workers[0]}
        if fresh:
            assert not {pid for pid in _swaps(server, 1, before) if pid in fresh}
            return
        time.sleep(0.1)
    raise AssertionError("the replacement worker never served the current version")


def _environment(
    registry: Path, tmp_path: Path, trusted_key_text: str, **extra: str
) -> dict[str, str]:
    return {
        "SERVING_MODEL_DIR": str(registry),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "no-dev-key.pem"),
        "SERVING_ADMIN_TOKENS": ADMIN_TOKEN,
        **extra,
    }


@pytest.fixture
def replicas_env(
    shared_registry: Path, tmp_path: Path, trusted_key_text: str
) -> Iterator[dict[str, str]]:
    yield _environment(shared_registry, tmp_path, trusted_key_text)


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "disk-poll"])
async def test_promotions_and_rollbacks_reach_every_worker_with_no_failed_request(
    request: pytest.FixtureRequest,
    replicas_env: dict[str, str],
    tmp_path: Path,
    with_redis: bool,
) -> None:
    if with_redis:
        # The poll is pushed out of the test's reach: only Redis notices can make it in time.
        extra = {
            "SERVING_REDIS_URL": request.getfixturevalue("redis_url"),
            "SERVING_POLL_INTERVAL_SECONDS": "60",
        }
        bound_seconds = 2.0
    else:
        extra = {"SERVING_POLL_INTERVAL_SECONDS": "1.0"}
        bound_seconds = 1.0 + 1.0  # the poll interval plus one second
    with ExitStack() as stack:
        replicas = _start_replicas(stack, {**replicas_env, **extra}, tmp_path)

        answers, moves = await _promote_and_roll_back(replicas, bound_seconds)
        _restart_one_worker(replicas, moves[-1].version)

    _report("redis" if with_redis else "disk poll", answers, moves)
    failed = [a for a in answers if a.version is None]
    assert not failed, failed[:5]
    inconsistent = [
        a for a in answers if a.version not in _allowed_versions(a, moves, bound_seconds)
    ]
    assert not inconsistent, inconsistent[:5]
    assert all(m.seconds_until_all_serve <= bound_seconds for m in moves)
    assert {a.version for a in answers} == {1, 2, 3}
    assert len(answers) > 200
