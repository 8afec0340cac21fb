"""SIGTERM to a real gunicorn: requests in flight are answered, new connections are refused.

Requests go over raw sockets so the test knows, rather than guesses, that the worker has
them: a request is in flight once the server-side socket's receive queue is empty, which
only happens after the worker accepted the connection and read what was sent
(/proc/net/tcp shows the queue of every TCP socket on the machine).

* The *upload* request sends its headers and half of a 10,000-row body before SIGTERM and
  the rest only after the server has stopped accepting: a client on a slow link.
* The *scoring* requests are sent whole before SIGTERM and are inside the 200-tree random
  forest (one scoring thread, so they queue behind each other) when it arrives.
"""

import contextlib
import http.client
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.processes import running_server

pytestmark = pytest.mark.slow

ROWS = 10_000  # SERVING_MAX_ROWS: the largest request the server takes


def _large_body() -> bytes:
    rows = np.random.default_rng(7).normal(14.0, 5.0, size=(ROWS, 30)).round(3)
    return orjson.dumps(
        {"model": "breast_cancer", "instances": rows.tolist(), "probabilities": True}
    )


def _head(port: int, length: int) -> bytes:
    return (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _receive_queue(server_port: int, client_port: int) -> int | None:
    """Bytes the server side of one loopback connection has not read yet (None: no socket)."""
    wanted = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == wanted:
                return int(fields[4].split(":")[1], 16)
    return None


def _wait_until_read(connection: socket.socket, server_port: int) -> None:
    """Until the worker has read everything sent so far on `connection`."""
    client_port = connection.getsockname()[1]
    deadline = time.monotonic() + 10
    while _receive_queue(server_port, client_port) != 0:
        assert time.monotonic() < deadline, "the worker never read the request"
        time.sleep(0.005)


def _answer(connection: socket.socket) -> tuple[int, dict[str, object]]:
    response = http.client.HTTPResponse(connection)
    response.begin()
    return response.status, orjson.loads(response.read())


def _refuses_connections(port: int) -> bool:
    """Polls (bounded) until a new connection to `port` is refused."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.02)
    return False


@contextlib.contextmanager
def _connections(count: int, port: int) -> Iterator[list[socket.socket]]:
    opened = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    try:
        yield opened
    finally:
        for connection in opened:
            connection.close()


def test_sigterm_answers_requests_in_flight_refuses_new_ones_and_exits_0(
    registry_dir: Path, trusted_key_text: str, tmp_path: Path
) -> None:
    body = _large_body()
    env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_PREDICT_THREADS": "1",
        "SERVING_CACHE_MAX_ENTRIES": "0",
        "SERVING_GRACEFUL_TIMEOUT_SECONDS": "20",
    }
    with running_server(env, tmp_path / "server.log", workers=1) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with _connections(3, port) as (upload, *scoring):
            upload.sendall(_head(port, len(body)) + body[: len(body) // 2])
            for connection in scoring:
                connection.sendall(_head(port, len(body)) + body)
            for connection in (upload, *scoring):
                _wait_until_read(connection, port)

            server.process.send_signal(signal.SIGTERM)
            assert _refuses_connections(port), "still accepting connections after SIGTERM"
            upload.sendall(body[len(body) // 2 :])
            answers = [_answer(connection) for connection in (upload, *scoring)]

        exit_code = server.process.wait(timeout=30)
        log = server.log()

    for status, answer in answers:
        assert status == 200, answer
        assert answer["model"] == "breast_cancer" and answer["version"] == 1
        assert isinstance(answer["predictions"], list) and len(answer["predictions"]) == ROWS
    assert exit_code == 0, log
    assert "Application shutdown complete" in log, log
    assert "Traceback" not in log and '"level":"error"' not in log, log
