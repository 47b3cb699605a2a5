"""Fixed, realistic OTLP requests: what the OpenTelemetry Python SDK really sends, and
hand-filled requests that set every field at least once."""

from __future__ import annotations

import functools
import math

import otlp_strategies as strat
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
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

RESOURCE = {
    "service.name": "checkout",
    "service.version": "2.4.0",
    "service.instance.id": "checkout-7d9f",
    "deployment.environment.name": "prod",
}


@functools.cache
def sdk_trace_request() -> ExportTraceServiceRequest:
    """A request as the SDK's OTLP exporter encodes it: nested spans, an event, an exception,
    a link and an error status."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop.checkout", "1.0.0")
    attributes = {"http.status_code": 500, "ratio": 0.25, "tags": ["a", "b"], "retry": True}
    with tracer.start_as_current_span(
        "PlaceOrder", kind=SpanKind.SERVER, attributes=attributes
    ) as parent:
        links = [Link(parent.get_span_context(), {"link.reason": "retry"})]
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT, links=links) as child:
            child.add_event("retrying", {"attempt": 2})
            try:
                raise ValueError("card declined")
            except ValueError as exc:
                child.record_exception(exc)
            child.set_status(Status(StatusCode.ERROR, "declined"))
    provider.shutdown()
    return encode_spans(exporter.get_finished_spans())


@functools.cache
def sdk_logs_request() -> ExportLogsServiceRequest:
    """A request as the SDK's OTLP log exporter encodes it, with string and map bodies."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create(RESOURCE))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("shop.checkout", "1.0.0")
    logger.emit(body="payment failed", severity_text="ERROR", attributes={"order.id": 42})
    logger.emit(body={"event": "cart", "items": [1, 2]}, timestamp=1_700_000_000_000_000_000)
    logger.emit(event_name="browser.click", attributes={"x": 1.5})
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
