"""Management routes over HTTP: upload, aliases, rollback, deletion, and every error row."""

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from serving.repository.signing import sign
from tests.conftest import ClientFactory, SettingsFactory
from tests.uploads import (
    ADMIN,
    ADMIN_TOKEN,
    eventually,
    parts_of,
    served_version,
    signed_iris,
    upload_parts,
)

# No poll within a test's lifetime: only the route's own wake-up can make the worker reload.
_NO_POLL = 3600.0


@pytest.fixture
async def admin_client(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(admin_tokens=[ADMIN_TOKEN], poll_interval_seconds=_NO_POLL)
    async with client_for(settings) as client:
        yield client


def _versions_on_disk(registry_dir: Path, name: str = "iris") -> list[str]:
    return sorted(entry.name for entry in (registry_dir / name).iterdir() if entry.is_dir())


def _code(answer: httpx.Response) -> str:
    code: str = answer.json()["error"]["code"]
    return code


async def test_upload_stores_the_next_version_and_this_worker_serves_it_at_once(
    admin_client: httpx.AsyncClient, registry_dir: Path, signing_key: Ed25519PrivateKey
) -> None:
    signed = signed_iris(registry_dir, signing_key)

    answer = await admin_client.post("/models/iris/versions", files=parts_of(signed), headers=ADMIN)

    assert answer.status_code == 201, answer.text
    assert answer.json() == {"name": "iris", "version": 2}
    assert (registry_dir / "iris" / "2" / "model.joblib").read_bytes() == signed.artifact

    await eventually(partial(_serves, admin_client, 2), timeout_seconds=2)


async def test_alias_moves_and_rollback_are_followed_without_waiting_for_the_poll(
    admin_client: httpx.AsyncClient, registry_dir: Path, signing_key: Ed25519PrivateKey
) -> None:
    for _ in range(2):
        signed = signed_iris(registry_dir, signing_key)
        await admin_client.post("/models/iris/versions", files=parts_of(signed), headers=ADMIN)

    for version in (2, 1):
        answer = await admin_client.put(
            "/models/iris/aliases/production", json={"version": version}, headers=ADMIN
        )
        assert answer.json() == {"name": "iris", "alias": "production", "version": version}
        await eventually(partial(_serves, admin_client, version), timeout_seconds=2)
    rolled = await admin_client.post("/models/iris/aliases/production/rollback", headers=ADMIN)
    await eventually(partial(_serves, admin_client, 2), timeout_seconds=2)

    assert rolled.status_code == 200
    assert rolled.json() == {"name": "iris", "alias": "production", "version": 2}
    detail = (await admin_client.get("/models/iris")).json()
    assert detail["aliases"] == {"production": 2}
    assert detail["default_version"] == 2


async def _serves(client: httpx.AsyncClient, version: int) -> bool:
    return await served_version(client) == version


async def test_deleting_a_version_an_alias_points_at_is_409_and_deletes_nothing(
    admin_client: httpx.AsyncClient, registry_dir: Path
) -> None:
    await admin_client.put("/models/iris/aliases/staging", json={"version": 1}, headers=ADMIN)

    answer = await admin_client.delete("/models/iris/versions/1", headers=ADMIN)

    assert answer.status_code == 409
    assert _code(answer) == "version_in_use"
    assert "staging" in answer.json()["error"]["message"]
    assert _versions_on_disk(registry_dir) == ["1"]


async def test_a_version_is_deleted_once_its_alias_is_removed(
    admin_client: httpx.AsyncClient, registry_dir: Path, signing_key: Ed25519PrivateKey
) -> None:
    signed = signed_iris(registry_dir, signing_key)
    await admin_client.post("/models/iris/versions", files=parts_of(signed), headers=ADMIN)
    await admin_client.put("/models/iris/aliases/canary", json={"version": 2}, headers=ADMIN)

    removed = await admin_client.delete("/models/iris/aliases/canary", headers=ADMIN)
    deleted = await admin_client.delete("/models/iris/versions/2", headers=ADMIN)
    again = await admin_client.delete("/models/iris/versions/2", headers=ADMIN)

    assert (removed.status_code, deleted.status_code) == (204, 204)
    assert (again.status_code, _code(again)) == (404, "version_not_found")
    assert _versions_on_disk(registry_dir) == ["1"]
    await eventually(partial(_serves, admin_client, 1), timeout_seconds=2)
    republished = await admin_client.post(
        "/models/iris/versions",
        files=parts_of(signed_iris(registry_dir, signing_key)),
        headers=ADMIN,
    )
    assert republished.json()["version"] == 3  # numbers are never handed out twice


def _tampered_manifest(signed: Any) -> dict[str, Any]:
    changed = signed.manifest.model_copy(update={"metrics": {"accuracy": 1.0}})
    return upload_parts(changed, signed.artifact, signed.signature)


def _unknown_key(signed: Any) -> dict[str, Any]:
    stranger = sign(signed.manifest, Ed25519PrivateKey.generate()).model_dump_json().encode()
    return upload_parts(signed.manifest, signed.artifact, stranger)


@pytest.mark.parametrize(
    ("build", "path", "says"),
    [
        (lambda s: upload_parts(s.manifest, s.artifact, None), "iris", "missing signature"),
        (lambda s: upload_parts(s.manifest, s.artifact + b"!", s.signature), "iris", "sha256"),
        (_tampered_manifest, "iris", "invalid signature"),
        (_unknown_key, "iris", "unknown key"),
        (
            lambda s: upload_parts(s.manifest, s.artifact, b"not json"),
            "iris",
            "malformed signature",
        ),
        (lambda s: upload_parts(b"{not json", s.artifact, s.signature), "iris", "invalid manifest"),
        (
            lambda s: upload_parts(b'{"name": "iris"}', s.artifact, s.signature),
            "iris",
            "invalid manifest",
        ),
        (parts_of, "diabetes", "uploaded to 'diabetes'"),
        (
            lambda s: {"manifest": parts_of(s)["manifest"]},
            "iris",
            "missing multipart part(s): artifact",
        ),
    ],
    ids=[
        "missing-signature",
        "tampered-artifact",
        "tampered-manifest",
        "unknown-key",
        "malformed-signature",
        "manifest-not-json",
        "manifest-incomplete",
        "name-mismatch",
        "no-artifact",
    ],
)
async def test_rejected_uploads_are_422_saying_why_and_store_nothing(
    admin_client: httpx.AsyncClient,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
    build: Any,
    path: str,
    says: str,
) -> None:
    before = {name: _versions_on_disk(registry_dir, name) for name in ("iris", "diabetes")}
    files = build(signed_iris(registry_dir, signing_key))

    answer = await admin_client.post(f"/models/{path}/versions", files=files, headers=ADMIN)

    assert answer.status_code == 422, answer.text
    assert says in answer.json()["error"]["message"]
    assert {name: _versions_on_disk(registry_dir, name) for name in before} == before
    assert not [p for p in (registry_dir / "iris").iterdir() if p.name.startswith(".staging")]


async def test_a_json_body_instead_of_a_multipart_upload_is_422(
    admin_client: httpx.AsyncClient,
) -> None:
    answer = await admin_client.post("/models/iris/versions", json={"artifact": "x"}, headers=ADMIN)

    assert (answer.status_code, _code(answer)) == (422, "malformed_request")


_MANAGEMENT_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/models/iris/versions", {"files": {"artifact": ("a", b"x")}}),
    ("PUT", "/models/iris/aliases/production", {"json": {"version": 1}}),
    ("DELETE", "/models/iris/aliases/production", {}),
    ("POST", "/models/iris/aliases/production/rollback", {}),
    ("DELETE", "/models/iris/versions/1", {}),
]
_CALL_IDS = ["upload", "set-alias", "remove-alias", "rollback", "delete-version"]


@pytest.mark.parametrize(("method", "path", "options"), _MANAGEMENT_CALLS, ids=_CALL_IDS)
async def test_management_is_403_while_no_admin_token_is_configured(
    client: httpx.AsyncClient, registry_dir: Path, method: str, path: str, options: dict[str, Any]
) -> None:
    answer = await client.request(method, path, headers=ADMIN, **options)

    assert answer.status_code == 403
    assert _code(answer) == "management_disabled"
    assert _versions_on_disk(registry_dir) == ["1"]


@pytest.mark.parametrize(("method", "path", "options"), _MANAGEMENT_CALLS, ids=_CALL_IDS)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {ADMIN_TOKEN}", "Bearer ", f"Bearer {ADMIN_TOKEN}x"],
    ids=["none", "wrong", "basic-scheme", "empty", "longer"],
)
async def test_management_without_a_valid_admin_token_is_401_with_a_bearer_challenge(
    admin_client: httpx.AsyncClient,
    registry_dir: Path,
    method: str,
    path: str,
    options: dict[str, Any],
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    answer = await admin_client.request(method, path, headers=headers, **options)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert _code(answer) == "unauthorized"
    assert _versions_on_disk(registry_dir) == ["1"]


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("PUT", "/models/nosuch/aliases/production", {"version": 1}, "model_not_found"),
        ("PUT", "/models/iris/aliases/production", {"version": 9}, "version_not_found"),
        ("DELETE", "/models/iris/aliases/staging", None, "alias_not_found"),
        ("POST", "/models/iris/aliases/production/rollback", None, "alias_not_found"),
        ("DELETE", "/models/iris/versions/9", None, "version_not_found"),
        ("DELETE", "/models/nosuch/versions/1", None, "model_not_found"),
    ],
)
async def test_unknown_models_versions_and_aliases_are_404(
    admin_client: httpx.AsyncClient, method: str, path: str, body: Any, code: str
) -> None:
    answer = await admin_client.request(method, path, json=body, headers=ADMIN)

    assert (answer.status_code, _code(answer)) == (404, code)


async def test_rollback_without_an_earlier_version_is_404(
    admin_client: httpx.AsyncClient,
) -> None:
    await admin_client.put("/models/iris/aliases/production", json={"version": 1}, headers=ADMIN)

    answer = await admin_client.post("/models/iris/aliases/production/rollback", headers=ADMIN)

    assert answer.status_code == 404
    assert "no earlier version" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("alias", "body"),
    [
        ("production", {"version": "two"}),
        ("production", {"version": "1"}),
        ("production", {"version": True}),
        ("production", {"version": 0}),
        ("production", {}),
        ("production", {"version": 1, "extra": 1}),
        ("Production", {"version": 1}),
        ("12", {"version": 1}),
        ("-x", {"version": 1}),
    ],
)
async def test_invalid_alias_moves_are_422_and_change_nothing(
    admin_client: httpx.AsyncClient, registry_dir: Path, alias: str, body: dict[str, Any]
) -> None:
    answer = await admin_client.put(f"/models/iris/aliases/{alias}", json=body, headers=ADMIN)

    assert answer.status_code == 422, answer.text
    assert not (registry_dir / "iris" / "aliases.json").exists()


async def test_deleting_with_a_non_numeric_version_is_422(admin_client: httpx.AsyncClient) -> None:
    answer = await admin_client.delete("/models/iris/versions/latest", headers=ADMIN)

    assert answer.status_code == 422


async def test_uploads_have_their_own_size_limit(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    signed = signed_iris(registry_dir, signing_key)
    size = len(signed.artifact)
    settings = settings_for(
        admin_tokens=[ADMIN_TOKEN], max_body_bytes=size // 2, max_upload_bytes=size + 4096
    )
    too_big = upload_parts(signed.manifest, signed.artifact + b"\0" * 8192, signed.signature)

    async with client_for(settings) as client:
        accepted = await client.post("/models/iris/versions", files=parts_of(signed), headers=ADMIN)
        refused = await client.post("/models/iris/versions", files=too_big, headers=ADMIN)
        predict = await client.post("/models/iris/predict", content=b"[" * size)

    assert accepted.status_code == 201, accepted.text
    assert refused.status_code == 413
    assert "SERVING_MAX_UPLOAD_BYTES" in refused.json()["error"]["message"]
    assert predict.status_code == 413
    assert _versions_on_disk(registry_dir) == ["1", "2"]
