"""Decode throughput: aftershock's Rust decoder against the pure-Python path.

Builds a deterministic ``ExportTraceServiceRequest`` (8192 spans) and
``ExportLogsServiceRequest`` (8192 log records) with the official ``opentelemetry-proto``
package, then times, on one pinned core and in the same run:

* ``aftershock.decode_traces`` / ``aftershock.decode_logs`` (and the zero-copy hand-over to
  ``pyarrow.record_batch``, so both paths end with a pyarrow object), and
* what a Python user would write without aftershock: ``ExportTraceServiceRequest.FromString``
  followed by a loop that renders ids, attribute maps, events and links into columns and
  calls ``pyarrow.table`` with the same schema.

Prints one table per signal and whether the issue's targets are met. A missed target is
reported, not fatal: this is a benchmark, not a test.

Run: ``python benches/bench_decode.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

import aftershock

N_RECORDS = 8192
SEED = 20261129
TARGET_SPANS_PER_S = 2_000_000
TARGET_RATIO = 40.0
PYTHON_PATH = "python: FromString + loop + pyarrow.table"

SERVICES = [
    ("frontend", "1.14.2"),
    ("checkout", "2.4.0"),
    ("payment", "0.9.7"),
    ("inventory", "3.1.0"),
]
ROUTES = [
    ("GET", "/api/products/{id}"),
    ("GET", "/api/cart"),
    ("POST", "/api/cart/items"),
    ("POST", "/api/checkout"),
    ("GET", "/api/recommendations"),
    ("DELETE", "/api/cart/items/{id}"),
]
SCOPES = [
    ("opentelemetry.instrumentation.flask", "0.48b0"),
    ("opentelemetry.instrumentation.requests", "0.48b0"),
    ("io.opentelemetry.jdbc", "2.9.0-alpha"),
]


# --------------------------------------------------------------------------- payloads


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):  # before int: bool is an int in Python
        av = AnyValue(bool_value=value)
    elif isinstance(value, int):
        av = AnyValue(int_value=value)
    elif isinstance(value, float):
        av = AnyValue(double_value=value)
    elif isinstance(value, bytes):
        av = AnyValue(bytes_value=value)
    elif isinstance(value, list):
        av = AnyValue(array_value=ArrayValue(values=[_kv("", v).value for v in value]))
    else:
        av = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=av)


def _resource(rng: random.Random, service: str, version: str, i: int) -> Resource:
    return Resource(
        attributes=[
            _kv("service.name", service),
            _kv("service.version", version),
            _kv("service.instance.id", f"{service}-{rng.getrandbits(32):08x}"),
            _kv("service.namespace", "shop"),
            _kv("deployment.environment.name", "prod"),
            _kv("host.name", f"node-{i:02d}.prod.internal"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.version", "1.27.0"),
        ]
    )


def _nonzero_id(rng: random.Random, n: int) -> bytes:
    while True:
        b = rng.randbytes(n)
        if any(b):
            return b


def make_traces(n: int = N_RECORDS, seed: int = SEED) -> bytes:
    """A realistic request: a few resources, ~10 attributes per span, some events."""
    rng = random.Random(seed)
    base_ns = 1_764_000_000_000_000_000
    resource_spans = []
    per_resource = n // len(SERVICES)
    for r, (service, version) in enumerate(SERVICES):
        count = per_resource if r < len(SERVICES) - 1 else n - per_resource * r
        scope_spans = []
        per_scope = count // 2
        for s in range(2):
            scope_name, scope_version = SCOPES[(r + s) % len(SCOPES)]
            spans = []
            trace_id = _nonzero_id(rng, 16)
            parent = b""
            for k in range(per_scope if s == 0 else count - per_scope):
                if k % 8 == 0:  # a new trace every few spans, starting at a root
                    trace_id = _nonzero_id(rng, 16)
                    parent = b""
                span_id = _nonzero_id(rng, 8)
                method, route = rng.choice(ROUTES)
                status = rng.choices([200, 201, 404, 500], weights=[80, 10, 6, 4])[0]
                start = base_ns + rng.randrange(3_600_000_000_000)
                duration = int(rng.lognormvariate(15.0, 1.2))
                path = route.replace("{id}", str(rng.randrange(1, 100_000)))
                attributes = [
                    _kv("http.request.method", method),
                    _kv("http.route", route),
                    _kv("url.path", path),
                    _kv("http.response.status_code", status),
                    _kv("server.address", f"{service}.shop.svc.cluster.local"),
                    _kv("server.port", 8080),
                    _kv("network.protocol.version", "1.1"),
                    _kv("client.address", f"10.{r}.{rng.randrange(256)}.{rng.randrange(256)}"),
                    _kv("app.cache_hit", rng.random() < 0.7),
                    _kv("app.queue_time_ms", round(rng.expovariate(0.2), 3)),
                ]
                if k % 4 == 0:
                    attributes.append(_kv("app.feature_flags", ["new-cart", "fast-pay"]))
                events = []
                if status >= 500:
                    events.append(
                        Span.Event(
                            time_unix_nano=start + duration // 2,
                            name="exception",
                            attributes=[
                                _kv("exception.type", "TimeoutError"),
                                _kv("exception.message", f"upstream timed out after {k} ms"),
                                _kv("exception.escaped", True),
                            ],
                        )
                    )
                elif k % 16 == 0:
                    events.append(
                        Span.Event(
                            time_unix_nano=start + 1000,
                            name="cache.lookup",
                            attributes=[_kv("cache.key", f"product:{k}")],
                        )
                    )
                spans.append(
                    Span(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=parent,
                        name=f"{method} {route}",
                        kind=Span.SPAN_KIND_SERVER if not parent else Span.SPAN_KIND_CLIENT,
                        start_time_unix_nano=start,
                        end_time_unix_nano=start + duration,
                        attributes=attributes,
                        events=events,
                        status=Status(
                            code=Status.STATUS_CODE_ERROR if status >= 500 else 0,
                            message="Internal Server Error" if status >= 500 else "",
                        ),
                    )
                )
                parent = span_id
            scope_spans.append(
                ScopeSpans(
                    scope=InstrumentationScope(name=scope_name, version=scope_version),
                    spans=spans,
                )
            )
        resource_spans.append(
            ResourceSpans(resource=_resource(rng, service, version, r), scope_spans=scope_spans)
        )
    return ExportTraceServiceRequest(resource_spans=resource_spans).SerializeToString()


def make_logs(n: int = N_RECORDS, seed: int = SEED + 1) -> bytes:
    """Application logs: mostly string bodies, some structured, most correlated to a span."""
    rng = random.Random(seed)
    base_ns = 1_764_000_000_000_000_000
    severities = [(9, "INFO"), (13, "WARN"), (17, "ERROR"), (5, "DEBUG")]
    resource_logs = []
    per_resource = n // len(SERVICES)
    for r, (service, version) in enumerate(SERVICES):
        count = per_resource if r < len(SERVICES) - 1 else n - per_resource * r
        records = []
        for k in range(count):
            number, text = rng.choices(severities, weights=[70, 15, 5, 10])[0]
            t = base_ns + rng.randrange(3_600_000_000_000)
            if k % 10 == 0:
                body = AnyValue(
                    kvlist_value=KeyValueList(
                        values=[
                            _kv("event", "order.placed"),
                            _kv("order_id", rng.randrange(10**9)),
                            _kv("amount", round(rng.uniform(1, 500), 2)),
                        ]
                    )
                )
            else:
                body = AnyValue(
                    string_value=f"handled request {rng.getrandbits(40):x} "
                    f"for user {rng.randrange(10**6)} in {rng.randrange(1, 900)} ms"
                )
            correlated = rng.random() < 0.8
            records.append(
                LogRecord(
                    time_unix_nano=t,
                    observed_time_unix_nano=t + rng.randrange(1_000_000),
                    severity_number=number,
                    severity_text=text,
                    body=body,
                    attributes=[
                        _kv("code.function", "handle_request"),
                        _kv("code.filepath", f"/app/{service}/handlers.py"),
                        _kv("code.lineno", rng.randrange(1, 800)),
                        _kv("thread.name", f"worker-{rng.randrange(8)}"),
                        _kv("http.route", rng.choice(ROUTES)[1]),
                        _kv("app.retry", rng.random() < 0.05),
                    ],
                    trace_id=_nonzero_id(rng, 16) if correlated else b"",
                    span_id=_nonzero_id(rng, 8) if correlated else b"",
                )
            )
        resource_logs.append(
            ResourceLogs(
                resource=_resource(rng, service, version, r),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name="opentelemetry.sdk._logs", version="1"),
                        log_records=records,
                    )
                ],
            )
        )
    return ExportLogsServiceRequest(resource_logs=resource_logs).SerializeToString()


# --------------------------------------------------------------------------- Python path

SPAN_KINDS = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
STATUS_CODES = ["UNSET", "OK", "ERROR"]


def _json_value(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_json_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _json_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind is None:
        return None
    return getattr(v, kind)


def _render(v: AnyValue) -> str | None:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return v.string_value
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return json.dumps(_json_value(v), ensure_ascii=False, separators=(",", ":"))


def _attrs(kvs: Iterable[KeyValue]) -> list[tuple[str, str | None]]:
    return [(kv.key, _render(kv.value)) for kv in kvs]


def _resource_columns(resource: Resource) -> dict[str, Any]:
    attrs = _attrs(resource.attributes)
    lookup = dict(attrs)
    return {
        "service_name": lookup.get("service.name"),
        "service_version": lookup.get("service.version"),
        "service_instance_id": lookup.get("service.instance.id"),
        "deployment_environment": lookup.get("deployment.environment.name")
        or lookup.get("deployment.environment"),
        "resource_attributes": attrs,
    }


def python_traces(data: bytes, schema: pa.Schema) -> pa.Table:
    """What a Python user writes: parse with protobuf, loop, build a pyarrow table."""
    req = ExportTraceServiceRequest.FromString(data)
    cols: dict[str, list[Any]] = {name: [] for name in schema.names}
    for rs in req.resource_spans:
        res = _resource_columns(rs.resource)
        for ss in rs.scope_spans:
            scope_name = ss.scope.name or None
            scope_version = ss.scope.version or None
            for span in ss.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    continue
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                parent = span.parent_span_id
                cols["trace_id"].append(span.trace_id.hex())
                cols["span_id"].append(span.span_id.hex())
                cols["parent_span_id"].append(parent.hex() if any(parent) else None)
                cols["trace_state"].append(span.trace_state or None)
                cols["span_name"].append(span.name)
                cols["span_kind"].append(SPAN_KINDS[span.kind])
                cols["start_time"].append(start)
                cols["end_time"].append(end)
                cols["duration_ns"].append(max(end - start, 0))
                cols["status_code"].append(STATUS_CODES[span.status.code])
                cols["status_message"].append(span.status.message or None)
                for k, v in res.items():
                    cols[k].append(v)
                cols["scope_name"].append(scope_name)
                cols["scope_version"].append(scope_version)
                cols["span_attributes"].append(_attrs(span.attributes))
                cols["events"].append(
                    [
                        {
                            "time": e.time_unix_nano,
                            "name": e.name,
                            "attributes": _attrs(e.attributes),
                        }
                        for e in span.events
                    ]
                )
                cols["links"].append(
                    [
                        {
                            "trace_id": link.trace_id.hex(),
                            "span_id": link.span_id.hex(),
                            "trace_state": link.trace_state or None,
                            "attributes": _attrs(link.attributes),
                        }
                        for link in span.links
                    ]
                )
    return pa.table(cols, schema=schema)


def python_logs(data: bytes, schema: pa.Schema) -> pa.Table:
    """The logs counterpart of :func:`python_traces`."""
    req = ExportLogsServiceRequest.FromString(data)
    cols: dict[str, list[Any]] = {name: [] for name in schema.names}
    for rl in req.resource_logs:
        res = _resource_columns(rl.resource)
        for sl in rl.scope_logs:
            scope_name = sl.scope.name or None
            scope_version = sl.scope.version or None
            for rec in sl.log_records:
                observed = rec.observed_time_unix_nano or None
                cols["time"].append(rec.time_unix_nano or observed)
                cols["observed_time"].append(observed)
                tid, sid = rec.trace_id, rec.span_id
                cols["trace_id"].append(tid.hex() if len(tid) == 16 and any(tid) else None)
                cols["span_id"].append(sid.hex() if len(sid) == 8 and any(sid) else None)
                cols["severity_number"].append(rec.severity_number)
                cols["severity_text"].append(rec.severity_text or None)
                cols["body"].append(_render(rec.body) if rec.HasField("body") else None)
                cols["event_name"].append(rec.event_name or None)
                for k, v in res.items():
                    cols[k].append(v)
                cols["scope_name"].append(scope_name)
                cols["scope_version"].append(scope_version)
                cols["log_attributes"].append(_attrs(rec.attributes))
    return pa.table(cols, schema=schema)


# --------------------------------------------------------------------------- timing


#: One timed call: (wall seconds from ``perf_counter``, CPU seconds from ``process_time``).
Sample = tuple[float, float]


def timed(
    paths: list[tuple[str, Callable[[], object], int]], warmup: int
) -> dict[str, list[Sample]]:
    """Times each ``(name, fn, reps)`` path ``reps`` times after ``warmup`` untimed calls.

    The paths take turns, round by round, so that a burst of other work on a shared machine
    hits all of them alike instead of skewing the ratio.
    """
    for _, fn, _ in paths:
        for _ in range(warmup):
            fn()
    out: dict[str, list[Sample]] = {name: [] for name, _, _ in paths}
    rounds = min(reps for _, _, reps in paths)
    for r in range(rounds):
        for name, fn, reps in paths:
            for _ in range(reps // rounds + (1 if r < reps % rounds else 0)):
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                out[name].append((time.perf_counter() - w0, time.process_time() - c0))
    return out


def report(title: str, unit: str, n: int, nbytes: int, samples: dict[str, list[Sample]]) -> float:
    """Prints one table (the first path is aftershock's, the second Python's); returns the
    aftershock path's best records/s."""
    print(f"\n{title}: {n} {unit}, {nbytes / 1e6:.2f} MB ({nbytes / n:.0f} B/{unit[:-1]})")
    header = (
        f"{'path':<44} {'reps':>4} {unit + '/s best':>14} {unit + '/s median':>16}"
        f" {'MB/s best':>10} {'MB/s median':>12} {unit + '/s CPU-time':>18}"
    )
    print(header)
    print("-" * len(header))
    stats = {}
    for name, times in samples.items():
        wall = [w for w, _ in times]
        b, m, c = min(wall), statistics.median(wall), min(cpu for _, cpu in times)
        stats[name] = (b, m, c)
        print(
            f"{name:<44} {len(times):>4} {n / b:>14,.0f} {n / m:>16,.0f}"
            f" {nbytes / b / 1e6:>10,.1f} {nbytes / m / 1e6:>12,.1f} {n / c:>18,.0f}"
        )
    fast, slow = list(stats.values())[:2]
    print(
        f"{'ratio (aftershock / python)':<44} {'':>4}"
        f" {slow[0] / fast[0]:>13,.1f}x {slow[1] / fast[1]:>15,.1f}x"
        f" {'':>10} {'':>12} {slow[2] / fast[2]:>17,.1f}x"
    )
    return n / fast[0]


def otlp_json(data: bytes) -> bytes:
    """An ``ExportTraceServiceRequest`` re-encoded as OTLP/JSON: protobuf's own JSON, with
    trace and span ids in hex as OTLP/JSON writes them (``json_format`` writes base64)."""
    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(data))
    ids = {"traceId", "spanId", "parentSpanId"}
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if key in ids and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            elif isinstance(value, dict | list):
                stack.append(value)
    return json.dumps(doc, separators=(",", ":")).encode()


def json_traces(traces: bytes, expected: pa.Table, reps: int, warmup: int) -> bool:
    """Times ``decode_traces(format="json")`` on the traces payload as OTLP/JSON; returns
    whether it decoded to the same table as the protobuf bytes."""
    data = otlp_json(traces)
    n = expected.num_rows

    def decode() -> pa.RecordBatch:
        return pa.record_batch(aftershock.decode_traces(data, format="json"))

    same = pa.Table.from_batches([decode()]).equals(expected)
    if not same:
        print("\nWARNING: the JSON payload decodes to other rows than the protobuf one")
    [times] = timed([("json", decode, reps)], warmup).values()
    wall = [w for w, _ in times]
    best, median = min(wall), statistics.median(wall)
    name = 'aftershock.decode_traces(format="json")'
    print(
        f"\ntraces as OTLP/JSON: {len(data) / 1e6:.2f} MB ({len(data) / n:.0f} B/span)\n"
        f"{name:<44} {len(times):>4}"
        f" {n / best:>14,.0f} {n / median:>16,.0f}"
        f" {len(data) / best / 1e6:>10,.1f} {len(data) / median / 1e6:>12,.1f}"
        f" {n / min(c for _, c in times):>18,.0f}"
    )
    return same


def same_table(rust: pa.Table, python: pa.Table) -> bool:
    """Whether both paths produced the same rows; a benchmark of different work means nothing."""
    return rust.cast(python.schema).equals(python)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions, for a smoke run")
    parser.add_argument("--records", type=int, default=N_RECORDS, help="spans / log records")
    args = parser.parse_args(argv)

    rust_reps, py_reps, warmup = (5, 1, 1) if args.quick else (30, 5, 2)

    pinned = "not pinned (sched_setaffinity unavailable)"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
        pinned = "pinned to CPU 0 with os.sched_setaffinity(0, {0})"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print("aftershock decode benchmark")
    print(f"  date      {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"  machine   {_cpu_model()}, {os.cpu_count()} cores; {pinned}")
    print(
        f"  python    {platform.python_version()}, pyarrow {pa.__version__}, "
        f"protobuf {_protobuf_impl()}, aftershock {aftershock.__version__}"
    )
    print(f"  load avg  {load[0]:.2f} (other work on the machine skews the numbers)")
    print(
        f"  reps      {rust_reps} aftershock / {py_reps} python, {warmup} warm-up each"
        + (" (--quick)" if args.quick else "")
    )

    spans_schema = pa.schema(aftershock.table_schema("spans"))
    logs_schema = pa.schema(aftershock.table_schema("logs"))
    ok = True

    traces = make_traces(args.records)
    check_rust = pa.Table.from_batches([pa.record_batch(aftershock.decode_traces(traces))])
    check_py = python_traces(traces, spans_schema)
    if check_rust.num_rows != args.records or not same_table(check_rust, check_py):
        print("\nWARNING: the two trace paths disagree on this payload; ratios are suspect")
        ok = False
    trace_samples = timed(
        [
            (
                "aftershock.decode_traces",
                lambda: pa.record_batch(aftershock.decode_traces(traces)),
                rust_reps,
            ),
            (PYTHON_PATH, lambda: python_traces(traces, spans_schema), py_reps),
        ],
        warmup,
    )
    rust_rate = report("traces", "spans", args.records, len(traces), trace_samples)
    ok = json_traces(traces, check_rust, rust_reps, warmup) and ok

    logs = make_logs(args.records)
    check_rust = pa.Table.from_batches([pa.record_batch(aftershock.decode_logs(logs))])
    check_py = python_logs(logs, logs_schema)
    if check_rust.num_rows != args.records or not same_table(check_rust, check_py):
        print("\nWARNING: the two log paths disagree on this payload; ratios are suspect")
        ok = False
    log_samples = timed(
        [
            (
                "aftershock.decode_logs",
                lambda: pa.record_batch(aftershock.decode_logs(logs)),
                rust_reps,
            ),
            (PYTHON_PATH, lambda: python_logs(logs, logs_schema), py_reps),
        ],
        warmup,
    )
    report("logs", "records", args.records, len(logs), log_samples)

    python_rate = args.records / min(w for w, _ in trace_samples[PYTHON_PATH])
    ratio = rust_rate / python_rate
    print("\ntargets (traces, best wall-clock rep, one core):")
    print(
        f"  >= {TARGET_SPANS_PER_S:,} spans/s: {rust_rate:,.0f} -> "
        + ("met" if rust_rate >= TARGET_SPANS_PER_S else "NOT met")
    )
    print(
        f"  >= {TARGET_RATIO:.0f}x the Python path: {ratio:.1f}x -> "
        + ("met" if ratio >= TARGET_RATIO else "NOT met")
    )
    if not ok:
        print("  (see the WARNING above: outputs differ)")
    # A missed target is information, not a failure.
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _protobuf_impl() -> str:
    import google.protobuf
    from google.protobuf.internal import api_implementation

    return f"{google.protobuf.__version__} ({api_implementation.Type()})"


if __name__ == "__main__":
    sys.exit(main())
