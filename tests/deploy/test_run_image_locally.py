"""scripts/run-image-locally.sh: the image's start command, run here, and driven to ready.

The script must mirror the Dockerfile's runtime ENV exactly (checked by name, in order)
and serve from a read-only registry without writing a byte to it.
"""

import os
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2

from tests.processes import free_port, stop, wait_until_ready

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "run-image-locally.sh"
DOCKERFILE = REPO_ROOT / "Dockerfile"


def _dockerfile_runtime_env_names() -> list[str]:
    """Names set by ENV in the Dockerfile's last stage, in order."""
    runtime_stage = DOCKERFILE.read_text().split("\nFROM ")[-1]
    joined = runtime_stage.replace("\\\n", " ")
    names: list[str] = []
    for line in joined.splitlines():
        if line.startswith("ENV "):
            names += re.findall(r"(?:^ENV\s+|\s)([A-Z_][A-Z0-9_]*)=", line)
    return names


def _script_image_env_names() -> list[str]:
    block = re.search(r"^image_env=\((.*?)^\)", SCRIPT.read_text(), re.M | re.S)
    assert block is not None, "image_env=( ... ) not found in the script"
    return re.findall(r'^\s*"([A-Z_][A-Z0-9_]*)=', block.group(1), re.M)


def test_script_sets_exactly_the_dockerfile_runtime_env() -> None:
    dockerfile = _dockerfile_runtime_env_names()
    assert "SERVING_MODEL_DIR" in dockerfile and "PROMETHEUS_MULTIPROC_DIR" in dockerfile
    assert _script_image_env_names() == dockerfile


def test_script_runs_the_image_entrypoint_and_command() -> None:
    runtime_stage = DOCKERFILE.read_text().split("\nFROM ")[-1]
    assert 'ENTRYPOINT ["serving"]' in runtime_stage and 'CMD ["serve"]' in runtime_stage
    assert re.search(r"^WORKDIR /app$", runtime_stage, re.M)
    assert re.search(r"^USER 10001:10001$", runtime_stage, re.M)
    script = SCRIPT.read_text()
    assert " serving serve)" in script and '"$root/app"' in script and "10001" in script


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under `root` with its size, mode and modification time."""
    return {
        str(path.relative_to(root)): (info.st_size, info.st_mode, info.st_mtime_ns)
        for path in [root, *root.rglob("*")]
        for info in [path.lstat()]
    }


@pytest.fixture
def scratch_root() -> Iterator[Path]:
    """Outside pytest's private tmp, so the image's user can reach it; made writable again."""
    with tempfile.TemporaryDirectory(prefix="serving-image-test-") as folder:
        yield Path(folder)
        for path in Path(folder).rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.slow
def test_script_serves_the_read_only_registry_to_ready_and_stops_cleanly(
    registry_dir: Path, trusted_key_text: str, scratch_root: Path
) -> None:
    before = _snapshot(registry_dir)
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "SERVING_IMAGE_PYTHON": sys.executable,
        "SERVING_HOST": "127.0.0.1",  # as `docker run -e`; tests stay on loopback
        "SERVING_PORT": str(port),
        "SERVING_GRPC_PORT": str(grpc_port),
        "SERVING_TRUSTED_KEYS": trusted_key_text,
        "SERVING_ADMIN_TOKENS": "ops-token",
    }
    command = [str(SCRIPT), "--root", str(scratch_root / "root"), str(registry_dir)]
    log_path = scratch_root / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url)
        body = {"model": "iris", "instances": [[5.1, 3.5, 1.4, 0.2]]}
        answer = httpx.post(f"{url}/predict", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == "iris"
        promote = httpx.put(
            f"{url}/models/iris/aliases/production",
            json={"version": 1},
            headers={"Authorization": "Bearer ops-token"},
            timeout=10,
        )
        assert promote.status_code == 503, promote.text
        assert promote.json()["error"]["code"] == "registry_read_only"
        assert _grpc_health(grpc_port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        exit_code = stop(process)
    output = log_path.read_text(errors="replace")
    assert exit_code == 0, output
    assert "models: read-only" in output, output
    assert "Traceback" not in output and '"level":"error"' not in output, output
    assert _snapshot(registry_dir) == before
    served = scratch_root / "root" / "models"
    if any(served.iterdir()):  # the read-only copy, when no bind mount was possible
        assert _snapshot(served).keys() == before.keys()
        assert not any(path.stat().st_mode & 0o222 for path in served.rglob("*"))


def _grpc_health(port: int) -> int:
    """The overall grpc.health.v1 status, as the readiness probe in k8s/ asks for it."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        answer: health_pb2.HealthCheckResponse = check(health_pb2.HealthCheckRequest(), timeout=10)
        return answer.status
