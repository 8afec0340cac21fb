"""Every error row of the contract, sent over HTTP: status, stable code, JSON shape."""

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ClientFactory, SettingsFactory

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
IRIS_NAMED = {
    "sepal_length_cm": 5.1,
    "sepal_width_cm": 3.5,
    "petal_length_cm": 1.4,
    "petal_width_cm": 0.2,
}


def _error_code(answer: httpx.Response) -> str:
    payload = answer.json()
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message"}
    assert payload["error"]["message"]
    code: str = payload["error"]["code"]
    return code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"instances": [[5.1, 3.5', "malformed_request"),
        (b"", "malformed_request"),
        (b"[[5.1, 3.5, 1.4, 0.2]]", "malformed_request"),
        (b'"instances"', "malformed_request"),
        (b'{"instances": [[1e999, 1, 1, 1]]}', "malformed_request"),
        (b'{"instances": [[NaN, 1, 1, 1]]}', "malformed_request"),
    ],
)
async def test_unparseable_bodies_are_422(client: httpx.AsyncClient, raw: bytes, code: str) -> None:
    answer = await client.post("/models/iris/predict", content=raw)

    assert answer.status_code == 422
    assert _error_code(answer) == code


@pytest.mark.parametrize(
    "body",
    [
        {"instances": "5.1,3.5"},
        {"instances": []},
        {},
        {"instances": [IRIS_ROW], "probabilities": "yes"},
        {"instances": [IRIS_ROW], "version": [1]},
        {"instances": [IRIS_ROW], "version": 0},
        {"instances": [IRIS_ROW], "version": True},
        {"instances": [IRIS_ROW], "extra": 1},
        {"model": 5, "instances": [IRIS_ROW]},
    ],
)
async def test_wrong_field_types_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await client.post("/predict", json={"model": "iris", **body})

    assert answer.status_code == 422
    assert _error_code(answer) == "malformed_request"


BAD_ROWS: list[list[Any]] = [
    [[5.1, 3.5, 1.4]],
    [[5.1, 3.5, 1.4, 0.2, 9.9]],
    [IRIS_ROW, [1.0]],
    [[[5.1, 3.5, 1.4, 0.2]]],
    [5.1, 3.5, 1.4, 0.2],
    [{**IRIS_NAMED, "colour": 1.0}],
    [{k: v for k, v in IRIS_NAMED.items() if k != "petal_width_cm"}],
    [IRIS_ROW, IRIS_NAMED],
    [IRIS_NAMED, IRIS_ROW],
    [["5.1", 3.5, 1.4, 0.2]],
    [[True, False, True, True]],
    [IRIS_ROW, [5.1, 3.5, 1.4, True]],  # numpy alone would read True as 1.0 here
    [[0.0, 3.5, 1.4, False]],
    [{**IRIS_NAMED, "sepal_length_cm": True}],
    [[{"x": 1}, 3.5, 1.4, 0.2]],
    [[None, 3.5, 1.4, 0.2]],
    [[10**400, 3.5, 1.4, 0.2]],
    [{**IRIS_NAMED, "sepal_length_cm": "wide"}],
]
# Rows that push a body over 64 KiB, the size from which it is decoded (and positional rows
# converted) in a worker thread: the bad rows must meet the same checks on that path.
BULK = 4000


@pytest.mark.parametrize("rows", BAD_ROWS)
async def test_bad_rows_are_422_invalid_input(client: httpx.AsyncClient, rows: list[Any]) -> None:
    answer = await client.post("/models/iris/predict", json={"instances": rows})

    assert answer.status_code == 422, answer.text
    assert _error_code(answer) in {"invalid_input", "malformed_request"}


@pytest.mark.parametrize("rows", BAD_ROWS)
async def test_bad_rows_in_a_large_body_get_the_same_error(
    client: httpx.AsyncClient, rows: list[Any]
) -> None:
    small = await client.post("/models/iris/predict", json={"instances": rows})
    filler = [IRIS_NAMED] if isinstance(rows[0], dict) else [IRIS_ROW]
    large_body = {"instances": filler * BULK + rows}

    for large in (large_body, {"instances": rows + filler * BULK}):
        answer = await client.post("/models/iris/predict", json=large)

        assert answer.status_code == 422, answer.text
        assert _error_code(answer) == _error_code(small)


@pytest.mark.parametrize(
    "rows",
    [
        [IRIS_ROW, [5.1, 3.5, 1.4, True]],
        [IRIS_ROW] * BULK + [[1, 1, 1, False]],
        # thousands of cells equal to 0 or 1, each of which could have been a boolean
        [[0, 1, 0.0, 1.0]] * BULK + [[1, 1, 1, False]],
    ],
)
async def test_a_boolean_among_numbers_is_422_even_beside_the_probabilities_flag(
    client: httpx.AsyncClient, rows: list[Any]
) -> None:
    answer = await client.post(
        "/models/iris/predict", json={"instances": rows, "probabilities": True}
    )

    assert answer.status_code == 422, answer.text
    assert _error_code(answer) == "invalid_input"
    assert "is not a number" in answer.json()["error"]["message"]


async def test_a_large_body_of_rows_one_feature_short_is_422(client: httpx.AsyncClient) -> None:
    # every row alike, so the matrix is built before the model is known, then refused
    answer = await client.post("/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4]] * BULK})

    assert answer.status_code == 422, answer.text
    assert _error_code(answer) == "invalid_input"
    assert "the model takes 4 features" in answer.json()["error"]["message"]


async def test_a_large_body_for_an_unknown_model_is_404_whatever_its_rows(
    client: httpx.AsyncClient,
) -> None:
    for rows in ([IRIS_ROW] * BULK, [[5.1, 3.5, 1.4]] * BULK, [IRIS_ROW] * BULK + [["x"]]):
        answer = await client.post("/models/nope/predict", json={"instances": rows})

        assert answer.status_code == 404, answer.text


async def test_large_bodies_by_name_or_with_missing_values_are_served(
    client: httpx.AsyncClient,
) -> None:
    diabetes_row: list[float | None] = [0.02, -0.04, 0.06, 0.02, -0.04, None, 0.0, 0.0, 0.02, 0.0]

    by_name = await client.post("/models/iris/predict", json={"instances": [IRIS_NAMED] * BULK})
    missing = await client.post(
        "/models/diabetes/predict", json={"instances": [diabetes_row] * BULK}
    )

    assert by_name.status_code == 200, by_name.text
    assert len(by_name.json()["predictions"]) == BULK
    assert missing.status_code == 200, missing.text
    assert len(set(missing.json()["predictions"])) == 1


async def test_missing_values_are_accepted_by_a_model_that_handles_them(
    client: httpx.AsyncClient,
) -> None:
    row: list[float | None] = [0.02, -0.04, 0.06, 0.02, -0.04, None, 0.0, -0.002, 0.02, -0.01]

    answer = await client.post("/models/diabetes/predict", json={"instances": [row]})

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 1


async def test_probabilities_from_a_regressor_are_422(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/models/diabetes/predict", json={"instances": [[0.0] * 10], "probabilities": True}
    )

    assert answer.status_code == 422
    assert _error_code(answer) == "invalid_input"


async def test_more_rows_than_the_limit_is_422(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for(max_rows=5)) as client:
        answer = await client.post("/models/iris/predict", json={"instances": [IRIS_ROW] * 6})
        at_limit = await client.post("/models/iris/predict", json={"instances": [IRIS_ROW] * 5})

    assert answer.status_code == 422
    assert _error_code(answer) == "too_many_rows"
    assert at_limit.status_code == 200


async def test_a_body_over_the_size_limit_is_413_declared_or_streamed(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    big = b'{"instances": [' + b",".join([b"[5.1, 3.5, 1.4, 0.2]"] * 100) + b"]}"

    async def chunks() -> Any:
        for start in range(0, len(big), 256):
            yield big[start : start + 256]

    async with client_for(settings_for(max_body_bytes=1000)) as client:
        declared = await client.post("/models/iris/predict", content=big)
        streamed = await client.post("/models/iris/predict", content=chunks())

    assert declared.status_code == streamed.status_code == 413
    assert _error_code(declared) == _error_code(streamed) == "body_too_large"
    assert "X-Request-ID" in declared.headers


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/models/nosuch/predict", {"instances": [IRIS_ROW]}, "model_not_found"),
        ("/predict", {"model": "nosuch", "instances": [IRIS_ROW]}, "model_not_found"),
        ("/predict", {"model": "iris", "version": 7, "instances": [IRIS_ROW]}, "version_not_found"),
        ("/models/iris/versions/7/predict", {"instances": [IRIS_ROW]}, "version_not_found"),
        ("/models/iris/versions/canary/predict", {"instances": [IRIS_ROW]}, "alias_not_found"),
        ("/models/Not%20A%20Name/predict", {"instances": [IRIS_ROW]}, "model_not_found"),
    ],
)
async def test_unknown_model_version_or_alias_is_404(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], code: str
) -> None:
    answer = await client.post(path, json=body)

    assert answer.status_code == 404
    assert _error_code(answer) == code


@pytest.mark.parametrize(
    "path", ["/models/nosuch", "/models/iris/versions/9", "/models/iris/versions/staging"]
)
async def test_reading_an_unknown_model_or_version_is_404(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)

    assert answer.status_code == 404
    assert _error_code(answer).endswith("not_found")


async def test_unknown_route_and_wrong_method_use_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/no/such/route")
    wrong_method = await client.get("/predict")

    assert (missing.status_code, _error_code(missing)) == (404, "not_found")
    assert (wrong_method.status_code, _error_code(wrong_method)) == (405, "method_not_allowed")


async def test_model_is_required_when_several_are_served(client: httpx.AsyncClient) -> None:
    answer = await client.post("/predict", json={"instances": [IRIS_ROW]})

    assert answer.status_code == 422
    assert "model is required" in answer.json()["error"]["message"]


async def test_model_may_be_omitted_when_exactly_one_is_served(
    client_for: ClientFactory, settings_for: SettingsFactory, registry_dir: Path
) -> None:
    for other in ("breast_cancer", "diabetes"):
        shutil.rmtree(registry_dir / other)

    async with client_for(settings_for()) as client:
        answer = await client.post("/predict", json={"instances": [IRIS_ROW]})

    assert answer.status_code == 200
    assert answer.json()["model"] == "iris"


async def test_not_ready_while_no_model_is_loaded(
    client_for: ClientFactory, settings_for: SettingsFactory, tmp_path: Path
) -> None:
    async with client_for(settings_for(model_dir=tmp_path / "empty")) as client:
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")

    assert ready.status_code == 503
    assert _error_code(ready) == "not_ready"
    assert live.status_code == 200


async def test_a_bad_request_changes_nothing(client: httpx.AsyncClient) -> None:
    before = (await client.get("/models")).json()

    await client.post("/models/iris/predict", json={"instances": [[1.0]]})
    await client.post("/models/iris/predict", content=b"{")
    good = await client.post("/models/iris/predict", json={"instances": [IRIS_ROW]})

    assert (await client.get("/models")).json() == before
    assert good.status_code == 200
    assert good.headers["X-Cache"] == "MISS"


async def test_zeros_and_ones_that_are_numbers_are_served_beside_the_flag(
    client: httpx.AsyncClient,
) -> None:
    rows = [[0, 1, 0.0, 1.0]] * BULK

    answer = await client.post(
        "/models/iris/predict", json={"instances": rows, "probabilities": True}
    )

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["probabilities"]) == BULK
