"""A body over its limit is 413 however it is sent: with a length, or chunked without one."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ClientFactory, SettingsFactory
from tests.uploads import ADMIN, ADMIN_TOKEN, parts_of, signed_iris

CHUNK = 16 * 1024


def multipart(parts: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """The encoded multipart body and its content type, as httpx would send them."""
    request = httpx.Request("POST", "http://test/", files=parts)
    return request.read(), request.headers["content-type"]


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """Streams `body` in pieces: httpx then sends it chunked, without a Content-Length."""
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


def _versions_on_disk(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "iris").iterdir() if p.name.isdigit())


async def test_a_chunked_upload_over_its_limit_is_413_and_stores_nothing(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    registry_dir: Path,
    signing_key: Ed25519PrivateKey,
) -> None:
    signed = signed_iris(registry_dir, signing_key)
    small = parts_of(signed)
    limit = sum(len(part[1]) for part in small.values()) + 4096
    big = {
        **small,
        "artifact": ("model.joblib", signed.artifact + b"\0" * 8192, "application/octet-stream"),
    }
    settings = settings_for(admin_tokens=[ADMIN_TOKEN], max_upload_bytes=limit)
    async with client_for(settings) as client:
        body, content_type = multipart(big)
        refused = await client.post(
            "/models/iris/versions",
            content=chunked(body),
            headers={**ADMIN, "content-type": content_type},
        )
        body, content_type = multipart(small)
        accepted = await client.post(
            "/models/iris/versions",
            content=chunked(body),
            headers={**ADMIN, "content-type": content_type},
        )

    assert "content-length" not in refused.request.headers
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "body_too_large"
    assert "SERVING_MAX_UPLOAD_BYTES" in refused.json()["error"]["message"]
    assert accepted.status_code == 201, accepted.text
    assert _versions_on_disk(registry_dir) == ["1", "2"]


async def test_a_chunked_prediction_body_over_its_limit_is_413(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    body = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2]," * 200 + b"[5.1, 3.5, 1.4, 0.2]]}"
    async with client_for(settings_for(max_body_bytes=1000)) as client:
        predict = await client.post("/models/iris/predict", content=chunked(body))
        infer = await client.post("/v2/models/iris/infer", content=chunked(body))

    assert predict.status_code == 413
    assert predict.json()["error"]["code"] == "body_too_large"
    assert infer.status_code == 413
    assert "SERVING_MAX_BODY_BYTES" in infer.json()["error"]
