"""Real server processes for tests: gunicorn over loopback, started and stopped by PID."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_ready(url: str, timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_seconds}s")


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def complete_log_lines(self) -> list[str]:
        """The log's lines, less a last one a worker is still writing (no newline yet)."""
        text = self.log()
        return text[: text.rfind("\n") + 1].splitlines()


def server_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The test's environment minus SERVING_*, plus `extra`; the checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVING_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    env["SERVING_GRPC_PORT"] = "0"  # not the shared default 8081: a test that wants gRPC sets one
    env.update(extra)
    return env


def run_cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`serving ARGS…` as a user runs it, in the checkout, with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "serving.cli", *args],
        env=server_environment(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextlib.contextmanager
def running_server(
    env: Mapping[str, str], log_path: Path, *, workers: int = 2, ready: bool = True
) -> Iterator[ServerProcess]:
    """`serving serve` (gunicorn + uvicorn workers) on a free loopback port."""
    port = free_port()
    command = [sys.executable, "-m", "serving.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=server_environment(env), stdout=log, stderr=subprocess.STDOUT
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        if ready:
            wait_until_ready(server.url)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout_seconds: float = 30.0) -> int:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL if it overstays."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def worker_pids(master_pid: int) -> set[int]:
    """The gunicorn master's child processes: its workers."""
    with open(f"/proc/{master_pid}/task/{master_pid}/children") as listing:
        return {int(pid) for pid in listing.read().split()}
