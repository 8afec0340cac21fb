"""Hostile bodies through the real app: capped counts, bounded messages, no 5xx, live probes.

Each body here is one an attacker who may predict can send: tens of thousands of V2 inputs,
repeated names, a 1 MB string where a number belongs, nesting as deep as JSON allows,
numbers with thousands of digits. Each gets a 4xx in its route's error shape, whose
message stays short however long the body was.
"""

from typing import Any

import anyio
import httpx
import orjson
import pytest

from serving.v2.limits import MAX_DIMENSIONS, MAX_INPUTS, MAX_OUTPUTS, MAX_PARAMETERS

INFER = "/v2/models/iris/infer"
PREDICT = "/models/iris/predict"
SHORT_MESSAGE = 2048  # bytes: an error names the problem, it does not echo the body
_GOOD_INPUT = {"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}


def _one_element(name: str) -> dict[str, Any]:
    return {"name": name, "datatype": "FP64", "shape": [1], "data": [1.5]}


def _v2_message(answer: httpx.Response) -> str:
    assert answer.status_code == 400, answer.text[:300]
    assert len(answer.content) < SHORT_MESSAGE, answer.content[:300]
    payload = answer.json()
    assert set(payload) == {"error"}
    message: str = payload["error"]
    return message


def _predict_code(answer: httpx.Response) -> str:
    assert answer.status_code == 422, answer.text[:300]
    assert len(answer.content) < SHORT_MESSAGE, answer.content[:300]
    code: str = answer.json()["error"]["code"]
    return code


# --- /v2 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("same_name", [False, True], ids=["distinct", "repeated"])
async def test_forty_thousand_inputs_are_refused_by_count(
    client: httpx.AsyncClient, same_name: bool
) -> None:
    inputs = [_one_element("x" if same_name else f"x{i}") for i in range(40_000)]

    answer = await client.post(INFER, json={"inputs": inputs})

    assert f"at most {MAX_INPUTS}" in _v2_message(answer)


async def test_repeated_input_names_are_listed_briefly(client: httpx.AsyncClient) -> None:
    inputs = [_one_element(f"name{i % 2000}") for i in range(MAX_INPUTS)]

    message = _v2_message(await client.post(INFER, json={"inputs": inputs}))

    assert "unique" in message and "and 1990 more" in message


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [_GOOD_INPUT], "outputs": [{"name": f"o{i}"} for i in range(MAX_OUTPUTS + 1)]},
        {"inputs": [_GOOD_INPUT], "parameters": {f"p{i}": 1 for i in range(MAX_PARAMETERS + 1)}},
        {"inputs": [{**_GOOD_INPUT, "parameters": {f"p{i}": 1 for i in range(10_000)}}]},
    ],
    ids=["outputs", "request-parameters", "input-parameters"],
)
async def test_too_many_outputs_or_parameters_are_400(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    assert "at most" in _v2_message(await client.post(INFER, json=body))


@pytest.mark.parametrize(
    "tensor",
    [
        {**_GOOD_INPUT, "name": "n" * 1_000_000},
        {**_GOOD_INPUT, "datatype": "D" * 1_000_000},
        {**_GOOD_INPUT, "shape": [1] * (MAX_DIMENSIONS + 1), "data": [1]},
        {**_GOOD_INPUT, "shape": [1] * 100, "data": [1]},
        {**_GOOD_INPUT, "datatype": "FP64", "shape": [4], "data": [1, None, 2, "s" * 1_000_000]},
    ],
    ids=["long-name", "long-datatype", "too-many-dimensions", "100-dimensions", "long-cell"],
)
async def test_long_strings_and_deep_shapes_are_400_with_a_short_message(
    client: httpx.AsyncClient, tensor: dict[str, Any]
) -> None:
    _v2_message(await client.post(INFER, json={"inputs": [tensor]}))


@pytest.mark.parametrize("depth", [60, 1000, 2000])
async def test_data_nested_at_any_depth_is_400(client: httpx.AsyncClient, depth: int) -> None:
    head = b'{"inputs":[{"name":"input","datatype":"FP64","shape":[1,4],"data":'
    body = head + b"[" * depth + b"1" + b"]" * depth + b"}]}"

    _v2_message(await client.post(INFER, content=body))


@pytest.mark.parametrize("length", ["²".encode(), b"9" * 5000, b"-1", b"0x10"])
async def test_a_header_length_that_is_no_byte_count_is_400(
    client: httpx.AsyncClient, length: bytes
) -> None:
    body = orjson.dumps({"inputs": [_GOOD_INPUT]})
    headers = {b"Inference-Header-Content-Length": length}

    message = _v2_message(await client.post(INFER, content=body, headers=headers))

    assert "Inference-Header-Content-Length" in message


# --- /predict --------------------------------------------------------------------------------
async def test_a_megabyte_string_in_a_cell_is_422_with_a_short_message(
    client: httpx.AsyncClient,
) -> None:
    rows = [[1.0, None, 2.0, "x" * 1_000_000]]

    answer = await client.post(PREDICT, json={"instances": rows})

    assert _predict_code(answer) == "invalid_input"
    assert "1000002 characters" in answer.json()["error"]["message"]


async def test_a_thousand_unknown_or_repeated_keys_per_row(client: httpx.AsyncClient) -> None:
    unknown = {f"unknown_{k}": 1.0 for k in range(1000)}
    repeated = ",".join('"sepal_length_cm":1.5' for _ in range(1000))
    rest = '"sepal_width_cm":1,"petal_length_cm":1,"petal_width_cm":1'
    valid_row = f"{{{repeated},{rest}}}"

    refused = await client.post(PREDICT, json={"instances": [unknown] * 200})
    served = await client.post(PREDICT, content=f'{{"instances":[{",".join([valid_row] * 200)}]}}')

    assert _predict_code(refused) == "invalid_input"
    assert "and 990 more" in refused.json()["error"]["message"]
    assert served.status_code == 200 and len(served.json()["predictions"]) == 200


async def test_a_thousand_unknown_fields_are_listed_briefly(client: httpx.AsyncClient) -> None:
    body = {"instances": [[1, 2, 3, 4]], **{f"field_{k}" * 50: 1 for k in range(1000)}}

    assert _predict_code(await client.post(PREDICT, json=body)) == "malformed_request"


@pytest.mark.parametrize("version", ["1" * 5000, "²", "iris\n"])
async def test_versions_that_are_no_number_or_name_are_422(
    client: httpx.AsyncClient, version: str
) -> None:
    answer = await client.post(PREDICT, json={"instances": [[1, 2, 3, 4]], "version": version})

    assert _predict_code(answer) == "malformed_request"


@pytest.mark.parametrize("depth", [60, 1000, 2000])
async def test_nesting_of_any_depth_is_422(client: httpx.AsyncClient, depth: int) -> None:
    body = b'{"instances":[' + b"[" * depth + b"1" + b"]" * depth + b"]}"

    answer = await client.post(PREDICT, content=body)

    assert _predict_code(answer) in {"invalid_input", "malformed_request"}


# --- probes while a large body is parsed -----------------------------------------------------
@pytest.mark.parametrize("path", [PREDICT, INFER])
async def test_probes_answer_while_a_ten_megabyte_body_is_parsed(
    client: httpx.AsyncClient, path: str
) -> None:
    """The big body is parsed off the event loop: probes complete while it is in flight."""
    deep = b"[" * 500 + b"1" + b"]" * 500
    rows = b",".join([deep] * 9_000)
    if path == PREDICT:
        body = b'{"instances":[' + rows + b"]}"
    else:
        body = b'{"inputs":[{"name":"input","datatype":"FP64","shape":[1,4],"data":[' + rows
        body += b"]}]}"
    probes_during: list[int] = []
    finished = anyio.Event()

    async def probe() -> None:
        with anyio.fail_after(60):
            while not finished.is_set():
                live = await client.get("/health/live")
                if not finished.is_set():
                    probes_during.append(live.status_code)
                await anyio.sleep(0.001)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(probe)
        answer = await client.post(path, content=body)
        finished.set()

    assert answer.status_code in {400, 422}
    assert probes_during and set(probes_during) == {200}
