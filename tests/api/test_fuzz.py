"""Property-based: no body, however malformed, gets a 5xx or an answer off the schema."""

from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ClientFactory, SettingsFactory

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

        return self._portal.call(send)


def _fuzz(client_for: ClientFactory, settings_for: SettingsFactory, check: Any) -> None:
    with start_blocking_portal() as portal:
        opened = client_for(settings_for())
        client = portal.call(opened.__aenter__)
        try:
            check(_SyncClient(portal, client))
        finally:
            portal.call(opened.__aexit__, None, None, None)


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
