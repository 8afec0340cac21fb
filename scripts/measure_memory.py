"""Measure memory (PSS per process) of `serving serve` with and without preloading.

    python scripts/measure_memory.py [--workers 2 4] [--registry DIR --trusted-key TEXT]
                                     [--runtimes auto sklearn]

For each variant and worker count it starts gunicorn on a loopback port with the project's
gunicorn configuration (serving/gunicorn_conf.py) overridden only in `preload_app` and the
gc.freeze() hook, waits until the workers serve, scores every demo model from several
connections so every worker has loaded and used its models, and then reads
/proc/<pid>/smaps_rollup of the master and each worker. PSS (proportional set size)
charges a shared page to each process sharing it by its share, so PSS summed over the
processes is what the server really costs; RSS counts shared pages once per process.

It also measures, in a plain interpreter, what the demo models themselves add to a
process, which is what loading them in the master could share at most.
Without --registry, the demo models are trained into a temporary folder first.
`--runtimes` repeats everything per SERVING_RUNTIME (auto: compiled forms where there are).
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_ROWS = {
    "iris": [[5.1, 3.5, 1.4, 0.2]],
    "diabetes": [[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]],
    "breast_cancer": [[14.0] * 30],
}


@dataclass(frozen=True)
class Variant:
    label: str
    preload: bool
    freeze: bool


VARIANTS = (
    Variant("no preload (models and libraries per worker)", preload=False, freeze=False),
    Variant("preload_app", preload=True, freeze=False),
    Variant("preload_app + gc.freeze()", preload=True, freeze=True),
)


def smaps_mib(pid: int) -> dict[str, float]:
    """Rss, Pss, Shared and Private (clean + dirty) of one process, in MiB."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "shared": fields["Shared_Clean"] + fields["Shared_Dirty"],
        "private": fields["Private_Clean"] + fields["Private_Dirty"],
    }


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _config_file(folder: Path, variant: Variant) -> Path:
    """The project's gunicorn settings, with only preload and the freeze hook varied."""
    path = folder / f"gunicorn-{variant.preload}-{variant.freeze}.py"
    hook = "" if variant.freeze else "def when_ready(server):\n    pass\n"
    path.write_text(
        textwrap.dedent(f"""\
        from serving.gunicorn_conf import *  # noqa: F403
        preload_app = {variant.preload}
        """)
        + hook
    )
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(
    config: Path, workers: int, registry: Path, key: str, folder: Path, runtime: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    multiproc = Path(tempfile.mkdtemp(dir=folder, prefix="prometheus-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVING_")}
    env |= {
        "PYTHONPATH": str(REPO_ROOT),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "SERVING_MODEL_DIR": str(registry),
        "SERVING_TRUSTED_KEYS": key,
        "SERVING_HOST": "127.0.0.1",
        "SERVING_PORT": str(port),
        "SERVING_WORKERS": str(workers),
        "SERVING_LOG_LEVEL": "warning",
        "SERVING_RUNTIME": runtime,
    }
    command = [sys.executable, "-m", "gunicorn", "-c", str(config), "serving.api.app:create_app()"]
    log = open(folder / f"server-{port}.log", "wb")  # noqa: SIM115  # closed below
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        log.close()


def _warm(url: str, workers: int, requests: int) -> None:
    """Until every worker answers ready, then score every model from fresh connections."""
    deadline = time.monotonic() + 120
    ready_in_a_row = 0
    while ready_in_a_row < 10 * workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} never became ready")
        try:
            ok = httpx.get(f"{url}/health/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        ready_in_a_row = ready_in_a_row + 1 if ok else 0
        time.sleep(0.02 if ok else 0.2)

    def score(name: str) -> None:
        body = {"model": name, "instances": DEMO_ROWS[name] * 50}
        httpx.post(f"{url}/predict", json=body, timeout=30).raise_for_status()

    with ThreadPoolExecutor(max_workers=2 * workers) as pool:
        list(pool.map(score, [name for name in DEMO_ROWS for _ in range(requests * workers)]))
    time.sleep(1)


def measure(
    variant: Variant,
    workers: int,
    registry: Path,
    key: str,
    folder: Path,
    requests: int,
    runtime: str,
) -> dict[str, float]:
    config = _config_file(folder, variant)
    with _server(config, workers, registry, key, folder, runtime) as (process, url):
        _warm(url, workers, requests)
        pids = children_of(process.pid)
        assert len(pids) == workers, f"expected {workers} workers, found {pids}"
        master = smaps_mib(process.pid)
        per_worker = [smaps_mib(pid) for pid in pids]
    mean = {k: sum(w[k] for w in per_worker) / workers for k in master}
    return {
        "master_pss": master["pss"],
        "worker_pss": mean["pss"],
        "worker_private": mean["private"],
        "worker_rss": mean["rss"],
        "total_pss": master["pss"] + sum(w["pss"] for w in per_worker),
    }


_MODEL_COST = """
import gc, os, sys
from pathlib import Path
import serving.api.app
from serving.repository.signing import TrustedKeys, parse_public_key
from serving.repository.store import ModelStore
def pss():
    for line in open(f"/proc/{os.getpid()}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
gc.collect(); before = pss()
keys = TrustedKeys([parse_public_key(sys.argv[2])])
store = ModelStore(Path(sys.argv[1]), keys, sys.argv[3])
loaded = [store.load(name, store.served_version(name)) for name in store.model_names()]
gc.collect(); print(before, pss() - before)
"""


def model_cost(registry: Path, key: str, runtime: str) -> tuple[float, float]:
    """(PSS of an interpreter with the app's libraries imported, PSS the loaded models add)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    output = subprocess.run(
        [sys.executable, "-c", _MODEL_COST, str(registry), key, runtime],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(output[0]), float(output[1])


def _demo_registry(folder: Path) -> tuple[Path, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from serving.repository.signing import public_key_text
    from training.train import train

    key = Ed25519PrivateKey.generate()
    registry = folder / "models"
    for name in DEMO_ROWS:
        train(name, registry, key)
    return registry, public_key_text(key.public_key())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--registry", type=Path, help="a registry with the demo models")
    parser.add_argument("--trusted-key", help="public key the registry's artifacts carry")
    parser.add_argument("--requests", type=int, default=20, help="per model and worker")
    parser.add_argument("--preloaded-only", action="store_true", help="skip no-preload runs")
    parser.add_argument("--runtimes", nargs="+", default=["auto"], help="SERVING_RUNTIME values")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serving-memory-") as scratch:
        folder = Path(scratch)
        registry, key = args.registry, args.trusted_key
        if registry is None:
            registry, key = _demo_registry(folder)
        for runtime in args.runtimes:
            libraries, models = model_cost(registry, key, runtime)
            print(
                f"SERVING_RUNTIME={runtime}: interpreter + libraries: {libraries:.1f} MiB PSS; "
                f"demo models add {models:.1f}"
            )
        print(
            "| runtime | variant | workers | master PSS | PSS per worker | private per worker "
            "| RSS per worker | total PSS |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for runtime in args.runtimes:
            for variant in VARIANTS[1:] if args.preloaded_only else VARIANTS:
                for workers in args.workers:
                    row = measure(variant, workers, registry, key, folder, args.requests, runtime)
                    print(
                        f"| {runtime} | {variant.label} | {workers} | {row['master_pss']:.1f} "
                        f"| {row['worker_pss']:.1f} | {row['worker_private']:.1f} "
                        f"| {row['worker_rss']:.1f} | {row['total_pss']:.1f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
