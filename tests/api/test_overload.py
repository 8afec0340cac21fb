"""Admission control and deadlines over HTTP: 503 overloaded, 504 timeout, probes unaffected.

Requests are held in flight in two real ways: a client that has not finished sending its
body (an async generator body that waits), and an estimator call held inside `predict`
(tests/estimators.py).
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import estimators
from tests.conftest import ClientFactory, SettingsFactory
from tests.metrics_text import parse, total

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
BOUND_SECONDS = 5.0  # hang guard for answers that must come early


class HeldBody:
    """A request body sent in two parts; the second waits until `release` is set.

    `entered` is set once the app asked for the second part: the request was admitted and
    its handler is reading. `pulled` stays False for a request the app never read.
    """

    def __init__(self, release: anyio.Event) -> None:
        self.release, self.entered, self.pulled = release, anyio.Event(), False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.pulled = True
        yield b'{"instances": '
        self.entered.set()
        await self.release.wait()
        yield b"[[5.1, 3.5, 1.4, 0.2]]}"


@pytest.fixture
def marked(registry_dir: Path, signing_key: Ed25519PrivateKey) -> Iterator[None]:
    estimators.publish_marked(registry_dir, signing_key)
    estimators.reset()
    yield
    estimators.GATE.set()  # never leave a scoring thread waiting
    estimators.reset()


async def _shed(client: httpx.AsyncClient, reason: str) -> float:
    samples = parse((await client.get("/metrics")).text)
    return total(samples, "serving_requests_shed_total", reason=reason)


async def test_requests_beyond_max_inflight_are_shed_unread_with_retry_after(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    release = anyio.Event()
    held = [HeldBody(release), HeldBody(release)]
    answers: list[httpx.Response] = []
    async with client_for(settings_for(max_inflight=2)) as client, anyio.create_task_group() as tg:

        async def send_held(body: HeldBody) -> None:
            answers.append(await client.post("/models/iris/predict", content=body))

        for body in held:
            tg.start_soon(send_held, body)
        with anyio.fail_after(BOUND_SECONDS):
            for body in held:
                await body.entered.wait()
        unread = HeldBody(anyio.Event())
        refused = await client.post("/models/iris/predict", content=unread)
        refused_v2 = await client.post("/v2/models/iris/infer", json={"inputs": []})
        refused_any = await client.post("/predict", json={"instances": [IRIS_ROW]})
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        shed_while_full = await _shed(client, "overloaded")
        release.set()

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    assert "SERVING_MAX_INFLIGHT" in refused.json()["error"]["message"]
    assert not unread.pulled  # refused before a byte of its body was read
    assert refused_v2.status_code == 503
    assert set(refused_v2.json()) == {"error"} and isinstance(refused_v2.json()["error"], str)
    assert refused_v2.headers["retry-after"] == "1"
    assert refused_any.status_code == 503
    assert (live.status_code, ready.status_code) == (200, 200)
    assert shed_while_full == 3
    assert [a.status_code for a in answers] == [200, 200]


async def test_slots_free_again_once_answers_are_sent(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for(max_inflight=1)) as client:
        statuses = [
            (await client.post("/models/iris/predict", json={"instances": [IRIS_ROW]})).status_code
            for _ in range(5)
        ]
        shed = await _shed(client, "overloaded")

    assert statuses == [200] * 5
    assert shed == 0


async def test_a_body_not_sent_within_the_deadline_is_504(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    never = HeldBody(anyio.Event())
    async with client_for(settings_for(request_timeout_seconds=0.3)) as client:
        with anyio.fail_after(BOUND_SECONDS):
            answer = await client.post("/models/iris/predict", content=never)
        timed_out = await _shed(client, "timeout")

    assert never.entered.is_set()
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "timeout"
    assert "SERVING_REQUEST_TIMEOUT_SECONDS" in answer.json()["error"]["message"]
    assert timed_out == 1


@pytest.mark.parametrize("batching", [True, False])
@pytest.mark.usefixtures("marked")
async def test_a_request_whose_deadline_passes_while_queued_is_never_scored(
    client_for: ClientFactory, settings_for: SettingsFactory, batching: bool
) -> None:
    settings = settings_for(
        request_timeout_seconds=0.5, predict_threads=1, batching=batching, cache_max_entries=0
    )
    queued_marker = 6.25
    async with client_for(settings) as client, anyio.create_task_group() as tg:
        answers: dict[str, httpx.Response] = {}

        async def send(key: str, first: float, path: str = "/models/marked/predict") -> None:
            body: dict[str, Any] = {"instances": [[first, 3.5, 1.4, 0.2]]}
            if path.startswith("/v2"):
                body = {"inputs": [_fp64([first, 3.5, 1.4, 0.2])]}
            answers[key] = await client.post(path, json=body)

        with anyio.fail_after(BOUND_SECONDS):  # 504s come at the deadline, not when released
            tg.start_soon(send, "running", estimators.HOLD)
            await anyio.to_thread.run_sync(estimators.ENTERED.wait, BOUND_SECONDS)
            async with anyio.create_task_group() as queued:
                queued.start_soon(send, "queued", queued_marker)
                queued.start_soon(send, "queued_v2", queued_marker, "/v2/models/marked/infer")
        assert not estimators.GATE.is_set()
        estimators.GATE.set()
        await send("after", 5.0)

    assert answers["running"].status_code == 504
    assert answers["queued"].status_code == 504
    assert answers["queued"].json()["error"]["code"] == "timeout"
    assert answers["queued_v2"].status_code == 504
    assert isinstance(answers["queued_v2"].json()["error"], str)
    assert answers["after"].status_code == 200  # scored after the held call: the queue moved
    scored_firsts = {float(v) for matrix in estimators.CALLS for v in matrix[:, 0]}
    assert 5.0 in scored_firsts
    assert queued_marker not in scored_firsts


def _fp64(row: list[float]) -> dict[str, object]:
    return {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}
