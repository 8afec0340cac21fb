"""The CLI on a local registry refuses the names the API refuses, and then changes nothing."""

from pathlib import Path

import pytest

from tests.processes import run_cli

pytestmark = pytest.mark.slow


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file and folder under `root`, with the files' bytes."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    "args",
    [
        ("promote", "iris", "1", "--alias", "Bad Alias!"),
        ("promote", "iris", "1", "--alias", "123"),
        ("promote", "iris", "1", "--alias", "staging\n"),
        ("promote", "iris\n", "1"),
        ("promote", "ghost", "1", "--alias", "staging"),
        ("rollback", "ghost"),
        ("rollback", "Iris"),
        ("push", "{artifact}", "--name", "iris", "--promote", "Bad Alias!"),
        ("push", "{artifact}", "--name", "iris\n"),
    ],
    ids=[
        "bad-alias",
        "digit-alias",
        "alias-newline",
        "name-newline",
        "unknown-model",
        "rollback-unknown",
        "rollback-uppercase",
        "push-bad-alias",
        "push-name-newline",
    ],
)
def test_a_refused_name_exits_non_zero_and_changes_nothing(
    registry_dir: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    artifact = tmp_path / "iris.joblib"
    artifact.write_bytes((registry_dir / "iris" / "1" / "model.joblib").read_bytes())
    env = {
        "SERVING_MODEL_DIR": str(registry_dir),
        "SERVING_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
    }
    before = _snapshot(registry_dir)

    done = run_cli(env, *(arg.replace("{artifact}", str(artifact)) for arg in args))

    assert done.returncode != 0, done.stdout
    assert done.stderr.startswith("error: "), done.stderr
    assert _snapshot(registry_dir) == before
