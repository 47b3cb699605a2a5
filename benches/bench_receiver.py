"""The receiver under a Collector-like load: `aftershock serve` vs a minimal Python receiver.

A load generator replays pre-encoded 8192-span `ExportTraceServiceRequest`s (realistic
traces, see tests/test_parquet_files.py) over 10 concurrent streams on one HTTP/2
connection, as the Collector's OTLP exporter does, with and without gzip. Each receiver runs
as its own process pinned to one core (`--core`); the load generator runs on the others.

* `aftershock serve`: fsync durability, the default memory budget. A request counts once
  it is acknowledged (durable in the WAL); UNAVAILABLE answers (busy, retry later) are
  counted apart, and the stream waits the RetryInfo delay the answer carries before it
  retries, as the Collector does (it waits at least that long).
* baseline: a pure-Python grpcio receiver that parses each request with the official
  protobuf classes and counts its spans; it stores nothing.

For each it prints acknowledged spans/s, receiver CPU seconds per million spans, p50/p99
Export latency, peak RSS, and RSS over time (flat under sustained overload is the goal).
Target (issue 4): >= 500,000 spans/s per receiver core with fsync durability.

Run: ``python benches/bench_receiver.py`` (``--seconds 10`` for a shorter run; ``--live`` for
requests of spans within 10 s each, in time order, as a receiver gets them from a Collector,
instead of 8 hours each).
"""

from __future__ import annotations

import argparse
import gzip as gzip_module
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from bench_lake import LIVE_WINDOW_S  # noqa: E402
from test_parquet_files import SECOND, T0, realistic_request  # noqa: E402

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TARGET_SPANS_PER_S = 500_000
SPANS_PER_REQUEST = 8192
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

BASELINE = """
import sys
from concurrent import futures
import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

def export(request, context):
    n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return ExportTraceServiceResponse()

handler = grpc.method_handlers_generic_handler(
    "opentelemetry.proto.collector.trace.v1.TraceService",
    {"Export": grpc.unary_unary_rpc_method_handler(
        export,
        request_deserializer=ExportTraceServiceRequest.FromString,
        response_serializer=ExportTraceServiceResponse.SerializeToString)})
server = grpc.server(futures.ThreadPoolExecutor(16), handlers=[handler],
                     options=[("grpc.max_receive_message_length", 64 << 20)])
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"listening on 127.0.0.1:{port}", flush=True)
server.wait_for_termination()
"""


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_memory(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` memory figure in bytes (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def start(kind: str, core: int, data: Path) -> tuple[subprocess.Popen[str], int]:
    """Starts a receiver pinned to ``core``; returns it and its gRPC port."""
    if kind == "aftershock":
        cmd = [sys.executable, "-m", "aftershock.cli", "serve", "--data", str(data)]
        cmd += ["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "off", "--metrics", "off"]
        # The payloads' spans are from 2024: with the default 7-day retention, every
        # maintenance round (each 60 s) would delete them rather than compact them.
        cmd += ["--retention", "3650d"]
    else:
        cmd = [sys.executable, "-c", BASELINE]
    proc = subprocess.Popen(["taskset", "-c", str(core), *cmd], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "listening on" in line:
            port = int(line.split(":")[-1].split()[0])
            if kind == "baseline" or "gRPC" in line:
                return proc, port
    raise RuntimeError(f"{kind} receiver did not start")


def compactions(table: Path) -> int:
    """Compaction commits in ``table``'s history (maintenance runs every 60 s in ``serve``,
    so runs longer than that pay for it): the core's, or delta-rs's optimize of older builds."""
    from deltalake import DeltaTable

    history = DeltaTable(str(table)).history()
    return sum(
        h.get("aftershock.operation") == "compact" or h.get("operation") == "OPTIMIZE"
        for h in history
    )


def retry_delay(error: grpc.RpcError, default: float = 1.0) -> float:
    """The wait the receiver asked for in ``RetryInfo``, as the Collector's exporter honors it
    (it waits at least that long, and by default at least 5 s with its own backoff)."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return info.retry_delay.ToTimedelta().total_seconds()
    return default


def load(
    port: int, payloads: list[bytes], seconds: float, streams: int, compress: bool, pid: int
) -> dict[str, float]:
    """Replays ``payloads`` over ``streams`` concurrent calls on one channel for ``seconds``."""
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]
    )
    export = channel.unary_unary(TRACES_METHOD)
    compression = grpc.Compression.Gzip if compress else None
    latencies: list[float] = []
    acked = refused = failed = 0
    lock = threading.Lock()
    stop = threading.Event()

    def stream(worker: int) -> None:
        nonlocal acked, refused, failed
        i = worker
        while not stop.is_set():
            body = payloads[i % len(payloads)]
            i += streams
            t0 = time.perf_counter()
            try:
                export(body, timeout=30, compression=compression)
            except grpc.RpcError as e:
                with lock:
                    if e.code() == grpc.StatusCode.UNAVAILABLE:
                        refused += 1
                    else:
                        failed += 1
                time.sleep(retry_delay(e))
                continue
            dt = time.perf_counter() - t0
            with lock:
                acked += 1
                latencies.append(dt)

    # Warm up one request so that connection set-up is not measured.
    export(payloads[0], timeout=30, compression=compression)
    rss: list[int] = []
    cpu0 = proc_cpu_seconds(pid)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=stream, args=(w,)) for w in range(streams)]
    for t in threads:
        t.start()
    while time.perf_counter() - t0 < seconds:
        time.sleep(0.5)
        rss.append(proc_memory(pid, "VmRSS"))
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = proc_cpu_seconds(pid) - cpu0
    channel.close()
    spans = acked * SPANS_PER_REQUEST
    latencies.sort()
    quarter = max(1, len(rss) // 4)
    return {
        "spans/s": spans / elapsed,
        "cpu s/M spans": cpu / (spans / 1e6) if spans else float("nan"),
        "cpu cores": cpu / elapsed,
        "p50 ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99 ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "unavailable": refused,
        "failed": failed,
        "peak RSS MiB": proc_memory(pid, "VmHWM") / 2**20,
        "RSS MiB by quarter": [
            round(max(rss[i : i + quarter]) / 2**20) for i in range(0, len(rss), quarter)
        ],  # type: ignore[dict-item]
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="load per run")
    p.add_argument("--streams", type=int, default=10)
    p.add_argument("--requests", type=int, default=16, help="distinct payloads replayed")
    p.add_argument("--core", type=int, default=0, help="core the receiver is pinned to")
    p.add_argument("--only", choices=("aftershock", "baseline"))
    p.add_argument(
        "--live",
        action="store_true",
        help="each request's spans within 10 s, requests in time order (see bench_lake.py)",
    )
    args = p.parse_args(argv)
    cores = os.sched_getaffinity(0) - {args.core}
    if cores:
        os.sched_setaffinity(0, cores)
    payloads = [
        realistic_request(
            seed=i, start_ns=T0 + i * LIVE_WINDOW_S * SECOND, window_s=LIVE_WINDOW_S
        ).SerializeToString()
        if args.live
        else realistic_request(seed=i).SerializeToString()
        for i in range(args.requests)
    ]
    size = statistics.mean(len(b) for b in payloads)
    zipped = statistics.mean(len(gzip_module.compress(b)) for b in payloads[:4])
    print(
        f"payload: {SPANS_PER_REQUEST} spans{' (live)' if args.live else ''}, "
        f"{size / 2**20:.2f} MiB "
        f"({zipped / 2**20:.2f} MiB gzipped); {args.streams} streams; "
        f"receiver pinned to core {args.core}; {args.seconds:.0f} s per run"
    )
    results: dict[str, dict[str, float]] = {}
    kinds = [args.only] if args.only else ["aftershock", "baseline"]
    for kind in kinds:
        for compress in (False, True):
            data = Path(tempfile.mkdtemp(prefix="bench-receiver-"))
            proc, port = start(kind, args.core, data)
            try:
                name = f"{kind}{' gzip' if compress else ''}"
                results[name] = load(port, payloads, args.seconds, args.streams, compress, proc.pid)
            finally:
                proc.terminate()
                proc.wait(timeout=120)
                if kind == "aftershock":
                    results[name]["compactions"] = compactions(data / "spans")
                shutil.rmtree(data, ignore_errors=True)
            r = results[name]
            print(
                f"{name:18} {r['spans/s']:>10,.0f} spans/s"
                f"  {r['cpu s/M spans']:6.2f} CPU s/M spans ({r['cpu cores']:.2f} cores)"
                f"  p50 {r['p50 ms']:7.1f} ms  p99 {r['p99 ms']:7.1f} ms"
                f"  busy {r['unavailable']:>5.0f}  peak RSS {r['peak RSS MiB']:6.0f} MiB"
                f"  RSS by quarter {r['RSS MiB by quarter']}"
                + (f"  compactions {r['compactions']:.0f}" if "compactions" in r else ""),
                flush=True,
            )
    best = max(
        (r["spans/s"] for k, r in results.items() if k.startswith("aftershock")), default=0.0
    )
    if best:
        verdict = "met" if best >= TARGET_SPANS_PER_S else "NOT met"
        print(
            f"target >= {TARGET_SPANS_PER_S:,} spans/s per receiver core: {best:,.0f} -> {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
