"""The soak's clients: mixed predictions, garbage, bursts; every answer tallied and checked.

Checks: no 5xx other than 503 and 504; a request pinned to a version is answered by that
version; a request naming no version is answered by a version that was `production` at
some point between 2.5 s before it was sent (the contract's propagation bound, plus
margin) and its answer.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

IRIS = [5.1, 3.5, 1.4, 0.2]
PROPAGATION_SECONDS = 2.5


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    bad_5xx: list[str] = field(default_factory=list)
    wrong_version: list[str] = field(default_factory=list)
    garbage_2xx: list[str] = field(default_factory=list)
    defaults: list[tuple[float, float, int]] = field(default_factory=list)  # sent, answered, v
    production: list[tuple[float, int]] = field(default_factory=list)  # from when, version

    def record(self, path: str, answer: httpx.Response) -> None:
        self.statuses[answer.status_code] += 1
        if answer.status_code >= 500 and answer.status_code not in (503, 504):
            self.bad_5xx.append(f"{answer.status_code} {path}: {answer.text[:200]}")

    def check_defaults(self) -> None:
        """Answers naming no version against the production history."""
        for sent, answered, version in self.defaults:
            window_start = sent - PROPAGATION_SECONDS
            before = [v for at, v in self.production if at <= window_start]
            during = {v for at, v in self.production if window_start < at <= answered}
            allowed = set(before[-1:]) | during
            if version not in allowed:
                changed = max(at for at, _ in self.production if at <= window_start)
                self.wrong_version.append(
                    f"default answer v{version}, allowed {allowed}: production moved "
                    f"{sent - changed:.1f} s before it was sent, {answered - sent:.1f} s to answer"
                )


class Traffic:
    def __init__(self, base_url: str, tally: Tally, stop_at: float) -> None:
        self.base_url, self.tally, self.stop_at = base_url, tally, stop_at

    async def _post(
        self, client: httpx.AsyncClient, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        self.tally.sent += 1
        try:
            answer = await client.post(path, **kwargs)
        except httpx.HTTPError as exc:
            self.tally.transport_errors[type(exc).__name__] += 1
            return None
        self.tally.record(path, answer)
        return answer

    async def _loop(self, pause: float, step: Any) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=40) as client:
            while time.monotonic() < self.stop_at:
                await step(client)
                await asyncio.sleep(pause * random.uniform(0.5, 1.5))

    async def default_iris(self, client: httpx.AsyncClient) -> None:
        row = [IRIS[0] + random.random(), *IRIS[1:]]
        sent = time.monotonic()
        answer = await self._post(client, "/predict", json={"model": "iris", "instances": [row]})
        if answer is not None and answer.status_code == 200:
            self.tally.defaults.append((sent, time.monotonic(), answer.json()["version"]))

    async def pinned_iris(self, client: httpx.AsyncClient) -> None:
        version = random.choice((1, 2))
        row = [IRIS[0] + random.random(), *IRIS[1:]]
        path = f"/models/iris/versions/{version}/predict"
        answer = await self._post(client, path, json={"instances": [row]})
        if answer is not None and answer.status_code == 200 and answer.json()["version"] != version:
            self.tally.wrong_version.append(f"pinned v{version}, answered {answer.text[:100]}")

    async def forest(self, client: httpx.AsyncClient) -> None:
        rows = [[random.uniform(5, 25) for _ in range(30)] for _ in range(8)]
        await self._post(client, "/models/breast_cancer/predict", json={"instances": rows})

    async def v2_diabetes(self, client: httpx.AsyncClient) -> None:
        data = [random.uniform(-0.1, 0.1) for _ in range(10)]
        tensor = {"name": "x", "shape": [1, 10], "datatype": "FP64", "data": data}
        await self._post(client, "/v2/models/diabetes/infer", json={"inputs": [tensor]})

    async def garbage(self, client: httpx.AsyncClient) -> None:
        path, body = random.choice(_GARBAGE)()
        answer = await self._post(client, path, content=body)
        if answer is not None and answer.status_code < 400:
            self.tally.garbage_2xx.append(f"{answer.status_code} {path} {body[:60]!r}")

    async def burst(self, client: httpx.AsyncClient, seconds: float, width: int = 64) -> None:
        """`width` concurrent forest requests for `seconds`: past the admission limit."""
        until = min(self.stop_at, time.monotonic() + seconds)

        async def one() -> None:
            rows = [[random.uniform(5, 25) for _ in range(30)] for _ in range(32)]
            while time.monotonic() < until:
                await self._post(client, "/models/breast_cancer/predict", json={"instances": rows})

        await asyncio.gather(*(one() for _ in range(width)))

    async def run(self, burst_every: float) -> None:
        steady = [
            self._loop(0.02, self.default_iris),
            self._loop(0.05, self.pinned_iris),
            self._loop(0.05, self.forest),
            self._loop(0.05, self.v2_diabetes),
            self._loop(0.05, self.garbage),
            self._bursts(burst_every),
        ]
        await asyncio.gather(*steady)

    async def _bursts(self, every: float) -> None:
        limits = httpx.Limits(max_connections=128)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=40, limits=limits) as client:
            while time.monotonic() + every < self.stop_at:
                await asyncio.sleep(every)
                await self.burst(client, 10)


def _garbage_bodies() -> list[Any]:
    iris = "/models/iris/predict"
    return [
        lambda: (iris, b'{"instances": [[1, 2'),
        lambda: (iris, b"[]"),
        lambda: (iris, b'{"instances": "x"}'),
        lambda: (iris, b'{"instances": [[1e999, 0, 0, 0]]}'),
        lambda: (iris, b'{"instances": [[1, 2, 3]]}'),
        lambda: (iris, b'{"instances": [["a", "b", "c", "d"]]}'),
        lambda: (iris, b"[" * 5000),
        lambda: (iris, os.urandom(300)),
        lambda: (iris, b'{"instances": [' + b"[1,2,3,4]," * 10001 + b"[1,2,3,4]]}"),
        lambda: ("/models/nope/predict", b'{"instances": [[1, 2, 3, 4]]}'),
        lambda: ("/models/iris/versions/99/predict", b'{"instances": [[1, 2, 3, 4]]}'),
        lambda: ("/models/IRIS%0A/predict", b'{"instances": [[1, 2, 3, 4]]}'),
        lambda: ("/v2/models/iris/infer", b'{"inputs": [{"name": "x", "shape": [1, 4]}]}'),
        lambda: (
            "/v2/models/iris/infer",
            b'{"inputs": [{"name":"x","shape":[1,4],"datatype":"FP64","data":["a","b","c","d"]}]}',
        ),
        lambda: ("/v2/models/iris/infer", b'{"inputs": ' + b'{"a":' * 3000 + b"1" + b"}" * 3001),
    ]


_GARBAGE = _garbage_bodies()
