"""Tracing over OTLP: a real receiver decodes what the app exports through its lifespan."""

import logging
import secrets
from collections.abc import Iterator

import numpy as np
import pytest

from serving.core.tracing import Tracing, annotate, span
from tests.conftest import ClientFactory, SettingsFactory
from tests.grpc_helpers import grpc_settings, raw_request, running_grpc_app
from tests.otlp_receiver import ReceivedSpan, grpc_receiver, http_receiver

_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
_SERVER = 2  # SpanKind.SERVER in the OTLP protobuf enum (SPAN_KIND_SERVER)
_CHILDREN = {"decode", "convert", "cache.lookup", "batch.wait", "score", "encode"}


def _caller() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "serving.access" and r.msg == "request"]


@pytest.fixture
def otlp_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ReceivedSpan]]:
    with http_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "serving-under-test")
        yield received.spans


async def test_request_continues_the_callers_trace_with_child_spans(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    otlp_http: list[ReceivedSpan],
    caplog: pytest.LogCaptureFixture,
) -> None:
    trace_id, parent_id, traceparent = _caller()

    async with client_for(settings_for()) as client:
        answer = await client.post(
            "/models/iris/predict", json=_ROW, headers={"traceparent": traceparent}
        )
    # leaving the lifespan shut the provider down, which exported every finished span

    assert answer.status_code == 200
    mine = [span for span in otlp_http if span.trace_id == trace_id]
    (server,) = [span for span in mine if span.kind == _SERVER]
    assert server.parent_span_id == parent_id
    assert server.name == "POST /models/{name}/predict"
    assert server.service == "serving-under-test"
    assert server.attributes["serving.model"] == "iris"
    assert server.attributes["serving.version"] == 1
    assert server.attributes["serving.rows"] == 1
    assert server.attributes["serving.cache_hit"] is False
    assert server.attributes["http.response.status_code"] == 200
    children = {span.name for span in mine if span.parent_span_id == server.span_id}
    assert children == _CHILDREN
    (line,) = _access_lines(caplog)
    assert (line.trace_id, line.span_id) == (trace_id, server.span_id)  # type: ignore[attr-defined]


async def test_a_cache_hit_is_marked_on_the_span_and_skips_scoring(
    client_for: ClientFactory, settings_for: SettingsFactory, otlp_http: list[ReceivedSpan]
) -> None:
    trace_id, _, traceparent = _caller()

    async with client_for(settings_for()) as client:
        await client.post("/models/iris/predict", json=_ROW)
        hit = await client.post(
            "/models/iris/predict", json=_ROW, headers={"traceparent": traceparent}
        )

    assert hit.headers["X-Cache"] == "HIT"
    mine = [span for span in otlp_http if span.trace_id == trace_id]
    (server,) = [span for span in mine if span.kind == _SERVER]
    assert server.attributes["serving.cache_hit"] is True
    assert {span.name for span in mine} == {server.name, "decode", "convert", "cache.lookup"}


async def test_a_request_without_traceparent_starts_a_new_trace_in_its_log_line(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    otlp_http: list[ReceivedSpan],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with client_for(settings_for()) as client:
        await client.get("/health/ready")

    (line,) = _access_lines(caplog)
    (server,) = [span for span in otlp_http if span.kind == _SERVER]
    assert server.parent_span_id == ""
    assert line.trace_id == server.trace_id  # type: ignore[attr-defined]
    assert server.name == "GET /health/ready"


async def test_the_sampler_comes_from_otel_traces_sampler(
    client_for: ClientFactory,
    settings_for: SettingsFactory,
    otlp_http: list[ReceivedSpan],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    sampled_trace, _, traceparent = _caller()

    async with client_for(settings_for()) as client:
        for _ in range(20):  # ratio 0: none of these is sampled
            await client.post("/models/iris/predict", json=_ROW)
        await client.post("/models/iris/predict", json=_ROW, headers={"traceparent": traceparent})

    assert otlp_http  # the export path worked: the caller's sampled trace arrived
    assert {span.trace_id for span in otlp_http} == {sampled_trace}


async def test_the_grpc_exporter_is_chosen_by_otel_exporter_otlp_protocol(
    client_for: ClientFactory, settings_for: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace_id, _, traceparent = _caller()
    with grpc_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")

        async with client_for(settings_for()) as client:
            await client.post(
                "/models/iris/predict", json=_ROW, headers={"traceparent": traceparent}
            )

        spans = received.wait_for(lambda spans: any(s.kind == _SERVER for s in spans))
    assert {span.trace_id for span in spans} == {trace_id}
    assert {span.name for span in spans} >= _CHILDREN


async def test_without_otel_variables_nothing_is_traced_or_logged_as_a_trace(
    client_for: ClientFactory, settings_for: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, traceparent = _caller()

    async with client_for(settings_for()) as client:
        answer = await client.post(
            "/models/iris/predict", json=_ROW, headers={"traceparent": traceparent}
        )

    assert answer.status_code == 200
    (line,) = _access_lines(caplog)
    assert not hasattr(line, "trace_id")
    assert line.status == 200  # type: ignore[attr-defined]


def test_any_front_end_can_start_a_request_span_from_a_carrier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the gRPC server calls with its metadata: same parent handling, same children."""
    trace_id, parent_id, traceparent = _caller()
    with http_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        tracing = Tracing()
        tracing.start()
        with (
            tracing.request_span(
                "ModelInfer", {"traceparent": traceparent}, {"rpc.system": "grpc"}
            ),
            span("score"),
        ):
            annotate(model="iris")
        tracing.shutdown()

    (server,) = [s for s in received.spans if s.name == "ModelInfer"]
    (child,) = [s for s in received.spans if s.name == "score"]
    assert (server.trace_id, server.parent_span_id) == (trace_id, parent_id)
    assert child.parent_span_id == server.span_id
    assert server.attributes == {"rpc.system": "grpc", "serving.model": "iris"}


async def test_a_grpc_call_continues_the_callers_trace_with_child_spans(
    settings_for: SettingsFactory,
    otlp_http: list[ReceivedSpan],
    caplog: pytest.LogCaptureFixture,
) -> None:
    trace_id, parent_id, traceparent = _caller()
    row = np.array([_ROW["instances"][0]])

    async with running_grpc_app(grpc_settings(settings_for)) as app:
        answer = await app.stub.ModelInfer(
            raw_request("iris", row), metadata=(("traceparent", traceparent),)
        )

    assert answer.model_name == "iris"
    mine = [span for span in otlp_http if span.trace_id == trace_id]
    (server,) = [span for span in mine if span.kind == _SERVER]
    assert server.parent_span_id == parent_id
    assert server.name == "inference.GRPCInferenceService/ModelInfer"
    assert server.attributes["rpc.system"] == "grpc"
    assert server.attributes["serving.model"] == "iris"
    assert server.attributes["serving.rows"] == 1
    assert server.attributes["serving.cache_hit"] is False
    children = {span.name for span in mine if span.parent_span_id == server.span_id}
    assert children == _CHILDREN - {"decode", "convert"}  # the protocol decodes its own tensors
    (line,) = [r for r in caplog.records if getattr(r, "rpc", None) == "ModelInfer"]
    assert (line.trace_id, line.span_id) == (trace_id, server.span_id)  # type: ignore[attr-defined]
