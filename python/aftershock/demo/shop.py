"""A simulated shop, driven through the real OpenTelemetry Python SDK.

Five services (``frontend`` -> ``checkout`` -> ``payment`` / ``inventory`` / ``shipping``)
each run as a few instances. Every instance has its own ``TracerProvider`` and
``LoggerProvider`` with its resource (``service.name``, ``service.version``,
``service.instance.id``, ``deployment.environment.name``) and its own OTLP/gRPC exporters
with gzip, as a real pod would. A request crosses services with W3C trace context
injected into and extracted from a carrier, so traces are stitched the way instrumented
services stitch them.

Time is virtual: every span gets an explicit ``start_time``/``end_time`` and every log
record a ``timestamp`` on an event-time clock, so an hour of traffic takes seconds of wall
time; aftershock analyses event time, never the wall clock. Everything random comes from
one seeded generator (trace and span ids included), so a seed gives the same telemetry.

A :class:`Scenario` is data: the fleet, the traffic, the deploys (cut-overs and canaries,
with :class:`Fault` s the new version brings) and incidents. ``Shop(seed).run(endpoint,
scenario)`` plays it against an OTLP/gRPC endpoint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from grpc import Compression
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

MINUTE_NS = 60_000_000_000
MS = 1_000_000
#: Network time each way between a client span and the server span it calls.
NETWORK_NS = 300_000

#: A progress callback: ``(minutes done, minutes in all, what happened in that minute)``.
Progress = Callable[[int, int, list[str]], None]


@dataclass(frozen=True)
class ServiceFleet:
    """``instances`` instances of ``service`` serving ``version`` when the scenario starts."""

    service: str
    version: str
    instances: int


@dataclass(frozen=True)
class Fault:
    """A failure in one operation: with ``probability``, on requests whose attributes match
    ``when`` (pairs of attribute and value), the span fails with ``exception_type``."""

    span_name: str
    exception_type: str
    message: str
    probability: float = 1.0
    when: tuple[tuple[str, str], ...] = ()

    def matches(self, span_name: str, attrs: dict[str, Any]) -> bool:
        """Whether this fault applies to ``span_name`` for a request with ``attrs``."""
        return span_name == self.span_name and all(str(attrs.get(k)) == v for k, v in self.when)


@dataclass(frozen=True)
class Deploy:
    """A new ``version`` of ``service`` from ``at_minute`` on.

    ``replaces`` old instances stop and ``instances`` new ones start (default: as many as
    stopped). ``replaces=None`` replaces them all at once: a cut-over. A canary replaces a
    few and leaves the rest on the old version. The new version brings ``faults`` and
    multiplies its own latency by ``latency_factor``.
    """

    service: str
    version: str
    at_minute: float
    replaces: int | None = None
    instances: int | None = None
    faults: tuple[Fault, ...] = ()
    latency_factor: float = 1.0


@dataclass(frozen=True)
class Incident:
    """``fault`` hits every instance of ``service`` from ``start_minute`` to ``end_minute``
    (a downstream outage, say), whatever the version."""

    service: str
    start_minute: float
    end_minute: float
    fault: Fault


DEFAULT_FLEET = (
    ServiceFleet("frontend", "1.8.0", 3),
    ServiceFleet("checkout", "2.3.0", 4),
    ServiceFleet("payment", "3.1.2", 2),
    ServiceFleet("inventory", "1.4.1", 2),
    ServiceFleet("shipping", "0.9.7", 2),
)


@dataclass(frozen=True)
class Scenario:
    """What happens in the shop, as data: fleet, traffic, deploys and incidents."""

    minutes: int = 40
    requests_per_minute: float = 300.0
    environment: str = "prod"
    fleet: tuple[ServiceFleet, ...] = DEFAULT_FLEET
    deploys: tuple[Deploy, ...] = ()
    incidents: tuple[Incident, ...] = ()

    @classmethod
    def default(cls) -> Scenario:
        """The demo: a healthy cut-over of ``frontend`` 1.9.0 at minute 10, then a canary of
        ``checkout`` 2.4.0 on one of four instances at minute 22 whose ``PlaceOrder`` fails
        for PayPal payments (a ``KeyError`` on a field the new code expects)."""
        return cls(
            deploys=(
                Deploy("frontend", "1.9.0", 10, latency_factor=0.9),
                Deploy(
                    "checkout",
                    "2.4.0",
                    22,
                    replaces=1,
                    faults=(
                        Fault(
                            "PlaceOrder",
                            "KeyError",
                            "'billing_agreement_id'",
                            probability=0.9,
                            when=(("app.payment.method", "paypal"),),
                        ),
                    ),
                ),
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain JSON-able data."""
        return asdict(self)


@dataclass(frozen=True)
class Call:
    """A call from one operation to another service's operation."""

    service: str
    span_name: str


@dataclass(frozen=True)
class Operation:
    """An operation a service serves: its own latency, what it calls, how it fails."""

    kind: str  # "http" or "rpc"
    latency_ms: float
    sigma: float = 0.35
    calls: tuple[Call, ...] = ()
    db_statement: str | None = None
    #: Baseline failures of its own: (probability, exception type, message, when).
    errors: tuple[Fault, ...] = ()


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("frontend", "GET /api/products"): Operation(
        "http", 4, calls=(Call("inventory", "ListProducts"),)
    ),
    ("frontend", "GET /api/cart"): Operation("http", 3, calls=(Call("shipping", "GetQuote"),)),
    ("frontend", "POST /api/checkout"): Operation(
        "http", 6, calls=(Call("checkout", "PlaceOrder"),)
    ),
    ("frontend", "GET /api/orders/{id}"): Operation(
        "http", 3, calls=(Call("checkout", "GetOrder"),)
    ),
    ("checkout", "PlaceOrder"): Operation(
        "rpc",
        8,
        calls=(
            Call("inventory", "ReserveStock"),
            Call("payment", "Charge"),
            Call("shipping", "CreateShipment"),
        ),
    ),
    ("checkout", "GetOrder"): Operation("rpc", 2, db_statement="SELECT orders"),
    ("inventory", "ListProducts"): Operation("rpc", 2, db_statement="SELECT products"),
    ("inventory", "ReserveStock"): Operation(
        "rpc",
        6,
        db_statement="UPDATE stock",
        errors=(Fault("ReserveStock", "OutOfStockError", "item out of stock", 0.002),),
    ),
    ("payment", "Charge"): Operation(
        "rpc",
        120,
        sigma=0.45,
        errors=(
            Fault(
                "Charge",
                "CardDeclinedError",
                "card declined: insufficient funds",
                0.012,
                (("app.payment.method", "card"),),
            ),
        ),
    ),
    ("shipping", "GetQuote"): Operation(
        "rpc",
        25,
        errors=(Fault("GetQuote", "TimeoutError", "carrier rates API timed out", 0.003),),
    ),
    ("shipping", "CreateShipment"): Operation("rpc", 30),
}

#: Entry routes of the frontend and their share of requests.
ROUTES = (
    ("GET /api/products", 0.5),
    ("GET /api/cart", 0.2),
    ("POST /api/checkout", 0.2),
    ("GET /api/orders/{id}", 0.1),
)
PAYMENT_METHODS = (("card", 0.6), ("paypal", 0.3), ("apple_pay", 0.1))
CURRENCIES = (("USD", 0.6), ("EUR", 0.3), ("GBP", 0.1))
RPC_SERVICES = {
    "checkout": "shop.CheckoutService",
    "payment": "shop.PaymentService",
    "inventory": "shop.InventoryService",
    "shipping": "shop.ShippingService",
}


class SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator, so a seed gives the same ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def generate_span_id(self) -> int:
        """A non-zero 64-bit span id."""
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        """A non-zero 128-bit trace id."""
        return self.rng.getrandbits(128) or 1


@dataclass
class Instance:
    """One running instance of a service: its SDK providers and when it serves."""

    service: str
    version: str
    instance_id: str
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    faults: tuple[Fault, ...] = ()
    latency_factor: float = 1.0

    def __post_init__(self) -> None:
        self.tracer = self.tracer_provider.get_tracer(f"shop.{self.service}", self.version)
        self.logger = self.logger_provider.get_logger(f"shop.{self.service}", self.version)


@dataclass
class RunStats:
    """What a run sent: counts and the event-time window (ns since the epoch)."""

    start_ns: int
    end_ns: int
    requests: int = 0
    spans: int = 0
    log_records: int = 0
    failed_requests: int = 0
    traces_by_route: dict[str, int] = field(default_factory=dict)
    instances: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (svc, ver)


@dataclass
class _Failure:
    """Why an operation failed; ``own`` when it originated in that span."""

    exception_type: str
    message: str
    own: bool


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    x = rng.random() * sum(w for _, w in choices)
    for value, w in choices:
        x -= w
        if x < 0:
            return value
    return choices[-1][0]


class Shop:
    """The shop simulator. ``Shop(seed).run(endpoint, scenario)`` plays a scenario."""

    def __init__(self, seed: int = 1, start_ns: int | None = None) -> None:
        """``start_ns`` is the event time the scenario starts at; by default, the run ends
        at the current minute (so the data is recent, as from a live system)."""
        self.seed = seed
        self.start_ns = start_ns
        self.rng = random.Random(seed)
        self._ids = SeededIds(random.Random(seed ^ 0x5EED))
        self._propagator = TraceContextTextMapPropagator()
        self._active: dict[str, list[Instance]] = {}
        self._all: list[Instance] = []
        self._endpoint = ""
        self._environment = ""
        self._stats = RunStats(0, 0)
        self._incidents: tuple[Incident, ...] = ()
        self._now = 0

    # -- fleet ---------------------------------------------------------------------------

    def _instance_id(self, service: str, version: str) -> str:
        # Like a Kubernetes pod name: deployment hash per version, random suffix per pod.
        digest = random.Random(f"{self.seed}/{service}/{version}").getrandbits(40)
        suffix = "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        return f"{service}-{digest:010x}-{suffix}"

    def _start_instance(
        self, service: str, version: str, faults: tuple[Fault, ...] = (), factor: float = 1.0
    ) -> Instance:
        instance_id = self._instance_id(service, version)
        resource = Resource.create(
            {
                "service.name": service,
                "service.version": version,
                "service.instance.id": instance_id,
                "service.namespace": "shop",
                "deployment.environment.name": self._environment,
                "host.name": f"node-{self.rng.randrange(1, 7)}",
                "k8s.pod.name": instance_id,
            }
        )
        tracer_provider = TracerProvider(
            resource=resource, id_generator=self._ids, sampler=ALWAYS_ON
        )
        # Real exporters, one pair per instance as in a real pod. The queues are large so
        # that nothing is dropped while the virtual clock outruns the exporters.
        export: dict[str, Any] = {
            "endpoint": self._endpoint,
            "insecure": True,
            "compression": Compression.Gzip,
        }
        batch: dict[str, Any] = {
            "max_queue_size": 1 << 20,
            "max_export_batch_size": 1024,
            "schedule_delay_millis": 500,
        }
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(**export), **batch))
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(**export), **batch)
        )
        inst = Instance(
            service, version, instance_id, tracer_provider, logger_provider, faults, factor
        )
        self._all.append(inst)
        self._active.setdefault(service, []).append(inst)
        self._stats.instances[instance_id] = (service, version)
        self._log(inst, self._now, SeverityNumber.INFO, f"{service} {version} started", {})
        return inst

    def _deploy(self, d: Deploy) -> str:
        old = [i for i in self._active.get(d.service, []) if i.version != d.version]
        stopping = old if d.replaces is None else old[-d.replaces :]
        for inst in stopping:
            self._log(inst, self._now, SeverityNumber.INFO, "shutting down (SIGTERM)", {})
            self._active[d.service].remove(inst)
        count = d.instances if d.instances is not None else max(len(stopping), 1)
        for _ in range(count):
            self._start_instance(d.service, d.version, d.faults, d.latency_factor)
        kind = "cut-over" if d.replaces is None else "canary"
        total = len(self._active[d.service])
        return f"deploy: {d.service} {d.version} ({kind}, {count} of {total} instances)"

    # -- telemetry -----------------------------------------------------------------------

    def _log(
        self,
        inst: Instance,
        t: int,
        severity: SeverityNumber,
        body: str,
        attrs: dict[str, Any],
        span: trace.Span | None = None,
    ) -> None:
        ctx = trace.set_span_in_context(span) if span is not None else Context()
        inst.logger.emit(
            timestamp=t,
            observed_timestamp=t,
            context=ctx,
            severity_number=severity,
            severity_text=severity.name.rstrip("0123456789") or None,
            body=body,
            attributes=attrs,
        )
        self._stats.log_records += 1

    def _latency(self, median_ms: float, sigma: float, factor: float = 1.0) -> int:
        return max(1, int(self.rng.lognormvariate(math.log(median_ms * MS * factor), sigma)))

    def _pick(self, service: str) -> Instance:
        return self.rng.choice(self._active[service])

    def _fault(self, inst: Instance, span_name: str, req: dict[str, Any]) -> Fault | None:
        op = OPERATIONS[(inst.service, span_name)]
        candidates = [
            *inst.faults,
            *op.errors,
            *(
                i.fault
                for i in self._incidents
                if i.service == inst.service
                and i.start_minute * MINUTE_NS <= self._now - self._stats.start_ns
                and self._now - self._stats.start_ns < i.end_minute * MINUTE_NS
            ),
        ]
        for f in candidates:
            if f.matches(span_name, req) and self.rng.random() < f.probability:
                return f
        return None

    def _server_attrs(self, inst: Instance, span_name: str, req: dict[str, Any]) -> dict[str, Any]:
        op = OPERATIONS[(inst.service, span_name)]
        if op.kind == "http":
            method, route = span_name.split(" ", 1)
            attrs: dict[str, Any] = {
                "http.request.method": method,
                "http.route": route,
                "url.path": route.replace("{id}", str(req["app.order.id"])),
                "url.scheme": "https",
                "app.user.tier": req["app.user.tier"],
            }
        else:
            attrs = {
                "rpc.system": "grpc",
                "rpc.service": RPC_SERVICES[inst.service],
                "rpc.method": span_name,
            }
        if span_name in ("POST /api/checkout", "PlaceOrder", "Charge"):
            attrs["app.payment.method"] = req["app.payment.method"]
            attrs["app.currency"] = req["app.currency"]
        if span_name in ("PlaceOrder", "ReserveStock", "POST /api/checkout"):
            attrs["app.order.items"] = req["app.order.items"]
        if span_name in ("PlaceOrder", "GetOrder", "Charge", "CreateShipment"):
            attrs["app.order.id"] = str(req["app.order.id"])
        if span_name == "Charge":
            attrs["app.payment.amount"] = req["app.payment.amount"]
        return attrs

    def _client_span(
        self, inst: Instance, parent: Context, name: str, attrs: dict[str, Any], t: int
    ) -> trace.Span:
        self._stats.spans += 1
        return inst.tracer.start_span(
            name, context=parent, kind=SpanKind.CLIENT, attributes=attrs, start_time=t
        )

    def _serve(
        self, service: str, span_name: str, t: int, carrier: dict[str, str], req: dict[str, Any]
    ) -> tuple[int, _Failure | None]:
        """One server span (and everything under it) starting at ``t``; returns its end."""
        inst = self._pick(service)
        op = OPERATIONS[(service, span_name)]
        span = inst.tracer.start_span(
            span_name,
            context=self._propagator.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=self._server_attrs(inst, span_name, req),
            start_time=t,
        )
        self._stats.spans += 1
        span_ctx = trace.set_span_in_context(span)
        own = self._latency(op.latency_ms, op.sigma, inst.latency_factor)
        t += own // 2
        fault = self._fault(inst, span_name, req)
        failure = (
            _Failure(fault.exception_type, fault.message, own=True) if fault is not None else None
        )
        if op.db_statement is not None and failure is None:
            operation, table = op.db_statement.split()
            db = self._client_span(
                inst,
                span_ctx,
                op.db_statement,
                {
                    "db.system.name": "postgresql",
                    "db.operation.name": operation,
                    "db.collection.name": table,
                    "server.address": f"{service}-db",
                },
                t,
            )
            t += self._latency(3, 0.5)
            db.end(end_time=t)
        for call in op.calls:
            if failure is not None:
                break
            client = self._client_span(
                inst,
                span_ctx,
                call.span_name,
                {
                    "rpc.system": "grpc",
                    "rpc.service": RPC_SERVICES[call.service],
                    "rpc.method": call.span_name,
                    "server.address": call.service,
                    "server.port": 8080,
                },
                t,
            )
            out: dict[str, str] = {}
            self._propagator.inject(out, context=trace.set_span_in_context(client))
            end, child = self._serve(call.service, call.span_name, t + NETWORK_NS, out, req)
            t = end + NETWORK_NS
            if child is not None:
                client.set_status(Status(StatusCode.ERROR, "UNKNOWN"))
                failure = _Failure(
                    child.exception_type, f"{call.service} {call.span_name}: {child.message}", False
                )
            client.end(end_time=t)
        t += own - own // 2
        if op.kind == "http":
            span.set_attribute("http.response.status_code", 500 if failure else 200)
        else:
            span.set_attribute("rpc.grpc.status_code", 2 if failure else 0)
        if failure is not None:
            if failure.own:
                span.add_event(
                    "exception",
                    {
                        "exception.type": failure.exception_type,
                        "exception.message": failure.message,
                    },
                    timestamp=t,
                )
                span.set_status(
                    Status(StatusCode.ERROR, f"{failure.exception_type}: {failure.message}")
                )
            else:
                span.set_status(Status(StatusCode.ERROR, failure.message))
            severity = (
                SeverityNumber.ERROR if failure.own or op.kind == "http" else SeverityNumber.WARN
            )
            self._log(
                inst,
                t,
                severity,
                f"{span_name} failed: {failure.exception_type}: {failure.message}",
                {
                    "exception.type": failure.exception_type,
                    "app.order.id": str(req["app.order.id"]),
                },
                span,
            )
        elif span_name == "PlaceOrder":
            self._log(
                inst,
                t,
                SeverityNumber.INFO,
                f"order {req['app.order.id']} placed",
                {
                    "app.order.id": str(req["app.order.id"]),
                    "app.payment.method": req["app.payment.method"],
                },
                span,
            )
        span.end(end_time=t)
        return t, failure

    def _request(self, t: int) -> None:
        rng = self.rng
        route = _weighted(rng, ROUTES)
        req: dict[str, Any] = {
            "app.payment.method": _weighted(rng, PAYMENT_METHODS),
            "app.currency": _weighted(rng, CURRENCIES),
            "app.order.items": rng.randint(1, 6),
            "app.order.id": rng.randrange(10_000_000, 99_999_999),
            "app.user.tier": "premium" if rng.random() < 0.15 else "standard",
        }
        req["app.payment.amount"] = round(req["app.order.items"] * rng.uniform(5, 80), 2)
        _, failure = self._serve("frontend", route, t, {}, req)
        self._stats.requests += 1
        self._stats.failed_requests += failure is not None
        self._stats.traces_by_route[route] = self._stats.traces_by_route.get(route, 0) + 1

    def _arrivals(self, scenario: Scenario, minute: int) -> Iterator[int]:
        # Traffic breathes a little over the run (+-10%), with Poisson noise per minute.
        rate = scenario.requests_per_minute * (1 + 0.1 * math.sin(2 * math.pi * minute / 30))
        n = max(0, round(self.rng.gauss(rate, math.sqrt(rate))))
        base = self._stats.start_ns + minute * MINUTE_NS
        yield from sorted(base + self.rng.randrange(MINUTE_NS) for _ in range(n))

    # -- run -----------------------------------------------------------------------------

    def run(self, endpoint: str, scenario: Scenario, progress: Progress | None = None) -> RunStats:
        """Plays ``scenario`` against the OTLP/gRPC ``endpoint`` (``host:port``) and returns
        what was sent, once every exporter has delivered it."""
        if self.start_ns is None:
            import time

            now = time.time_ns()
            start = now - now % MINUTE_NS - scenario.minutes * MINUTE_NS
        else:
            start = self.start_ns
        self._endpoint, self._environment = endpoint, scenario.environment
        self._stats = RunStats(start, start + scenario.minutes * MINUTE_NS)
        self._incidents = scenario.incidents
        self._now = start
        pending = sorted(scenario.deploys, key=lambda d: d.at_minute)
        try:
            for fleet in scenario.fleet:
                for _ in range(fleet.instances):
                    self._start_instance(fleet.service, fleet.version)
            for minute in range(scenario.minutes):
                notes: list[str] = []
                for t in self._arrivals(scenario, minute):
                    while pending and start + pending[0].at_minute * MINUTE_NS <= t:
                        self._now = start + int(pending[0].at_minute * MINUTE_NS)
                        notes.append(self._deploy(pending.pop(0)))
                    self._now = t
                    self._request(t)
                if minute % 5 == 4:
                    self._flush()
                if progress is not None:
                    progress(minute + 1, scenario.minutes, notes)
            self._flush()
        finally:
            for inst in self._all:
                inst.tracer_provider.shutdown()
                inst.logger_provider.shutdown()
        return self._stats

    def _flush(self) -> None:
        for inst in self._all:
            ok = inst.tracer_provider.force_flush(60_000)
            ok = inst.logger_provider.force_flush(60_000) and ok
            if not ok:
                raise RuntimeError(f"exporters of {inst.instance_id} did not flush in 60 s")
