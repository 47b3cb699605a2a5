"""Decode real OpenTelemetry SDK output with aftershock's Rust decoder.

Spans are produced by the OpenTelemetry Python SDK, encoded exactly as its OTLP exporter
would put them on the wire, decoded by `aftershock.decode_traces` into an Arrow batch,
and queried with Polars and DuckDB without copying.
"""

from __future__ import annotations

import random
import time

import duckdb
import polars as pl
import pyarrow as pa
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

import aftershock


def produce_spans(n_orders: int = 200) -> bytes:
    """Runs a small checkout flow through the SDK and returns one OTLP export request."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "checkout",
                "service.version": "2.4.0",
                "deployment.environment": "demo",
            }
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop.checkout", "1.0")
    rng = random.Random(7)
    for i in range(n_orders):
        method = rng.choice(["card", "card", "card", "paypal"])
        with tracer.start_as_current_span("PlaceOrder") as order:
            order.set_attribute("app.order.id", i)
            order.set_attribute("app.payment.method", method)
            with tracer.start_as_current_span("charge") as charge:
                time.sleep(0)
                if method == "paypal" and rng.random() < 0.5:
                    charge.record_exception(RuntimeError("payment gateway timeout"))
                    charge.set_status(Status(StatusCode.ERROR, "gateway timeout"))
                    order.set_status(Status(StatusCode.ERROR))
    provider.shutdown()
    return bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())


def main() -> None:
    """Decode, then query the batch with Polars and DuckDB."""
    payload = produce_spans()
    start = time.perf_counter()
    batch, stats = aftershock.decode_traces(payload, with_stats=True)
    elapsed = time.perf_counter() - start
    spans = pa.record_batch(batch)
    print(
        f"decoded {spans.num_rows} spans from {len(payload):,} bytes of OTLP protobuf "
        f"in {elapsed * 1e3:.2f} ms (rejected: {stats['rejected']})"
    )
    df = pl.from_arrow(spans)
    assert isinstance(df, pl.DataFrame)
    print(df.select("trace_id", "span_name", "span_kind", "status_code", "duration_ns").head(5))
    print("Error rate by payment method (DuckDB over the same Arrow memory):")
    print(
        duckdb.sql(
            """
            select span_attributes['app.payment.method'] as method,
                   count(*) as orders,
                   round(avg((status_code = 'ERROR')::int), 3) as error_rate
            from spans where span_name = 'PlaceOrder' group by 1 order by 1
            """
        )
    )


if __name__ == "__main__":
    main()
