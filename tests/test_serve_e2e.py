"""`aftershock serve` as a process, fed by the real OpenTelemetry SDK exporters."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from lake_workload import tag_counts, trace_request
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import StatusCode
from receiver_support import TRACES_METHOD

VISIBLE_WITHIN = 5.0


@dataclass
class Serve:
    """A running `aftershock serve` process and its bound ports."""

    proc: subprocess.Popen[str]
    data: Path
    ports: dict[str, int]


def start_serve(data: Path, *args: str) -> Serve:
    """Starts `aftershock serve` on free ports and waits for its ready lines."""
    cmd = [sys.executable, "-m", "aftershock.cli", "serve", "--data", str(data)]
    cmd += ["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"]
    cmd += ["--metrics", "127.0.0.1:0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports: dict[str, int] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"aftershock serve: (\S+) listening on [\d.]+:(\d+)", line)
        if m:
            ports[m.group(1)] = int(m.group(2))
        if "writing to" in line:
            return Serve(proc, data, ports)
    raise AssertionError(f"serve did not start: {proc.wait()} {proc.stderr.read()}")  # type: ignore[union-attr]


def assert_exits_0(s: Serve, timeout: float = 60) -> None:
    """Waits for serve to end; unless it exits 0 in time, fails with what it wrote to stderr
    (a stuck shutdown prints every thread's stack there)."""
    try:
        code: int | None = s.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        s.proc.kill()
        s.proc.wait()
        code = None
    if code != 0:
        err = s.proc.stderr.read()  # type: ignore[union-attr]
        raise AssertionError(f"serve exited {code} (None: still running after {timeout} s):\n{err}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    s = start_serve(tmp_path / "data", "--flush-interval", "1s")
    yield s
    s.proc.send_signal(signal.SIGTERM)
    assert_exits_0(s)


def visible(data: Path, table: str, tag: str, expected: int) -> bool:
    """Polls until ``expected`` rows tagged ``tag`` are committed (another process reads)."""
    deadline = time.monotonic() + VISIBLE_WITHIN
    while time.monotonic() < deadline:
        if tag_counts(data, table).get(tag, 0) >= expected:
            break
        time.sleep(0.1)
    return tag_counts(data, table).get(tag, 0) == expected


@pytest.mark.parametrize("transport", ["grpc", "http"])
@pytest.mark.parametrize("gzip", [True, False], ids=["gzip", "plain"])
def test_sdk_exporters_land_every_record(serve: Serve, transport: str, gzip: bool) -> None:
    tag = f"{transport}-{'gz' if gzip else 'plain'}"
    resource = Resource.create(
        {"service.name": "checkout", "service.version": "2.4.0", "deployment.environment": "e2e"}
    )
    if transport == "grpc":
        endpoint = f"127.0.0.1:{serve.ports['OTLP/gRPC']}"
        comp = GrpcCompression.Gzip if gzip else GrpcCompression.NoCompression
        span_exporter = GrpcSpanExporter(endpoint=endpoint, insecure=True, compression=comp)
        log_exporter = GrpcLogExporter(endpoint=endpoint, insecure=True, compression=comp)
    else:
        base = f"http://127.0.0.1:{serve.ports['OTLP/HTTP']}"
        hcomp = HttpCompression.Gzip if gzip else HttpCompression.NoCompression
        span_exporter = HttpSpanExporter(endpoint=f"{base}/v1/traces", compression=hcomp)
        log_exporter = HttpLogExporter(endpoint=f"{base}/v1/logs", compression=hcomp)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, max_export_batch_size=64))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    tracer = tracer_provider.get_tracer("e2e")
    logger = logger_provider.get_logger("e2e")
    n = 300
    trace_ids = set()
    for i in range(n):
        with tracer.start_as_current_span(
            "PlaceOrder", attributes={"test.request": tag, "order.items": i % 7}
        ) as sp:
            trace_ids.add(format(sp.get_span_context().trace_id, "032x"))
            if i % 50 == 0:
                sp.set_status(StatusCode.ERROR, "card declined")
            if i % 3 == 0:
                logger.emit(body=f"order {i}", attributes={"test.request": tag})
    assert tracer_provider.force_flush(30_000) and logger_provider.force_flush(30_000)
    assert visible(serve.data, "spans", tag, n)
    assert visible(serve.data, "logs", tag, n // 3)
    tracer_provider.shutdown()
    logger_provider.shutdown()

    import duckdb
    from lake_workload import files

    spans = duckdb.sql(
        "select trace_id, service_name, service_version, deployment_environment, "
        "span_attributes['order.items'] as items, status_code, status_message "
        "from read_parquet($f) where span_attributes['test.request'] = $t",
        params={"f": files(serve.data, "spans"), "t": tag},
    ).fetchall()
    assert {row[0] for row in spans} == trace_ids
    assert {row[1:4] for row in spans} == {("checkout", "2.4.0", "e2e")}
    assert sorted(int(row[4]) for row in spans) == sorted(i % 7 for i in range(n))
    assert sum(row[5] == "ERROR" and row[6] == "card declined" for row in spans) == n // 50
    logs = duckdb.sql(
        "select trace_id from read_parquet($f) where log_attributes['test.request'] = $t",
        params={"f": files(serve.data, "logs"), "t": tag},
    ).fetchall()
    assert {row[0] for row in logs} <= trace_ids  # correlated to their spans


def test_sigterm_drains_in_flight_requests_and_loses_nothing(tmp_path: Path) -> None:
    s = start_serve(tmp_path / "data", "--flush-interval", "30s")
    acked: list[str] = []
    failed = 0
    stop = threading.Event()

    def client(worker: int) -> None:
        nonlocal failed
        with grpc.insecure_channel(f"127.0.0.1:{s.ports['OTLP/gRPC']}") as ch:
            export = ch.unary_unary(TRACES_METHOD)
            i = 0
            while not stop.is_set():
                tag = f"w{worker}-{i}"
                try:
                    export(trace_request(tag, spans=200), timeout=10)
                except grpc.RpcError:
                    failed += 1
                    if failed > 50:
                        return
                    time.sleep(0.01)
                else:
                    acked.append(tag)
                i += 1

    threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    s.proc.send_signal(signal.SIGTERM)
    assert_exits_0(s)
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 20
    counts = tag_counts(s.data, "spans")
    assert {tag: counts.get(tag, 0) for tag in acked} == dict.fromkeys(acked, 200)
    assert sum(counts.values()) == 200 * len(counts)


def thread_taking(pid: int, signum: int) -> int:
    """A thread of process ``pid`` other than its main one that does not block ``signum``."""
    for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
        if tid == pid:
            continue
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M).group(1), 16)  # type: ignore[union-attr]
        if not blocked & (1 << (signum - 1)):
            return tid
    raise AssertionError(f"every thread of {pid} but the main one blocks signal {signum}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tgkill and /proc are Linux's")
def test_sigterm_taken_by_another_thread_still_stops_serve(tmp_path: Path) -> None:
    """The kernel may hand a process's SIGTERM to any thread that does not block it (grpc's,
    tokio's, the writer's): sent to one of those, it must still drain the receiver and end
    it. Before the main thread woke up regularly, such a SIGTERM went unnoticed (the
    hang that ``test_sigterm_drains_in_flight_requests_and_loses_nothing`` hit once in CI)."""
    s = start_serve(tmp_path / "data", "--flush-interval", "30s")
    with grpc.insecure_channel(f"127.0.0.1:{s.ports['OTLP/gRPC']}") as ch:
        ch.unary_unary(TRACES_METHOD)(trace_request("before-term", spans=10), timeout=10)
    tid = thread_taking(s.proc.pid, signal.SIGTERM)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.tgkill(s.proc.pid, tid, signal.SIGTERM) == 0, os.strerror(ctypes.get_errno())
    assert_exits_0(s, timeout=30)
    assert "stopping" in s.proc.stderr.read()  # type: ignore[union-attr]
    assert tag_counts(s.data, "spans") == {"before-term": 10}


@pytest.mark.parametrize(("drained", "code"), [(False, 1), (True, 0)])
def test_a_stuck_shutdown_ends_with_every_threads_stack(drained: bool, code: int) -> None:
    """serve's last resort when draining or exiting hangs: the process ends anyway, 1 while
    data may be left uncommitted (in the WAL), 0 once everything was, and says where each
    thread was."""
    script = (
        "import threading, time\n"
        "from aftershock.commands.serve import _exit_if_stuck\n"
        "done = threading.Event()\n"
        "_exit_if_stuck(0.5, done)\n"
        f"if {drained}:\n"
        "    done.set()\n"
        "def stuck_in_shutdown():\n"
        "    time.sleep(60)\n"
        "stuck_in_shutdown()\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50
    )
    assert result.returncode == code, result.stderr
    assert time.monotonic() - started < 30
    assert "still running 0.5 s after the stop signal" in result.stderr
    state = "committed everything" if drained else "acknowledged data stays in the WAL"
    assert state in result.stderr
    assert "stuck_in_shutdown" in result.stderr  # the main thread's stack


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aftershock.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--otlp-grpc", "nonsense"],
        ["--otlp-http", "127.0.0.1:99999"],
        ["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
        ["--auth-token-file", "/nonexistent/token"],
        ["--retention", "forever"],
        ["--durability", "maybe"],
        ["--otlp-grpc", "off", "--otlp-http", "off"],
    ],
)
def test_bad_flags_are_one_line_exit_2_and_write_nothing(tmp_path: Path, args: list[str]) -> None:
    data = tmp_path / "data"
    result = run_cli("serve", "--data", str(data), *args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not data.exists()


def test_options_come_from_the_environment_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_cli("serve", "--data", str(data), env={"AFTERSHOCK_OTLP_GRPC": "bogus"})
    assert result.returncode == 2 and "--otlp-grpc" in result.stderr
    assert not data.exists()


def test_two_receivers_share_one_table_location(tmp_path: Path) -> None:
    """Two `serve` processes (as behind the Collector's load-balancing exporter), each with
    its own --data, write one --tables location; `aftershock sql` on it sees every record."""
    shared = tmp_path / "tables"
    servers = [start_serve(tmp_path / n, "--tables", str(shared)) for n in ("r1", "r2")]
    try:
        for k, s in enumerate(servers):
            with grpc.insecure_channel(f"127.0.0.1:{s.ports['OTLP/gRPC']}") as ch:
                export = ch.unary_unary(TRACES_METHOD)
                for i in range(5):
                    export(trace_request(f"r{k}-{i}", spans=50), timeout=10)
        expected = {f"r{k}-{i}": 50 for k in range(2) for i in range(5)}
        deadline = time.monotonic() + VISIBLE_WITHIN
        while time.monotonic() < deadline and tag_counts(shared, "spans") != expected:
            time.sleep(0.1)
        assert tag_counts(shared, "spans") == expected
        assert not (tmp_path / "r1" / "spans").exists()
        assert (tmp_path / "r1" / "wal").is_dir() and (tmp_path / "r2" / "wal").is_dir()
    finally:
        for s in servers:
            s.proc.send_signal(signal.SIGTERM)
            assert_exits_0(s)
    result = run_cli("sql", "--data", str(shared), "--format", "csv", "select count(*) from spans")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "500"
