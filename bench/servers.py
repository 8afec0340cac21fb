"""Start/stop the servers under test: ours, the bare FastAPI app, MLServer (own virtualenv)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from bench.registry import ModelInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / ".bench"
MLSERVER_VENV = BENCH_DIR / "mlserver-venv"
MLSERVER_VERSION = "1.7.1"

# Every server process (and the in-process baseline) gets one BLAS/OpenMP thread: the machine has
# 2 cores shared by 2 server workers and the load generator, so library thread pools only add
# contention, and leaving them at their defaults would favour whichever server forgets to cap them.
FAIR_THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}

ALL_TARGETS: tuple[str, ...] = (
    "bare",
    "bare-default-threads",
    "mlserver",
    "mlserver-batched",
    "ours",
    "ours-unbatched",
    "ours-sklearn",
)
Protocol = Literal["instances", "v2"]


@dataclass(frozen=True)
class TargetSpec:
    name: str
    protocol: Protocol
    description: str


TARGETS: dict[str, TargetSpec] = {
    "bare": TargetSpec(
        "bare",
        "instances",
        "bare FastAPI: sync def, pydantic list[list[float]], gunicorn + 2 uvicorn workers",
    ),
    "bare-default-threads": TargetSpec(
        "bare-default-threads",
        "instances",
        "the bare FastAPI app with the libraries' default BLAS/OpenMP thread counts, as the "
        "issue describes it (the case where two workers oversubscribe two cores)",
    ),
    "mlserver": TargetSpec(
        "mlserver", "v2", f"MLServer {MLSERVER_VERSION} + mlserver-sklearn, parallel_workers=2"
    ),
    "mlserver-batched": TargetSpec(
        "mlserver-batched",
        "v2",
        f"MLServer {MLSERVER_VERSION}, parallel_workers=2, adaptive batching 32 / 5 ms",
    ),
    "ours": TargetSpec("ours", "instances", "serving serve --workers 2"),
    "ours-unbatched": TargetSpec(
        "ours-unbatched", "instances", "serving serve --workers 2, SERVING_BATCHING=false"
    ),
    "ours-sklearn": TargetSpec(
        "ours-sklearn",
        "instances",
        "serving serve --workers 2, SERVING_RUNTIME=sklearn (no compiled forms)",
    ),
}
OURS_TARGETS = ("ours", "ours-unbatched", "ours-sklearn")


def predict_path(protocol: Protocol, model: str) -> str:
    return f"/v2/models/{model}/infer" if protocol == "v2" else f"/models/{model}/predict"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process group we started (we stop exactly this group, by its PID)."""

    target: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra_ports: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def wait_ready(server: Server, paths: Sequence[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(paths)
    while pending:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.target} exited with {server.proc.returncode} before it was ready; "
                f"see {server.log_path}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{server.target} not ready after {timeout_s}s; see {server.log_path}"
            )
        if _http_status(server.base_url + pending[0]) == 200:
            pending.pop(0)
            continue
        time.sleep(0.25)


def stop(server: Server, grace_s: float = 20.0) -> None:
    """SIGTERM the server's main process (it shuts its workers down), then SIGKILL whatever is
    left of the process group we created for it (start_new_session: group id == its PID)."""
    if server.proc.poll() is None:
        server.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(timeout=5)


def _spawn(
    target: str, argv: Sequence[str], env: dict[str, str], cwd: Path, log_dir: Path, port: int
) -> Server:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{target}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(target=target, port=port, proc=proc, log_path=log_path)


def _gunicorn_major() -> int:
    try:
        return int(metadata.version("gunicorn").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return 0


def _base_env() -> dict[str, str]:
    return {**os.environ, **FAIR_THREAD_ENV}


# --------------------------------------------------------------------------- MLServer virtualenv


def _mlserver_requirements() -> list[str]:
    """MLServer pins, plus our venv's scikit-learn/numpy so the same pickles load identically."""
    reqs = [
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-sklearn=={MLSERVER_VERSION}",
        "uvloop<0.22",  # MLServer 1.7.1 breaks with uvloop 0.22
    ]
    for dist in ("scikit-learn", "numpy", "joblib"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            reqs.append(f"{dist}=={metadata.version(dist)}")
    return reqs


def ensure_mlserver_venv(venv: Path = MLSERVER_VENV) -> Path:
    """Create (once) the MLServer virtualenv; returns the path of its ``mlserver`` script."""
    reqs = _mlserver_requirements()
    stamp = venv / "bench-requirements.txt"
    mlserver_bin = venv / "bin" / "mlserver"
    if mlserver_bin.exists() and stamp.exists() and stamp.read_text().split() == reqs:
        return mlserver_bin
    print(f"[bench] installing MLServer into {venv}: {' '.join(reqs)}", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *reqs], check=True
    )
    stamp.write_text("\n".join(reqs) + "\n")
    return mlserver_bin


def write_mlserver_repo(
    repo: Path, models: Sequence[ModelInfo], port: int, batched: bool, workers: int
) -> list[int]:
    """settings.json + one model-settings.json per model; returns the extra ports it uses."""
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    grpc_port, metrics_port = free_port(), free_port()
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": workers,
        "debug": False,
        "load_models_at_startup": True,
    }
    (repo / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    for m in models:
        model_settings: dict[str, Any] = {
            "name": m.name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(m.path), "version": m.version},
        }
        if batched:
            model_settings["max_batch_size"] = 32
            model_settings["max_batch_time"] = 0.005  # seconds
        mdir = repo / m.name
        mdir.mkdir()
        (mdir / "model-settings.json").write_text(json.dumps(model_settings, indent=2) + "\n")
    return [grpc_port, metrics_port]


# --------------------------------------------------------------------------- start a target


@dataclass(frozen=True)
class LaunchOptions:
    model_dir: Path
    models: Sequence[ModelInfo]
    log_dir: Path
    serving_cmd: str
    ours_env: dict[str, str]
    workers: int = 2
    ready_timeout_s: float = 180.0


def _launch(target: str, opts: LaunchOptions) -> tuple[Server, list[str]]:
    """Spawn the target's server; returns it and the paths that must answer 200 when ready."""
    port = free_port()
    env = _base_env()
    host_port = ["--host", "127.0.0.1", "--port", str(port)]
    if target in OURS_TARGETS:
        env.update(SERVING_MODEL_DIR=str(opts.model_dir), **opts.ours_env)
        if target == "ours-unbatched":
            env["SERVING_BATCHING"] = "false"
        if target == "ours-sklearn":
            env["SERVING_RUNTIME"] = "sklearn"
        argv = [opts.serving_cmd, "serve", "--workers", str(opts.workers), *host_port]
        return _spawn(target, argv, env, REPO_ROOT, opts.log_dir, port), ["/health/ready"]
    if target in ("bare", "bare-default-threads"):
        if target == "bare-default-threads":
            env = {k: v for k, v in os.environ.items() if k not in FAIR_THREAD_ENV}
        env["BENCH_MODEL_DIR"] = str(opts.model_dir)
        argv = [
            sys.executable, "-m", "gunicorn", "bench.bare_app:app",
            "-k", "uvicorn_worker.UvicornWorker", "-w", str(opts.workers),
            "-b", f"127.0.0.1:{port}", "--timeout", "120",
        ]  # fmt: skip
        if _gunicorn_major() >= 27:
            # gunicorn 27 opens a control socket at one shared default path
            # (~/.gunicorn/gunicorn.ctl); don't take it from other gunicorns on the machine
            argv.append("--no-control-socket")
        return _spawn(target, argv, env, REPO_ROOT, opts.log_dir, port), ["/health/ready"]
    if target in ("mlserver", "mlserver-batched"):
        mlserver_bin = ensure_mlserver_venv()
        repo = BENCH_DIR / f"mlserver-repo-{target}"
        extra = write_mlserver_repo(
            repo, opts.models, port, batched=target == "mlserver-batched", workers=opts.workers
        )
        # cwd=repo: MLServer keeps its .metrics/.envs folders in the working directory
        server = _spawn(target, [str(mlserver_bin), "start", str(repo)], env, repo, opts.log_dir,
                        port)  # fmt: skip
        server.extra_ports = extra
        ready = ["/v2/health/ready", *(f"/v2/models/{m.name}/ready" for m in opts.models)]
        return server, ready
    raise ValueError(f"unknown target {target!r}; known: {', '.join(ALL_TARGETS)}")


@contextlib.contextmanager
def running(target: str, opts: LaunchOptions) -> Iterator[Server]:
    server: Server | None = None
    try:
        server, ready_paths = _launch(target, opts)
        wait_ready(server, ready_paths, opts.ready_timeout_s)
        yield server
    finally:
        if server is not None:
            stop(server)


def python_has_modules(python: Path | str, modules: Sequence[str]) -> dict[str, bool]:
    """Which of ``modules`` import in ``python`` (recorded: uvloop/httptools change HTTP speed)."""
    found: dict[str, bool] = {}
    for mod in modules:
        rc = subprocess.run(
            [str(python), "-c", f"import {mod}"], capture_output=True, check=False
        ).returncode
        found[mod] = rc == 0
    return found


def resolve_serving_cmd(explicit: str | None) -> str | None:
    """The ``serving`` console script: --serving-cmd, else next to this Python, else on PATH."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "serving"
    if beside.exists():
        return str(beside)
    return shutil.which("serving")
