"""OpenTelemetry tracing, configured only by the standard OTEL_* variables; off when none is set.

Off means no SDK object exists and the hot path pays one context-variable read per span site:
`span()` hands back a shared do-nothing context manager. On, `Tracing.start()` (in each worker,
after the fork: the batch processor owns a thread) builds a TracerProvider whose sampler,
resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) and exporter settings are the SDK's own
reading of the environment; this module only decides whether tracing is on and which OTLP
transport OTEL_EXPORTER_OTLP_PROTOCOL names.

The variables are read here rather than in Settings because the SDK and its exporters read
them themselves: both must agree, and the SDK's reading is the one that counts.

A request span is started from a carrier (a dict of W3C trace-context headers), so any front
end, HTTP or gRPC, continues the caller's trace the same way: `request_span`.
"""

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is imported only when tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

AttributeValue = str | int | float | bool
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


@dataclass(frozen=True)
class _RequestTrace:
    tracer: "Tracer"
    server_span: "Span"


# Set for the duration of a traced request; every span site reads it and nothing else.
_current: ContextVar[_RequestTrace | None] = ContextVar("serving_request_trace", default=None)


def is_configured(environ: Mapping[str, str]) -> bool:
    """On when an OTLP endpoint or the OTLP exporter is named, unless the SDK is disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or any(environ.get(name) for name in _ENDPOINT_VARIABLES)


def otlp_protocol(environ: Mapping[str, str]) -> str:
    """`grpc` or `http/protobuf` (the specification's default)."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = environ.get(name, "").strip().lower()
        if value:
            return "grpc" if value == "grpc" else "http/protobuf"
    return "http/protobuf"


class Tracing:
    """The process's tracer: None until `start()`, and forever when OTEL_* leaves it off."""

    def __init__(self) -> None:
        self._provider: TracerProvider | None = None
        self.tracer: Tracer | None = None

    def start(self) -> None:
        """Reads the environment now: call it in the process that will serve (after forks)."""
        if self.tracer is not None or not is_configured(os.environ):
            return
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=_resource())  # sampler: OTEL_TRACES_SAMPLER[_ARG]
        provider.add_span_processor(BatchSpanProcessor(_exporter(otlp_protocol(os.environ))))
        self._provider, self.tracer = provider, provider.get_tracer("serving")

    def shutdown(self) -> None:
        """Blocking: exports what is buffered (bounded by the exporter's own timeout)."""
        if self._provider is not None:
            self._provider.shutdown()
        self._provider = self.tracer = None

    @contextlib.contextmanager
    def request_span(
        self, name: str, carrier: Mapping[str, str], attributes: Mapping[str, AttributeValue]
    ) -> Iterator["Span | None"]:
        """A server span continuing the caller's W3C trace context in `carrier` (lower-case
        `traceparent`, `tracestate`); child spans opened inside it by `span()` belong to it."""
        if self.tracer is None:
            yield None
            return
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(carrier)
        with self.tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=dict(attributes)
        ) as server_span:
            if not server_span.is_recording():
                # Not sampled: every child would be dropped too (the trace id and the parent's
                # decision are the same for them), so skip their cost entirely.
                yield server_span
                return
            token = _current.set(_RequestTrace(self.tracer, server_span))
            try:
                yield server_span
            finally:
                _current.reset(token)


def span(name: str) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current request's span; a shared no-op when none is traced."""
    trace = _current.get()
    if trace is None:
        return _NO_SPAN
    return trace.tracer.start_as_current_span(name)


def annotate(**attributes: AttributeValue) -> None:
    """Attributes `serving.<name>` on the current request's server span."""
    trace = _current.get()
    if trace is not None:
        trace.server_span.set_attributes({f"serving.{k}": v for k, v in attributes.items()})


def annotate_prediction(model: str, version: int, rows: int, is_cache_hit: bool) -> None:
    """`annotate` for the predictor's four attributes, without building kwargs when off."""
    trace = _current.get()
    if trace is not None:
        trace.server_span.set_attributes(
            {
                "serving.model": model,
                "serving.version": version,
                "serving.rows": rows,
                "serving.cache_hit": is_cache_hit,
            }
        )


def clock_ns() -> int:
    """Wall-clock nanoseconds while a request is traced, else 0 (one read less per request)."""
    return time.time_ns() if _current.get() is not None else 0


def record_span(name: str, start_ns: int, end_ns: int) -> None:
    """A finished child span with explicit times, for phases measured elsewhere (the wait
    in a batch queue and the merged estimator call, which run outside the request's task)."""
    trace = _current.get()
    if trace is None or start_ns <= 0 or end_ns < start_ns:
        return
    child = trace.tracer.start_span(name, start_time=start_ns)
    child.end(end_time=end_ns)


def trace_ids(current: "Span | None") -> dict[str, str]:
    """`trace_id` and `span_id` as lower-case hex, for the request's log line."""
    if current is None:
        return {}
    context = current.get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def current_trace_id() -> str | None:
    trace = _current.get()
    return None if trace is None else trace_ids(trace.server_span).get("trace_id")


def _resource() -> Any:
    """The SDK's resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; `serving` when
    neither names the service (instead of the SDK's `unknown_service`)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "serving"}))
    return resource


def _exporter(protocol: str) -> Any:
    """The OTLP span exporter; each reads its endpoint, headers and timeout from OTEL_*."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    return HTTPSpanExporter()
