"""The `serving` command on a local registry, in process: verbs, errors, help."""

import argparse
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from serving.cli import build_parser, main
from serving.cli.publishing import DEMO_MODELS
from serving.core.settings import Settings
from serving.repository.signing import public_key_file, trusted_keys_from
from serving.repository.store import ModelStore
from tests.conftest import ClientFactory
from training.data import DATASET_NAMES


@pytest.fixture
def local_registry(
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    trusted_key_text: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The CLI's environment on a copy of the trained registry, signing with its key."""
    key_file = tmp_path / "keys" / "signing-key.pem"
    key_file.parent.mkdir()
    key_file.write_bytes(
        signing_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    monkeypatch.setenv("SERVING_MODEL_DIR", str(registry_dir))
    monkeypatch.setenv("SERVING_TRUSTED_KEYS", trusted_key_text)
    monkeypatch.setenv("SERVING_SIGNING_KEY_FILE", str(key_file))
    return registry_dir


def _store() -> ModelStore:
    settings = Settings()
    return ModelStore(settings.model_dir, trusted_keys_from(settings))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_demo_models_of_the_cli_are_the_bundled_data_sets() -> None:
    assert DEMO_MODELS == DATASET_NAMES


def test_delete_alias_and_delete_version_on_a_local_registry(
    local_registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = _run(capsys, "push", str(local_registry / "iris/1/model.joblib"), "--name", "iris")
    promoted = _run(capsys, "promote", "iris", "2", "--alias", "canary")

    in_use = _run(capsys, "delete-version", "iris", "2")
    unaliased = _run(capsys, "delete-alias", "iris", "canary")
    deleted = _run(capsys, "delete-version", "iris", "2")
    gone_alias = _run(capsys, "delete-alias", "iris", "canary")

    assert (pushed[:2], promoted[:2]) == ((0, "iris: published v2\n"), (0, "iris: canary -> v2\n"))
    assert in_use[0] == 1 and "canary" in in_use[2]
    assert unaliased == (0, "iris: canary removed\n", "")
    assert deleted == (0, "iris: v2 deleted\n", "")
    assert gone_alias[0] == 1 and "no alias 'canary'" in gone_alias[2]
    assert _store().versions("iris") == [1]
    assert "canary" not in _store().read_aliases("iris").aliases


def test_a_bad_setting_is_one_line_and_exit_code_2(
    local_registry: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVING_MAX_ROWS", "abc")

    code, out, err = _run(capsys, "models")

    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: SERVING_MAX_ROWS='abc': ")


def test_a_missing_trusted_keys_file_is_one_line_and_exit_code_1(
    local_registry: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "no-such-keys.txt"
    monkeypatch.setenv("SERVING_TRUSTED_KEYS_FILE", str(missing))

    code, _, err = _run(capsys, "models")

    assert code == 1
    assert (
        err
        == f"error: cannot read SERVING_TRUSTED_KEYS_FILE {missing}: No such file or directory\n"
    )


def test_serve_checks_the_trusted_keys_before_starting_gunicorn(
    local_registry: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    monkeypatch.setenv("SERVING_TRUSTED_KEYS_FILE", str(tmp_path / "no-such-keys.txt"))

    code, _, err = _run(capsys, "serve", "--workers", "1")

    assert (code, started) == (1, [])
    assert err.startswith("error: cannot read SERVING_TRUSTED_KEYS_FILE")


def test_serve_refuses_a_grpc_port_another_server_listens_on(
    local_registry: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    with socket.socket() as other_server:
        other_server.bind(("127.0.0.1", 0))
        other_server.listen()
        monkeypatch.setenv("SERVING_GRPC_PORT", str(other_server.getsockname()[1]))

        refused, _, err = _run(capsys, "serve", "--workers", "1", "--host", "127.0.0.1")
    monkeypatch.setenv("SERVING_GRPC_PORT", "0")
    main(["serve", "--workers", "1", "--host", "127.0.0.1"])

    assert refused == 1 and "is already in use" in err
    assert len(started) == 1  # only the second call went on to start gunicorn


def test_a_damaged_signing_key_is_one_line(
    local_registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "keys" / "signing-key.pem"
    key_file.write_text("not a key\n")

    code, _, err = _run(capsys, "push", str(local_registry / "iris/1/model.joblib"), "--name", "x")

    assert code == 1
    assert err.startswith(f"error: cannot read the signing key {key_file}") and err.count("\n") == 1
    assert _store().versions("x") == []


def test_an_untrusted_key_text_is_one_line(
    local_registry: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVING_TRUSTED_KEYS", "not-base64!")

    code, _, err = _run(capsys, "models")

    assert code == 1
    assert err.startswith("error: trusted key 'not-base64!'... is not an Ed25519 public key")


def test_make_serve_publishes_the_demo_models_under_production_and_later_ones_wait(
    tmp_path: Path,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The Makefile's training line, twice (a second `make serve`), then `serving train iris`."""
    makefile = (repo_root / "Makefile").read_text()
    line = re.search(r"^DEMO_TRAIN := (.+)$", makefile, re.MULTILINE)
    assert line is not None and "$(DEMO_TRAIN)" in makefile
    monkeypatch.setenv("SERVING_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SERVING_SIGNING_KEY_FILE", str(tmp_path / "keys" / "signing-key.pem"))

    first = _run(capsys, *line.group(1).split())
    again = _run(capsys, *line.group(1).split())
    later = _run(capsys, "train", "iris")
    served_before = _store().resolve("iris", None)
    _run(capsys, "promote", "iris", "2")

    assert (first[0], again[0], later[0]) == (0, 0, 0)
    assert "skipped" in again[2]
    for name in DEMO_MODELS:
        assert _store().read_aliases(name).aliases == {"production": 2 if name == "iris" else 1}
    assert served_before == 1
    assert _store().resolve("iris", None) == 2


async def test_a_version_trained_after_make_serve_is_not_served_until_promoted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    client_for: ClientFactory,
) -> None:
    key_file = tmp_path / "keys" / "signing-key.pem"
    monkeypatch.setenv("SERVING_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SERVING_SIGNING_KEY_FILE", str(key_file))
    _run(capsys, "train", "iris", "--if-empty", "--promote", "production")
    _run(capsys, "train", "iris")
    row = {"instances": [[5.1, 3.5, 1.4, 0.2]]}

    async with client_for(Settings()) as client:
        before = (await client.post("/models/iris/predict", json=row)).json()
    _run(capsys, "promote", "iris", "2")
    async with client_for(Settings()) as client:
        after = (await client.post("/models/iris/predict", json=row)).json()

    assert public_key_file(key_file).exists()
    assert (before["version"], after["version"]) == (1, 2)


_VERBS = (
    "serve",
    "train",
    "push",
    "promote",
    "rollback",
    "delete-alias",
    "delete-version",
    "models",
)


def test_every_argument_has_help(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    add_argument = argparse.ArgumentParser.add_argument

    def recording(self: argparse.ArgumentParser, *names: str, **options: Any) -> argparse.Action:
        calls.append((names, options))
        return add_argument(self, *names, **options)

    monkeypatch.setattr(argparse.ArgumentParser, "add_argument", recording)
    build_parser()

    assert len(calls) > 2 * len(_VERBS)
    assert [names for names, options in calls if not options.get("help")] == []


@pytest.mark.parametrize("verb", _VERBS)
def test_help_shows_no_empty_choice_list(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([verb, "--help"])

    shown = capsys.readouterr().out
    assert exited.value.code == 0
    assert "[]" not in shown and "usage: serving " + verb in shown


def test_an_unknown_demo_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["train", "mnist"])

    assert exited.value.code == 2
    assert "'mnist' is not one of iris, breast_cancer, diabetes" in capsys.readouterr().err
