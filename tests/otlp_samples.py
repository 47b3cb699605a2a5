"""Fixed, realistic OTLP requests: what the OpenTelemetry Python SDK really sends, and
hand-filled requests that set every field at least once."""

from __future__ import annotations

import functools
import math

import otlp_strategies as strat
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

RESOURCE = {
    "service.name": "checkout",
    "service.version": "2.4.0",
    "service.instance.id": "checkout-7d9f",
    "deployment.environment.name": "prod",
}


T0 = 1_700_000_000_000_000_000
MS = 1_000_000


class _FixedIds(IdGenerator):
    """Deterministic ids, so the sample (and every example derived from it) is the same in
    every run and a failure found once replays exactly."""

    def __init__(self) -> None:
        """Starts the span ids at an arbitrary fixed value."""
        self._next = 0x00F067AA0BA902B7

    def generate_span_id(self) -> int:
        """The next span id."""
        self._next += 1
        return self._next

    def generate_trace_id(self) -> int:
        """Always the same trace id: the sample is one trace."""
        return 0x4BF92F3577B34DA6A3CE929D0E0E4736


@functools.cache
def sdk_trace_request() -> ExportTraceServiceRequest:
    """A request as the SDK's OTLP exporter encodes it: nested spans, an event, an exception,
    a link and an error status. Ids and times are fixed."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(RESOURCE), id_generator=_FixedIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop.checkout", "1.0.0")
    attributes = {"http.status_code": 500, "ratio": 0.25, "tags": ["a", "b"], "retry": True}
    parent = tracer.start_span(
        "PlaceOrder", kind=SpanKind.SERVER, attributes=attributes, start_time=T0
    )
    links = [Link(parent.get_span_context(), {"link.reason": "retry"})]
    child = tracer.start_span(
        "charge",
        context=trace.set_span_in_context(parent),
        kind=SpanKind.CLIENT,
        links=links,
        start_time=T0 + MS,
    )
    child.add_event("retrying", {"attempt": 2}, timestamp=T0 + 2 * MS)
    child.record_exception(
        ValueError("card declined"),
        attributes={"exception.stacktrace": "ValueError: card declined"},
        timestamp=T0 + 3 * MS,
    )
    child.set_status(Status(StatusCode.ERROR, "declined"))
    child.end(end_time=T0 + 4 * MS)
    parent.end(end_time=T0 + 5 * MS)
    provider.shutdown()
    return encode_spans(exporter.get_finished_spans())


@functools.cache
def sdk_logs_request() -> ExportLogsServiceRequest:
    """A request as the SDK's OTLP log exporter encodes it, with string and map bodies."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create(RESOURCE))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("shop.checkout", "1.0.0")
    logger.emit(
        body="payment failed",
        severity_text="ERROR",
        attributes={"order.id": 42},
        timestamp=T0,
        observed_timestamp=T0 + MS,
    )
    logger.emit(body={"event": "cart", "items": [1, 2]}, timestamp=T0, observed_timestamp=T0)
    logger.emit(event_name="browser.click", attributes={"x": 1.5}, observed_timestamp=T0 + MS)
    provider.shutdown()
    return encode_logs(exporter.get_finished_logs())


@functools.cache
def rich_trace_request() -> ExportTraceServiceRequest:
    """Two resources and scopes; spans setting every field, one span rejected."""
    request = ExportTraceServiceRequest()
    for r in range(2):
        rs = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
        for key, value in RESOURCE.items():
            rs.resource.attributes.add(key=key).value.string_value = f"{value}-{r}"
        rs.resource.dropped_attributes_count = 1
        ss = rs.scope_spans.add(schema_url="s")
        ss.scope.name = "lib"
        ss.scope.version = "1.2"
        ss.scope.attributes.add(key="scope.attr").value.int_value = 1
        for i in range(3):
            span = ss.spans.add(
                trace_id=bytes([r + 1, i + 1] * 8),
                span_id=bytes([i + 1] * 8),
                parent_span_id=bytes([9] * 8) if i else b"",
                trace_state="vendor=1",
                name=f"span-{i}",
                kind=i + 1,
                start_time_unix_nano=1_700_000_000_000_000_000 + i,
                end_time_unix_nano=1_700_000_000_500_000_000 - i * 10**9,
                flags=0x101,
                dropped_attributes_count=2,
                dropped_events_count=3,
                dropped_links_count=4,
            )
            strat.fill_attributes(
                span.attributes,
                [
                    ("s", ("string", 'é"\n')),
                    ("n", ("int", -(2**63))),
                    ("d", ("double", math.nan)),
                    ("b", ("bytes", b"\x00\xff")),
                    ("list", ("array", [("bool", True), ("empty",), ("double", 1e20)])),
                    ("map", ("kvlist", [("k", ("string", "v")), ("k", None)])),
                    ("s", ("string", "last wins")),
                ],
            )
            event = span.events.add(time_unix_nano=2**64 - 1, name="exception")
            event.attributes.add(key="exception.type").value.string_value = "ValueError"
            link = span.links.add(trace_id=b"\x0a" * 16, span_id=b"\x0b" * 8, trace_state="x=1")
            link.attributes.add(key="why").value.bool_value = False
            span.status.message = "boom"
            span.status.code = 2
        ss.spans.add(trace_id=bytes(16), span_id=b"\x01" * 8, name="rejected")
    return request


@functools.cache
def rich_logs_request() -> ExportLogsServiceRequest:
    """Log records setting every field, with bodies of every AnyValue kind."""
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    for key, value in RESOURCE.items():
        rl.resource.attributes.add(key=key).value.string_value = value
    sl = rl.scope_logs.add(schema_url="s")
    sl.scope.name = "logger"
    sl.scope.version = "0.1"
    bodies = [
        ("string", "hello"),
        ("int", 7),
        ("double", -0.0),
        ("bool", True),
        ("bytes", b"\x01\x02"),
        ("array", [("string", "a"), ("int", 1)]),
        ("kvlist", [("a", ("int", 1)), ("a", ("int", 2))]),
        ("empty",),
    ]
    for i, body in enumerate(bodies):
        record = sl.log_records.add(
            time_unix_nano=0 if i % 2 else 1_700_000_000_000_000_000 + i,
            observed_time_unix_nano=1_700_000_000_100_000_000 + i,
            severity_number=i * 3,
            severity_text="INFO" if i else "",
            dropped_attributes_count=1,
            flags=1,
            trace_id=bytes([i + 1] * 16) if i % 3 else b"",
            span_id=bytes([i + 1] * 8) if i % 3 else bytes(8),
            event_name="evt" if i == 2 else "",
        )
        strat.fill_any_value(record.body, body)
        record.attributes.add(key="i").value.int_value = i
    return request
