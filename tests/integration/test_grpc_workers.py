"""gRPC on a real `serving serve` with 2 workers: every worker answers on the one port,
an alias move reaches every worker's gRPC answers within 2 s, and SIGTERM drains calls.

A gRPC connection stays with the worker that accepted it, so the test opens channels of
their own (no shared subchannel) until it has one on each worker. It learns which worker
holds a channel from that worker's log line of a call sent with a known x-request-id.
"""

import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.grpcapi.protocol import open_inference_pb2 as pb
from serving.grpcapi.protocol.open_inference_pb2_grpc import GRPCInferenceServiceStub
from serving.repository.signing import TrustedKeys
from serving.repository.store import ModelStore
from tests.processes import ServerProcess, free_port, running_server, worker_pids
from tests.uploads import ADMIN, ADMIN_TOKEN, signed_iris

pytestmark = pytest.mark.slow
PROMOTION_BOUND_SECONDS = 2.0
CHANNEL_SEARCH_SECONDS = 30.0  # how long new connections are tried to reach every worker
MAX_CHANNELS_TRIED = 400
IRIS_ROW = np.array([[5.1, 3.5, 1.4, 0.2]])


@pytest.fixture
def registry_with_iris_v2(
    tmp_path: Path, trained_registry: Path, signing_key: Ed25519PrivateKey
) -> Path:
    """The demo models, plus iris v2; production at iris v1."""
    root = tmp_path / "models"
    shutil.copytree(trained_registry, root)
    store = ModelStore(root, TrustedKeys([signing_key.public_key()]))
    signed = signed_iris(trained_registry, signing_key)
    signed.publish_to(store)
    store.set_alias("iris", "production", 1)
    return root


def _env(registry: Path, trusted_key_text: str, tmp_path: Path, port: int) -> dict[str, str]:
    return {
        "SERVING_MODEL_DIR": str(registry),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "no-dev-key.pem"),
        "SERVING_ADMIN_TOKENS": ADMIN_TOKEN,
        "SERVING_GRPC_PORT": str(port),
    }


def _channel(port: int) -> grpc.Channel:
    """A channel with a connection of its own (channels otherwise share subchannels)."""
    return grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
    )


def _worker_of(server: ServerProcess, request_id: str, timeout_seconds: float = 10.0) -> int:
    """The pid in the log line of the call sent with `request_id`."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for line in server.complete_log_lines():
            if line.startswith("{") and f'"request_id":"{request_id}"' in line:
                pid: int = orjson.loads(line)["pid"]
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no log line for the call {request_id}")


def _channels_on_every_worker(
    server: ServerProcess, port: int, workers: set[int]
) -> dict[int, grpc.Channel]:
    """pid -> an open channel to that worker.

    Readiness proves only that one worker serves; another may bind the port a moment later,
    so new connections are tried until every worker has answered one (bounded in time and
    in count).
    """
    found: dict[int, grpc.Channel] = {}
    deadline = time.monotonic() + CHANNEL_SEARCH_SECONDS
    for attempt in range(MAX_CHANNELS_TRIED):
        if time.monotonic() > deadline:
            break
        channel = _channel(port)
        request_id = f"probe-{attempt}"
        stub = GRPCInferenceServiceStub(channel)
        stub.ServerLive(pb.ServerLiveRequest(), metadata=(("x-request-id", request_id),))
        pid = _worker_of(server, request_id)
        if pid in found:
            channel.close()
        else:
            found[pid] = channel
        if set(found) == workers:
            return found
    raise AssertionError(f"new connections reached only workers {sorted(found)} of {workers}")


def _served_version(channel: grpc.Channel) -> str:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP64", shape=[1, 4])
    request.raw_input_contents.append(IRIS_ROW.astype("<f8").tobytes())
    answer: pb.ModelInferResponse = GRPCInferenceServiceStub(channel).ModelInfer(request)
    return answer.model_version


def test_promotion_reaches_every_workers_grpc_answers(
    registry_with_iris_v2: Path, trusted_key_text: str, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(registry_with_iris_v2, trusted_key_text, tmp_path, port)
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        workers = worker_pids(server.process.pid)
        channels = _channels_on_every_worker(server, port, workers)
        before = {pid: _served_version(channel) for pid, channel in channels.items()}

        moved = httpx.put(
            f"{server.url}/models/iris/aliases/production", json={"version": 2}, headers=ADMIN
        )
        promoted_at = time.monotonic()
        seconds_until_v2 = _seconds_until_version(channels, "2", promoted_at)

    assert moved.status_code == 200, moved.text
    assert len(workers) == 2
    assert before == dict.fromkeys(workers, "1")
    assert set(seconds_until_v2) == workers
    assert max(seconds_until_v2.values()) <= PROMOTION_BOUND_SECONDS, seconds_until_v2


def _seconds_until_version(
    channels: dict[int, grpc.Channel], version: str, since: float
) -> dict[int, float]:
    """pid -> seconds after `since` at which that worker's gRPC answer had `version`."""
    seen: dict[int, float] = {}
    deadline = since + 3 * PROMOTION_BOUND_SECONDS
    while len(seen) < len(channels) and time.monotonic() < deadline:
        for pid, channel in channels.items():
            if pid not in seen and _served_version(channel) == version:
                seen[pid] = time.monotonic() - since
        time.sleep(0.01)
    for channel in channels.values():
        channel.close()
    return seen


@pytest.fixture
def drained_server(
    trained_registry: Path, trusted_key_text: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, int]]:
    port = free_port()
    env = _env(trained_registry, trusted_key_text, tmp_path, port)
    env |= {"SERVING_PREDICT_THREADS": "1", "SERVING_CACHE_MAX_ENTRIES": "0"}
    with running_server(env, tmp_path / "server.log", workers=1) as server:
        yield server, port


def test_sigterm_drains_calls_in_flight(drained_server: tuple[ServerProcess, int]) -> None:
    """Calls queued behind one scoring thread when SIGTERM arrives are still answered."""
    server, port = drained_server
    rows = np.random.default_rng(5).normal(14.0, 5.0, size=(10_000, 30))
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    done: list[tuple[float, str]] = []
    lock = threading.Condition()

    def finished(result: Any, error: Any) -> None:
        with lock:
            done.append((time.monotonic(), "OK" if error is None else str(error.status())))
            lock.notify_all()

    calls = 8
    for _ in range(calls):
        client.async_infer("breast_cancer", [tensor], finished)
    with lock:
        assert lock.wait_for(lambda: len(done) >= 1, timeout=60)
    signalled_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    with lock:
        assert lock.wait_for(lambda: len(done) == calls, timeout=60)
    exit_code = server.process.wait(timeout=30)
    client.close()

    assert [outcome for _, outcome in done] == ["OK"] * calls
    assert any(at > signalled_at for at, _ in done), "every call ended before SIGTERM"
    assert exit_code == 0
