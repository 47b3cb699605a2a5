"""Generated traces of a small shop, for query tests and the query benchmark.

Every trace is one checkout: ``frontend`` serves ``GET /checkout`` and calls ``checkout``
(``PlaceOrder``), which calls ``payment`` (``Charge``, with a database span) and
``inventory`` (``Reserve``, with a database span). Nine spans a trace, SERVER spans for
incoming calls and CLIENT spans for outgoing ones, as OpenTelemetry instrumentation makes them.

Some traces fail downstream: the payment database insert times out, or the card is declined in
``payment``'s ``Charge``, or stock runs out in ``inventory``; the ERROR status then propagates
up through every caller to the root, as instrumented services report it. The generator returns
the truth the tests check against: which span each error originated in.

Timings are deterministic functions of the trace number, so tests can compute durations and
self times exactly.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

MS = 1_000_000
SERVER, CLIENT = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT
ERROR = Status.STATUS_CODE_ERROR
OK = Status.STATUS_CODE_UNSET

#: (service, version) of every span of a trace; checkout runs a canary of 2.4.0 on every
#: fourth trace.
SERVICES = ("frontend", "checkout", "payment", "inventory")
VERSIONS = {"frontend": "1.8.0", "checkout": "2.3.0", "payment": "5.1.2", "inventory": "0.9.4"}
CANARY = ("checkout", "2.4.0")
#: Error kinds: (service whose span fails first, span name, status message).
FAILURES = {
    "db_timeout": ("payment", "INSERT charges", "deadline exceeded after 2000 ms"),
    "declined": ("payment", "Charge", "card declined"),
    "out_of_stock": ("inventory", "Reserve", "out of stock: sku-42"),
}
SPANS_PER_TRACE = 9
#: The cross-service edges every trace has (caller, callee).
EDGES = {("frontend", "checkout"), ("checkout", "payment"), ("checkout", "inventory")}


@dataclass
class TraceTruth:
    """What a generated trace is: ids, start, and where its error (if any) originated."""

    trace_id: str
    start_ns: int
    failure: str | None
    #: span id (hex) of the span the error originated in.
    origin_span_id: str | None
    #: span id (hex) by (service, span name); span names are unique within a trace.
    span_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    checkout_version: str = "2.3.0"


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _id(seed: str, n: int) -> bytes:
    return hashlib.blake2b(seed.encode(), digest_size=n).digest()


def shop_request(
    first: int,
    count: int,
    start_ns: int,
    spacing_ns: int = 10 * MS,
    error_every: int = 10,
    seed: int = 0,
) -> tuple[bytes, list[TraceTruth]]:
    """An ``ExportTraceServiceRequest`` (serialized) with traces number ``first`` to
    ``first + count - 1``; trace ``k`` starts at ``start_ns + k * spacing_ns``. Every
    ``error_every``-th trace fails, cycling through the failure kinds."""
    rng = random.Random(seed * 1_000_003 + first)
    spans: dict[tuple[str, str], list[Span]] = {}
    truths = []
    kinds = list(FAILURES)
    for k in range(first, first + count):
        failure = kinds[(k // error_every) % len(kinds)] if k % error_every == 0 else None
        truth = _trace(k, start_ns + k * spacing_ns, failure, rng, spans, seed)
        truths.append(truth)
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[
                        _kv("service.name", service),
                        _kv("service.version", version),
                        _kv("service.instance.id", f"{service}-{version}-7c9f"),
                        _kv("deployment.environment.name", "prod"),
                    ]
                ),
                scope_spans=[
                    ScopeSpans(scope=InstrumentationScope(name="shop.instrumentation"), spans=s)
                ],
            )
            for (service, version), s in spans.items()
        ]
    )
    return req.SerializeToString(), truths


def _trace(
    k: int,
    t0: int,
    failure: str | None,
    rng: random.Random,
    out: dict[tuple[str, str], list[Span]],
    seed: int,
) -> TraceTruth:
    trace_id = _id(f"{seed}/trace/{k}", 16)
    canary = k % 4 == 3
    failing = FAILURES[failure] if failure else None
    method = ("card", "paypal", "voucher")[k % 3]
    truth = TraceTruth(trace_id.hex(), t0, failure, None)
    if canary:
        truth.checkout_version = CANARY[1]
    jitter = rng.randrange(0, 200_000)

    def add(
        service: str,
        name: str,
        kind: int,
        parent: bytes,
        start: int,
        duration: int,
        error: bool,
        message: str | None = None,
        **attrs: str | int,
    ) -> bytes:
        span_id = _id(f"{seed}/span/{k}/{service}/{name}/{kind}", 8)
        version = CANARY[1] if canary and service == CANARY[0] else VERSIONS[service]
        status = Status(code=ERROR if error else OK, message=message or "")
        span = Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=name,
            kind=kind,
            start_time_unix_nano=start,
            end_time_unix_nano=start + duration,
            attributes=[_kv(a.replace("_", "."), v) for a, v in attrs.items()],
            status=status,
        )
        if error and message and failing and (service, name) == failing[:2]:
            ev = span.events.add(time_unix_nano=start + duration - 1000, name="exception")
            ev.attributes.append(_kv("exception.message", message))
        out.setdefault((service, version), []).append(span)
        truth.span_ids[(service, name)] = span_id.hex()
        return span_id

    # Which spans fail: the failing one and every span above it.
    fails_db = failure == "db_timeout"
    fails_payment = failure in ("db_timeout", "declined")
    fails_inventory = failure == "out_of_stock"
    fails = failure is not None
    msg = failing[2] if failing else None

    root = add(
        "frontend",
        "GET /checkout",
        SERVER,
        b"",
        t0,
        40 * MS + jitter,
        fails,
        None,
        http_route="/checkout",
        http_response_status_code=500 if fails else 200,
    )
    call = add("frontend", "POST checkout/PlaceOrder", CLIENT, root, t0 + 2 * MS, 36 * MS, fails)
    order = add(
        "checkout",
        "PlaceOrder",
        SERVER,
        call,
        t0 + 3 * MS,
        34 * MS,
        fails,
        app_payment_method=method,
    )
    pay_call = add(
        "checkout", "POST payment/Charge", CLIENT, order, t0 + 4 * MS, 20 * MS, fails_payment
    )
    charge = add(
        "payment",
        "Charge",
        SERVER,
        pay_call,
        t0 + 5 * MS,
        18 * MS,
        fails_payment,
        msg if failure == "declined" else None,
        app_payment_method=method,
    )
    add(
        "payment",
        "INSERT charges",
        CLIENT,
        charge,
        t0 + 6 * MS,
        10 * MS,
        fails_db,
        msg if fails_db else None,
        db_system="postgresql",
    )
    inv_call = add(
        "checkout", "POST inventory/Reserve", CLIENT, order, t0 + 25 * MS, 10 * MS, fails_inventory
    )
    reserve = add(
        "inventory",
        "Reserve",
        SERVER,
        inv_call,
        t0 + 26 * MS,
        8 * MS,
        fails_inventory,
        msg if fails_inventory else None,
    )
    add(
        "inventory",
        "SELECT stock",
        CLIENT,
        reserve,
        t0 + 27 * MS,
        5 * MS,
        False,
        db_system="postgresql",
    )
    if failing:
        truth.origin_span_id = (
            truth.span_ids.get(failing[:2])
            or _id(f"{seed}/span/{k}/{failing[0]}/{failing[1]}/{CLIENT}", 8).hex()
        )
    return truth
