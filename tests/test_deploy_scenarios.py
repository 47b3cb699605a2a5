"""Deploy verdicts end to end: a simulated shop drives the real OpenTelemetry SDK into a
running receiver, with a known truth per service, then the CLI reads the lake.

Spans carry explicit event timestamps over an hour and a half of simulated time, so the
whole shop runs in seconds; verdicts depend on event time only.

* checkout: a canary that fails PlaceOrder for app.payment.method=paypal (regression,
  flagged before the rollout completes, paypal the top suspect);
* catalog: a healthy canary;
* search: a latency-only regression;
* frontend: a cut-over, then five minutes later its downstream payment service fails
  (not blamed on frontend);
* admin: a low-traffic service (no false alarm).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

receiver_mod = pytest.importorskip("aftershock.receiver")
from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402

import aftershock  # noqa: E402
from aftershock.deploys import connect, deploy_verdicts  # noqa: E402

MINUTE = 60_000_000_000
CANARY_AT, COMPLETE_AT, END = 30, 60, 90


class Shop:
    """One tracer provider per service instance, all exporting to the receiver."""

    def __init__(self, endpoint: str, t0: int) -> None:
        self.endpoint, self.t0 = endpoint, t0
        self.providers: dict[tuple[str, str, str], TracerProvider] = {}
        self.rng = np.random.default_rng(7)
        self.sent = 0

    def tracer(self, service: str, version: str, instance: str) -> trace.Tracer:
        key = (service, version, instance)
        if key not in self.providers:
            provider = TracerProvider(
                resource=Resource.create(
                    {
                        "service.name": service,
                        "service.version": version,
                        "service.instance.id": instance,
                        "deployment.environment.name": "prod",
                    }
                )
            )
            exporter = OTLPSpanExporter(endpoint=self.endpoint, insecure=True)
            provider.add_span_processor(
                BatchSpanProcessor(exporter, max_queue_size=100_000, max_export_batch_size=2048)
            )
            self.providers[key] = provider
        return self.providers[key].get_tracer("shop")

    def call(
        self,
        tracer: trace.Tracer,
        name: str,
        start: int,
        duration_ms: float,
        error: str | None = None,
        attributes: dict[str, str] | None = None,
        downstream: tuple[trace.Tracer, str] | None = None,
    ) -> None:
        """One entry span; ``downstream`` adds a client span and the callee's server span,
        failing there first when ``error`` is set."""
        end = start + int(duration_ms * 1e6)
        span = tracer.start_span(
            name, kind=SpanKind.SERVER, start_time=start, attributes=attributes
        )
        self.sent += 1
        if downstream is not None:
            callee, callee_name = downstream
            ctx = trace.set_span_in_context(span)
            client = tracer.start_span(
                f"call {callee_name}", context=ctx, kind=SpanKind.CLIENT, start_time=start
            )
            server = callee.start_span(
                callee_name,
                context=trace.set_span_in_context(client),
                kind=SpanKind.SERVER,
                start_time=start,
            )
            if error:
                server.record_exception(ConnectionError(error), timestamp=start)
                server.set_status(Status(StatusCode.ERROR, error))
                client.set_status(Status(StatusCode.ERROR, error))
            server.end(end_time=end)
            client.end(end_time=end)
            self.sent += 2
        if error:
            exc = RuntimeError(error) if downstream else _exception(error)
            span.record_exception(exc, timestamp=start)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end)

    def traffic(
        self,
        service: str,
        version: str,
        instance: str,
        minutes: range,
        per_minute: float,
        error_rate: float = 0.0,
        latency_ms: float = 30.0,
        names: tuple[str, ...] = ("GET /",),
        attributes: dict[str, list[str]] | None = None,
        failing: dict[str, str] | None = None,
        failing_rate: float = 0.0,
        downstream: tuple[trace.Tracer, str] | None = None,
        downstream_fails_from: int | None = None,
    ) -> None:
        """Calls of one instance; calls matching ``failing`` (span name and attribute
        values) fail with ``failing_rate``."""
        tracer = self.tracer(service, version, instance)
        for m in minutes:
            for _ in range(int(self.rng.poisson(per_minute))):
                start = self.t0 + m * MINUTE + int(self.rng.integers(MINUTE))
                name = str(self.rng.choice(names))
                attrs = {k: str(self.rng.choice(v)) for k, v in (attributes or {}).items()}
                labels = attrs | {"span.name": name}
                error = None
                matches = failing and all(labels.get(k) == v for k, v in failing.items())
                if matches and self.rng.random() < failing_rate:
                    error = "PaymentDeclined"
                if error is None and self.rng.random() < error_rate:
                    error = "TimeoutError"
                down_fail = downstream_fails_from is not None and m >= downstream_fails_from
                if down_fail and self.rng.random() < 0.3:
                    error = "upstream connect error"
                duration = float(self.rng.lognormal(np.log(latency_ms), 0.4))
                self.call(tracer, name, start, duration, error, attrs, downstream)

    def flush(self) -> None:
        for provider in self.providers.values():
            provider.force_flush()
            provider.shutdown()


def _exception(name: str) -> Exception:
    return type(name, (Exception,), {})(name)


def drive(shop: Shop) -> None:
    """The shop's hour and a half, with the truth the module docstring describes."""
    pay = {"app.payment.method": ["card", "paypal", "giftcard"]}
    names = ("PlaceOrder", "GetCart")
    for i in range(3):
        # checkout: instance 0 becomes the canary at CANARY_AT; all move at COMPLETE_AT.
        old_until = CANARY_AT if i == 0 else COMPLETE_AT
        shop.traffic("checkout", "1.0", f"checkout-{i}", range(0, old_until), 30,
                     error_rate=0.003, names=names, attributes=pay)  # fmt: skip
        shop.traffic("checkout", "1.1", f"checkout-{i}", range(old_until, END), 30,
                     error_rate=0.003, names=names, attributes=pay,
                     failing={"span.name": "PlaceOrder", "app.payment.method": "paypal"},
                     failing_rate=0.5)  # fmt: skip
    for i in range(2):
        shop.traffic("catalog", "2.0", f"catalog-{i}", range(0, END), 100, error_rate=0.01)
    shop.traffic("catalog", "2.1", "catalog-new", range(CANARY_AT, END), 100, error_rate=0.01)
    for i in range(2):
        shop.traffic("search", "3.0", f"search-{i}", range(0, END), 40, latency_ms=40)
    shop.traffic("search", "3.1", "search-new", range(CANARY_AT, END), 40, latency_ms=70)
    payment = shop.tracer("payment", "9.0", "payment-0")
    for version, minutes in (("4.0", range(0, CANARY_AT)), ("4.1", range(CANARY_AT, END))):
        shop.traffic("frontend", version, "frontend-0", minutes, 60, error_rate=0.002,
                     downstream=(payment, "Charge"),
                     downstream_fails_from=CANARY_AT + 5)  # fmt: skip
    shop.traffic("admin", "5.0", "admin-0", range(0, END), 1, error_rate=0.05)
    shop.traffic("admin", "5.1", "admin-1", range(CANARY_AT, END), 1, error_rate=0.05)
    shop.flush()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("shop") / "data"
    now = time.time_ns()
    t0 = now - now % MINUTE - 2 * END * MINUTE  # event time: a recent past, whole minutes
    options = receiver_mod.ReceiverOptions(
        otlp_grpc="127.0.0.1:0",
        otlp_http=None,
        metrics=None,
        durability="os",
        flush_interval=0.2,
    )
    with receiver_mod.Receiver(data, options) as receiver:
        port = receiver.ports["otlp_grpc"]
        shop = Shop(f"127.0.0.1:{port}", t0)
        drive(shop)
        mark_over_grpc(port, "catalog", "2.1", t0 + CANARY_AT * MINUTE - MINUTE // 2)
        lake = aftershock.open(data)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if lake.sql("select count(*) as n from spans")["n"][0] >= shop.sent:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the receiver did not land every span within 30 s")
    yield data


def mark_over_grpc(port: int, service: str, version: str, at: int) -> None:
    import grpc

    from aftershock.deploys import deploy_pb2, deploy_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = deploy_pb2_grpc.DeployServiceStub(channel)
        stub.MarkDeploy(
            deploy_pb2.MarkDeployRequest(
                service=service, version=version, environment="prod", time_unix_nano=at
            )
        )


@pytest.fixture(scope="module")
def verdicts(lake: Path) -> dict[str, dict[str, Any]]:
    out = {v.service: v.to_json() for v in deploy_verdicts(connect(lake))}
    return out


def test_canary_failing_one_endpoint_for_one_value_is_flagged_before_completion(
    verdicts: dict[str, dict[str, Any]],
) -> None:
    v = verdicts["checkout"]
    assert (v["verdict"], v["rollout"], v["previous_version"]) == ("regression", "canary", "1.0")
    assert v["decided_at"] < v["completed_at"]
    assert any(s["kind"] == "error_rate" and s["span_name"] == "PlaceOrder" for s in v["signals"])
    pairs = [(s["attribute"], s["value"]) for s in v["suspects"]]
    assert ("app.payment.method", "paypal") in pairs[:3], v["suspects"]


def test_healthy_canary_marked_over_grpc(verdicts: dict[str, dict[str, Any]]) -> None:
    v = verdicts["catalog"]
    assert (v["verdict"], v["source"], v["rollout"]) == ("healthy", "marker", "canary"), v


def test_latency_only_regression(verdicts: dict[str, dict[str, Any]]) -> None:
    v = verdicts["search"]
    assert v["verdict"] == "regression"
    assert {s["kind"] for s in v["signals"]} == {"latency"}


def test_downstream_outage_is_not_blamed_on_the_upstream_deploy(
    verdicts: dict[str, dict[str, Any]],
) -> None:
    v = verdicts["frontend"]
    assert v["rollout"] == "cutover"
    assert v["verdict"] != "regression", v
    assert "payment" in v["explanation"]


def test_low_traffic_service_is_no_false_alarm(verdicts: dict[str, dict[str, Any]]) -> None:
    v = verdicts["admin"]
    assert v["verdict"] in ("inconclusive", "pending"), v
    assert "payment" not in verdicts  # a service that never changed version had no deploy


def aftershock_cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aftershock.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


def test_deploys_cli_json_is_the_verdicts(lake: Path, verdicts: dict[str, dict[str, Any]]) -> None:
    out = aftershock_cli("deploys", "--data", str(lake), "--json")
    assert out.returncode == 0, out.stderr
    assert {v["service"]: v for v in json.loads(out.stdout)} == verdicts
    one = aftershock_cli("deploys", "--data", str(lake), "--service", "search")
    assert one.returncode == 0 and "search" in one.stdout and "checkout" not in one.stdout


def test_report_writes_html_and_png(lake: Path, tmp_path: Path) -> None:
    html, png = tmp_path / "r.html", tmp_path / "r.png"
    out = aftershock_cli(
        "report", "--data", str(lake), "checkout", "1.1", "--html", str(html), "--png", str(png)
    )
    assert out.returncode == 0, out.stderr
    assert "REGRESSION" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "paypal" in html.read_text()
    missing = aftershock_cli("report", "--data", str(lake), "nosuch", "9.9")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_watch_fires_once_per_regressed_deploy(lake: Path, tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    log = tmp_path / "hook.log"
    cmd = f'{{ echo "$AFTERSHOCK_SERVICE $AFTERSHOCK_VERSION"; cat; echo; }} >> {log}'
    try:
        for _ in range(2):  # the second run finds both already fired
            out = aftershock_cli(
                "watch", "--data", str(lake), "--once", "--on-regression", cmd, "--webhook", url
            )
            assert out.returncode == 0, out.stderr
    finally:
        server.shutdown()
    fired = sorted(v["service"] for v in _Hook.received)
    assert fired == ["checkout", "search"]
    lines = log.read_text().splitlines()
    assert sorted(line for line in lines if " " in line and not line.startswith("{")) == [
        "checkout 1.1",
        "search 3.1",
    ]
    assert json.loads(lines[1])["verdict"] == "regression"
    assert (lake / "deploys" / "watch-fired.json").is_file()


def test_mark_deploy_cli_records_a_marker_and_bad_flags_write_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ok = aftershock_cli("mark-deploy", "--data", str(data), "--service", "cart", "--version",
                        "7", "--environment", "prod", "--at", "2026-11-29T06:00:00Z")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "2026-11-29T06:00:00Z" in ok.stdout
    con = connect(data)
    assert con.execute("select service_name, service_version from markers").fetchall() == [
        ("cart", "7")
    ]
    empty = tmp_path / "empty"
    for args in (["--service", "cart"], ["--service", "a", "--version", "1", "--at", "soon"]):
        bad = aftershock_cli("mark-deploy", "--data", str(empty), *args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert not empty.exists()
    env = os.environ | {"AFTERSHOCK_DATA": str(tmp_path / "nowhere")}
    for cmd in (["deploys"], ["report", "a", "1"], ["watch", "--once"]):
        bad = aftershock_cli(*cmd, env=env)
        assert bad.returncode == 2 and "nowhere" in bad.stderr, bad.stderr
    bad = aftershock_cli("watch", "--data", str(data), "--interval", "often")
    assert bad.returncode == 2 and "--interval" in bad.stderr


def test_watch_loop_fires_then_keeps_watching_until_interrupted(lake: Path, tmp_path: Path) -> None:
    import shutil
    import signal

    data = tmp_path / "data"
    shutil.copytree(lake, data, ignore=shutil.ignore_patterns("deploys"))
    fired = tmp_path / "fired"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aftershock.cli", "watch", "--data", str(data),
         "--interval", "200ms", "--on-regression", f'echo "$AFTERSHOCK_SERVICE" >> {fired}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_lines(fired)) < 2:
            time.sleep(0.1)
        time.sleep(1.0)  # a few more rounds: nothing fires twice
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert sorted(_lines(fired)) == ["checkout", "search"], err
    assert out.startswith("watching ") and out.count("regression: ") == 2
    assert proc.returncode == 130, err


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
