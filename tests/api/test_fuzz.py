"""Property-based: no body, however malformed or large, gets a 5xx or an answer off the schema.

/predict and /v2 alike, from a few bytes up to SERVING_MAX_BODY_BYTES; every answer also
arrives within a generous bound (a guard against quadratic parsing, not a benchmark: the
figures are bench/parse_worst.py's).
"""

import gc
import time
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.parse_worst import MIB, SHAPES
from serving.v2.datatypes import DATATYPES
from tests.conftest import ClientFactory, SettingsFactory

# For any body up to the 10 MiB limit on a loaded, shared machine; a quadratic parse takes
# minutes at that size (60,000 V2 outputs in 1 MiB did not finish in 300 s).
ANSWER_WITHIN_SECONDS = 60.0

_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
_number = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**20), 10**20)
_row = st.lists(
    _number | st.none() | st.text(max_size=3), min_size=0, max_size=12
) | st.dictionaries(
    st.sampled_from(
        ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm", "x"]
    ),
    _number | st.none(),
)
_predict_body = st.fixed_dictionaries(
    {"instances": st.lists(_row, min_size=0, max_size=6)},
    optional={
        "model": st.sampled_from(["iris", "diabetes", "breast_cancer", "nosuch", ""]) | _json,
        "version": st.integers(-2, 3) | st.sampled_from(["production", "x y", "1"]) | _json,
        "probabilities": st.booleans() | _json,
    },
)
_paths = st.sampled_from(
    [
        "/predict",
        "/models/iris/predict",
        "/models/diabetes/versions/1/predict",
        "/models/breast_cancer/versions/production/predict",
    ]
)


_shape = st.lists(st.integers(-2, 5) | st.just(10**20), max_size=4) | _json
_tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input", "sepal_length_cm", "petal_width_cm", "x"]) | _json,
        "datatype": st.sampled_from(sorted(DATATYPES)) | _json,
        "shape": _shape,
        "data": st.lists(_number | st.none() | st.booleans() | st.text(max_size=3), max_size=8)
        | st.lists(st.lists(_number, min_size=4, max_size=4), max_size=3)
        | _json,
    },
    optional={"parameters": st.dictionaries(st.sampled_from(["binary_data_size", "x"]), _json)},
)
_infer_body = st.fixed_dictionaries(
    {"inputs": st.lists(_tensor, max_size=5) | _json},
    optional={
        "id": st.text(max_size=5) | _json,
        "outputs": st.lists(st.fixed_dictionaries({"name": _json}), max_size=3) | _json,
        "parameters": st.dictionaries(st.sampled_from(["binary_data_output", "y"]), _json),
    },
)
_infer_paths = st.sampled_from(
    [
        "/v2/models/iris/infer",
        "/v2/models/diabetes/versions/1/infer",
        "/v2/models/breast_cancer/versions/production/infer",
        "/v2/models/nosuch/infer",
    ]
)


def _check_v2_answer(status: int, payload: Any) -> None:
    assert status < 500, payload
    if status == 200:
        assert isinstance(payload["outputs"], list)
    else:
        assert set(payload) == {"error"} and isinstance(payload["error"], str)


def _check_answer(status: int, payload: Any) -> None:
    assert status < 500, payload
    if status == 200:
        assert set(payload) <= {"model", "version", "predictions", "probabilities"}
        assert isinstance(payload["predictions"], list)
    else:
        assert isinstance(payload["error"]["code"], str)
        assert isinstance(payload["error"]["message"], str)


class _SyncClient:
    """Hypothesis calls synchronous functions: run the async client in a portal thread."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self._portal, self._client = portal, client

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            return await self._client.post(path, **kwargs)

        started = time.monotonic()
        answer = self._portal.call(send)
        assert time.monotonic() - started < ANSWER_WITHIN_SECONDS, (path, len(answer.content))
        return answer


def _fuzz(client_for: ClientFactory, settings_for: SettingsFactory, check: Any) -> None:
    """Runs `check` against the app, with the garbage collector tuned as in a worker."""
    settings = settings_for()
    default_threshold = gc.get_threshold()
    gc.set_threshold(settings.gc_threshold)  # what serving/gunicorn_conf.py gives each worker
    try:
        with start_blocking_portal() as portal:
            opened = client_for(settings)
            client = portal.call(opened.__aenter__)
            try:
                check(_SyncClient(portal, client))
            finally:
                portal.call(opened.__aexit__, None, None, None)
    finally:
        gc.set_threshold(*default_threshold)


def test_no_generated_body_gets_a_5xx(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    def check(client: _SyncClient) -> None:
        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(path=_paths, body=_predict_body | _json)
        def post(path: str, body: Any) -> None:
            answer = client.post(path, json=body)
            _check_answer(answer.status_code, answer.json())

        post()

    _fuzz(client_for, settings_for, check)


def test_no_generated_raw_bytes_get_a_5xx(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    def check(client: _SyncClient) -> None:
        @settings(max_examples=150, deadline=None)
        @given(path=_paths, raw=st.binary(max_size=64))
        def post(path: str, raw: bytes) -> None:
            answer = client.post(path, content=raw)
            _check_answer(answer.status_code, answer.json())

        post()

    _fuzz(client_for, settings_for, check)


def test_no_generated_v2_body_gets_a_5xx(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    def check(client: _SyncClient) -> None:
        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(path=_infer_paths, body=_infer_body | _json)
        def post(path: str, body: Any) -> None:
            answer = client.post(path, json=body)
            _check_v2_answer(answer.status_code, answer.json())

        post()

    _fuzz(client_for, settings_for, check)


def test_no_generated_v2_bytes_get_a_5xx(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    def check(client: _SyncClient) -> None:
        @settings(max_examples=150, deadline=None)
        @given(path=_infer_paths, raw=st.binary(max_size=64), header=st.integers(-1, 80))
        def post(path: str, raw: bytes, header: int) -> None:
            headers = {"Inference-Header-Content-Length": str(header)} if header >= 0 else {}
            answer = client.post(path, content=raw, headers=headers)
            _check_v2_answer(answer.status_code, answer.json())

        post()

    _fuzz(client_for, settings_for, check)


def test_adversarial_bodies_up_to_the_size_limit_get_no_5xx(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    """The benchmark's adversarial shapes (many inputs, repeated names, deep nesting, long
    strings, ...) at sizes drawn up to the 10 MiB body limit."""

    def check(client: _SyncClient) -> None:
        @settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(shape=st.sampled_from(sorted(SHAPES)), size=st.integers(1024, 10 * MIB - 1024))
        def post(shape: str, size: int) -> None:
            path, build = SHAPES[shape]
            answer = client.post(path, content=build(size))
            check_answer = _check_v2_answer if path.startswith("/v2") else _check_answer
            check_answer(answer.status_code, answer.json())

        post()

    _fuzz(client_for, settings_for, check)
