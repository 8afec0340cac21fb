"""A small load generator for tests and benchmarks: threads posting predictions to loopback.

Bounded in time and in count, it stops by itself; every answer is recorded, transport
errors included (status 0), so a test can count failures exactly.
"""

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Outcome:
    at: float  # time.monotonic() when the answer arrived
    status: int  # 0: no HTTP answer at all
    cache: str  # X-Cache, "" when absent
    seconds: float


class LoadGenerator:
    """`threads` keep-alive clients cycling through `bodies` until stopped or out of budget."""

    def __init__(
        self,
        url: str,
        bodies: Sequence[dict[str, Any]],
        *,
        threads: int = 4,
        max_requests: int = 20_000,
        max_seconds: float = 60.0,
    ) -> None:
        self._url, self._bodies, self._threads = url, bodies, threads
        self._budget, self._max_seconds = max_requests, max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._outcomes: list[Outcome] = []
        self._workers: list[threading.Thread] = []

    def start(self) -> "LoadGenerator":
        deadline = time.monotonic() + self._max_seconds
        for offset in range(self._threads):
            worker = threading.Thread(target=self._run, args=(offset, deadline), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def outcomes(self) -> list[Outcome]:
        """The answers so far, in arrival order; the load goes on."""
        with self._lock:
            return sorted(self._outcomes, key=lambda outcome: outcome.at)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for worker in self._workers:
            worker.join()
        return sorted(self._outcomes, key=lambda outcome: outcome.at)

    def _take_ticket(self) -> bool:
        with self._lock:
            self._sent += 1
            return self._sent <= self._budget

    def _run(self, offset: int, deadline: float) -> None:
        bodies = itertools.islice(itertools.cycle(self._bodies), offset, None)
        with httpx.Client(base_url=self._url, timeout=10) as client:
            for body in bodies:
                if self._stop.is_set() or time.monotonic() > deadline or not self._take_ticket():
                    return
                outcome = _post(client, body)
                with self._lock:
                    self._outcomes.append(outcome)


def _post(client: httpx.Client, body: dict[str, Any]) -> Outcome:
    started = time.monotonic()
    try:
        answer = client.post("/predict", json=body)
    except httpx.HTTPError:
        return Outcome(time.monotonic(), 0, "", time.monotonic() - started)
    now = time.monotonic()
    return Outcome(now, answer.status_code, answer.headers.get("X-Cache", ""), now - started)


def main() -> None:
    """`python -m tests.load URL SECONDS THREADS MODEL ROWS`: loads a server from another
    process (so the caller's own measurements share no interpreter with it), then prints the
    count of each status as JSON."""
    import json
    import sys

    from training.data import load_dataset

    url, seconds, threads, model, rows = sys.argv[1:6]
    data = load_dataset(model).x_test.tolist()
    bodies = [
        {"model": model, "instances": [data[(i + j) % len(data)] for j in range(int(rows))]}
        for i in range(len(data))
    ]
    generator = LoadGenerator(
        url, bodies, threads=int(threads), max_requests=10**7, max_seconds=float(seconds)
    ).start()
    time.sleep(float(seconds))
    statuses = [outcome.status for outcome in generator.stop()]
    print(json.dumps({str(s): statuses.count(s) for s in sorted(set(statuses))}))


if __name__ == "__main__":
    main()
