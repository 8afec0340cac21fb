"""HTTP around the routes: HEAD on probes, the root redirect, Allow on 405, encoded bodies."""

import gzip
import zlib
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import ClientFactory, SettingsFactory

ROW = [5.1, 3.5, 1.4, 0.2]
BODY = orjson.dumps({"instances": [ROW]})
PROBES = ["/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"]


@pytest.mark.parametrize("path", PROBES)
async def test_head_on_a_probe_answers_200_without_a_body(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.head(path)

    assert answer.status_code == 200
    assert answer.content == b""


@pytest.mark.parametrize("path", ["/health/ready", "/v2/health/ready"])
async def test_head_on_readiness_is_503_while_nothing_is_loaded(
    client_for: ClientFactory, settings_for: SettingsFactory, tmp_path: Path, path: str
) -> None:
    empty = tmp_path / "empty-registry"
    empty.mkdir()
    async with client_for(settings_for(model_dir=empty)) as client:
        answer = await client.head(path)

    assert answer.status_code == 503


async def test_the_root_redirects_to_the_docs(client: httpx.AsyncClient) -> None:
    answer = await client.get("/")
    docs = await client.get(answer.headers["location"])

    assert answer.status_code == 307
    assert answer.headers["location"] == "/docs"
    assert docs.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/predict", "POST"),
        ("DELETE", "/health/live", "GET, HEAD"),
        ("GET", "/models/iris/aliases/production", "DELETE, PUT"),  # two routes, one path
        ("POST", "/models/iris/versions/1", "DELETE, GET"),
        ("PUT", "/v2/models/iris/infer", "POST"),
    ],
)
async def test_a_405_names_every_method_the_path_takes(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    answer = await client.request(method, path)

    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", lambda body: body),
    ],
)
async def test_an_encoded_predict_body_is_read_like_a_plain_one(
    client: httpx.AsyncClient, encoding: str, encode: object
) -> None:
    assert callable(encode)
    plain = await client.post("/models/iris/predict", content=BODY)
    encoded = await client.post(
        "/models/iris/predict", content=encode(BODY), headers={"Content-Encoding": encoding}
    )

    assert encoded.status_code == 200, encoded.text
    assert encoded.json() == plain.json()


async def test_predict_and_v2_both_read_gzip(client: httpx.AsyncClient) -> None:
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}
    v2_body = gzip.compress(orjson.dumps({"inputs": [tensor]}))
    headers = {"Content-Encoding": "gzip"}

    v1 = await client.post("/predict", content=gzip.compress(orjson.dumps({"model": "iris",
                           "instances": [ROW]})), headers=headers)  # fmt: skip
    v2 = await client.post("/v2/models/iris/infer", content=v2_body, headers=headers)

    assert (v1.status_code, v2.status_code) == (200, 200)
    assert v1.json()["predictions"] == v2.json()["outputs"][0]["data"]


async def test_an_encoding_the_server_cannot_read_is_a_415_not_a_422(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/models/iris/predict", content=b"\x1b\x00\x00", headers={"Content-Encoding": "br"}
    )

    assert answer.status_code == 415
    assert answer.json()["error"]["code"] == "unsupported_encoding"
    assert "br" in answer.json()["error"]["message"]


@pytest.mark.parametrize("content", [b"not gzip at all", gzip.compress(BODY)[:-12]])
async def test_a_broken_gzip_body_is_a_422_that_says_so(
    client: httpx.AsyncClient, content: bytes
) -> None:
    answer = await client.post(
        "/models/iris/predict", content=content, headers={"Content-Encoding": "gzip"}
    )

    assert answer.status_code == 422
    assert "not valid gzip" in answer.json()["error"]["message"]


async def test_a_gzip_bomb_is_refused_with_413_after_inflating_at_most_the_limit(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    bomb = gzip.compress(b'{"instances": [[' + b" " * 50_000_000 + b"1]]}")
    assert len(bomb) < 100_000  # under the body limit as sent

    async with client_for(settings_for(max_body_bytes=1_000_000)) as client:
        answer = await client.post(
            "/models/iris/predict", content=bomb, headers={"Content-Encoding": "gzip"}
        )

    assert answer.status_code == 413
    assert "SERVING_MAX_BODY_BYTES" in answer.json()["error"]["message"]
