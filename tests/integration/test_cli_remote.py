"""The CLI round trip against a real server: train, push, promote, roll back, list."""

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import run_cli, running_server
from tests.uploads import ADMIN_TOKEN
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def _ok(env: dict[str, str], *args: str) -> str:
    done = run_cli(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _versions_listed(url: str) -> list[int]:
    """iris's versions as one worker lists them (a new connection each call)."""
    versions: list[int] = httpx.get(f"{url}/models/iris", timeout=5).json()["versions"]
    return versions


def _wait_until_live(url: str, timeout_seconds: float = 60) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} never came up")


def _wait_until_served(url: str, version: int, timeout_seconds: float = 2.0) -> dict[str, object]:
    """The contract: every worker serves an alias move within 2 s, so ask several times."""
    deadline = time.monotonic() + timeout_seconds
    answer: dict[str, object] = {}
    while time.monotonic() < deadline:
        response = httpx.post(f"{url}/models/iris/predict", json=_ROW, timeout=5)
        if response.status_code == 200:
            answer = response.json()
            if answer["version"] == version and _all_workers_serve(url, version):
                return answer
        time.sleep(0.05)
    raise AssertionError(f"v{version} not served within {timeout_seconds}s; last answer {answer}")


def _all_workers_serve(url: str, version: int, asks: int = 8) -> bool:
    answers = [httpx.post(f"{url}/models/iris/predict", json=_ROW, timeout=5) for _ in range(asks)]
    return all(a.status_code == 200 and a.json()["version"] == version for a in answers)


def test_train_push_promote_and_roll_back_against_a_running_server(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "signing-key.pem"
    trainer = {
        "SERVING_MODEL_DIR": str(tmp_path / "trained"),
        "SERVING_SIGNING_KEY_FILE": str(key_file),
    }
    _ok(trainer, "train", "iris")  # a fresh machine: this creates the development key pair
    trusted = key_file.with_name("signing-key.pem.pub").read_text().strip()
    server_models = tmp_path / "served"
    server_models.mkdir()
    server_env = {
        "SERVING_MODEL_DIR": str(server_models),
        "SERVING_TRUSTED_KEYS": trusted,  # the server holds the public key only
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "server-has-no-private-key.pem"),
        "SERVING_ADMIN_TOKENS": ADMIN_TOKEN,
    }
    artifact = str(tmp_path / "trained" / "iris" / "1" / "model.joblib")
    features = "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm"

    with running_server(server_env, tmp_path / "server.log", ready=False) as server:
        _wait_until_live(server.url)
        remote = ("--url", server.url, "--token", ADMIN_TOKEN)
        pushed = _ok(
            trainer, "push", artifact, "--name", "iris", "--promote", "production", *remote
        )
        v1 = _wait_until_served(server.url, 1)
        pushed_skops = _ok(
            trainer, "push", artifact, "--name", "iris", "--format", "skops",
            "--features", features, "--example", "5.1,3.5,1.4,0.2",
            "--promote", "production", *remote,
        )  # fmt: skip
        v2 = _wait_until_served(server.url, 2)
        rolled = _ok(trainer, "rollback", "iris", *remote)
        _wait_until_served(server.url, 1)
        promoted = _ok(trainer, "promote", "iris", "2", *remote)
        _wait_until_served(server.url, 2)
        listed = _ok(trainer, "models", *remote)
        refused = run_cli(trainer, "promote", "iris", "1", "--url", server.url, "--token", "wrong")
        # The token from the environment, kept off the command line.
        from_env = trainer | {"SERVING_ADMIN_TOKEN": ADMIN_TOKEN}
        canary = _ok(from_env, "promote", "iris", "1", "--alias", "canary", "--url", server.url)
        in_use = run_cli(from_env, "delete-version", "iris", "1", "--url", server.url)
        unaliased = _ok(from_env, "delete-alias", "iris", "canary", "--url", server.url)
        deleted = _ok(from_env, "delete-version", "iris", "1", "--url", server.url)
        # The deleting worker refreshes at once, the other at its next poll.
        wait_until(
            lambda: all(_versions_listed(server.url) == [2] for _ in range(4)),
            "every worker to list iris without v1",
            timeout_seconds=10,
        )
        after_delete = _ok(from_env, "models", "--url", server.url)
        manifest = httpx.get(f"{server.url}/models/iris/versions/2", timeout=5).json()

    assert pushed.splitlines() == ["iris: published v1", "iris: production -> v1"]
    assert pushed_skops.splitlines() == ["iris: published v2", "iris: production -> v2"]
    assert v1["predictions"] == v2["predictions"]  # the same estimator, in both formats
    assert rolled.strip() == "iris: production -> v1"
    assert promoted.strip() == "iris: production -> v2"
    assert listed.strip() == "iris: versions [1, 2]; production=v2"
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert manifest["artifact"]["format"] == "skops"
    assert [f["name"] for f in manifest["features"]] == features.split(",")
    assert canary.strip() == "iris: canary -> v1"
    assert in_use.returncode == 1 and "409" in in_use.stderr
    assert unaliased.strip() == "iris: canary removed"
    assert deleted.strip() == "iris: v1 deleted"
    assert after_delete.strip() == "iris: versions [2]; production=v2"
    assert sorted(p.name for p in (server_models / "iris").iterdir() if p.is_dir()) == ["2"]
    # push compiles, and --url sends the compiled form with the version
    assert manifest["runtime"]["name"] == "onnx"
    assert (server_models / "iris" / "2" / "model.onnx").is_file()


def test_push_promote_and_roll_back_on_a_local_registry(tmp_path: Path) -> None:
    env = {
        "SERVING_MODEL_DIR": str(tmp_path / "models"),
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "keys" / "signing-key.pem"),
    }
    _ok(env, "train", "iris", "--promote", "production")
    artifact = str(tmp_path / "models" / "iris" / "1" / "model.joblib")

    pushed = _ok(env, "push", artifact, "--name", "iris", "--promote", "production")
    rolled = _ok(env, "rollback", "iris")
    listed = _ok(env, "models")
    missing = run_cli(env, "push", str(tmp_path / "nothing.joblib"), "--name", "iris")
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n6.0,2.2,5.0,1.5\n7.7,3.0,6.1,2.3\n")
    _ok(env, "push", artifact, "--name", "iris", "--data", str(rows))
    checked = json.loads((tmp_path / "models" / "iris" / "3" / "manifest.json").read_text())

    assert pushed.splitlines() == ["iris: published v2", "iris: production -> v2"]
    assert rolled.strip() == "iris: production -> v1"
    assert listed.strip() == "iris: versions [1, 2]; production=v1"
    assert (missing.returncode, "no such file" in missing.stderr) == (1, True)
    assert checked["compiled"]["parity"]["rows"] == 3
    assert checked["compiled"]["parity"]["rows_from"] == "data-file"
