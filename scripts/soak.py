"""A bounded soak of `aftershock serve`: load, SIGKILL + restart, and a full disk, checked.

Runs for ``--minutes`` and then stops by itself. Meanwhile:

* ``--clients`` threads export tagged trace requests over OTLP/gRPC without pause; a request
  counts as acknowledged only when the receiver answered OK;
* every ``--kill-every`` seconds the receiver is killed with SIGKILL and started again on the
  same data directory (and the same ports);
* once, half-way, the data directory's filesystem (a tmpfs of ``--disk-mib`` MiB mounted for
  the run; needs root) is filled up for ``--full-for`` seconds and then freed.

At the end the receiver is stopped with SIGTERM and two oracles are checked:

* conservation: every acknowledged request's spans are in the lake exactly once, and nothing
  else is (requests that were refused or cut off may be stored or not, but never twice);
* liveness: after every restart and after the disk is freed, acknowledgements resume within
  ``--resume-within`` seconds.

It prints the records sent, acknowledged and stored, the faults injected, and the lost and
duplicated ones, and exits 1 if an oracle fails. Run, in the venv and as root:
``python scripts/soak.py --minutes 5``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

import aftershock

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TAG = "soak.request"
SPANS_PER_REQUEST = 50


def request(tag: str) -> bytes:
    """An export request of SPANS_PER_REQUEST spans, each carrying ``TAG = tag``."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="soak")))
    scope = rs.scope_spans.add()
    now = time.time_ns()
    for i in range(SPANS_PER_REQUEST):
        ids = hashlib.blake2b(f"{tag}/{i}".encode(), digest_size=24).digest()
        span = scope.spans.add(
            trace_id=ids[:16],
            span_id=ids[16:],
            name=f"op-{i % 5}",
            kind=2,
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1_000_000 * (i % 9 + 1),
        )
        span.attributes.append(KeyValue(key=TAG, value=AnyValue(string_value=tag)))
    return req.SerializeToString()


@dataclass
class Tally:
    """What the clients saw."""

    sent: int = 0
    acked: set[str] = field(default_factory=set)
    refused: int = 0
    last_ack: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Server:
    """`aftershock serve` on a fixed gRPC port, restartable."""

    def __init__(self, data: Path, port: int) -> None:
        self.data = data
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "aftershock.cli", "serve", "--data", str(self.data)]
        cmd += ["--otlp-grpc", f"127.0.0.1:{self.port}", "--otlp-http", "off"]
        cmd += ["--metrics", "off", "--flush-interval", "1s"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if b"writing to" in line:
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return
        raise RuntimeError(f"serve did not start (exit {self.proc.wait()})")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def client(worker: int, port: int, tally: Tally, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = channel.unary_unary(TRACES_METHOD)
            while not stop.is_set():
                tag = f"w{worker}-{i}"
                i += 1
                with tally.lock:
                    tally.sent += 1
                try:
                    export(request(tag), timeout=10)
                except grpc.RpcError as e:
                    with tally.lock:
                        tally.refused += 1
                    time.sleep(0.2)
                    if e.code() == grpc.StatusCode.UNAVAILABLE:
                        break  # reconnect: the server may have been restarted
                    continue
                with tally.lock:
                    tally.acked.add(tag)
                    tally.last_ack = time.monotonic()


def resumed(tally: Tally, since: float, within: float) -> float | None:
    """Seconds from ``since`` to the first acknowledgement after it, or None."""
    deadline = since + within
    while time.monotonic() < deadline:
        with tally.lock:
            if tally.last_ack > since:
                return tally.last_ack - since
        time.sleep(0.05)
    return None


def _secs(took: float | None) -> str:
    return "never" if took is None else f"{took:.2f} s"


def fill(path: Path) -> None:
    with path.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--kill-every", type=float, default=20.0, help="seconds between SIGKILLs")
    p.add_argument("--disk-mib", type=int, default=256, help="tmpfs size for the data")
    p.add_argument("--full-for", type=float, default=10.0, help="seconds the disk stays full")
    p.add_argument("--resume-within", type=float, default=30.0)
    args = p.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="aftershock-soak-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={args.disk_mib}m", "tmpfs", str(root)], check=True
    )
    data = root / "data"
    server = Server(data, free_port())
    tally = Tally()
    stop = threading.Event()
    faults = {"sigkill": 0, "disk_full": 0}
    liveness: list[str] = []
    end = time.monotonic() + 60 * args.minutes
    full_at = time.monotonic() + 30 * args.minutes
    try:
        server.start()
        threads = [
            threading.Thread(target=client, args=(w, server.port, tally, stop), daemon=True)
            for w in range(args.clients)
        ]
        for t in threads:
            t.start()
        next_kill = time.monotonic() + args.kill_every
        while time.monotonic() < end:
            now = time.monotonic()
            if faults["disk_full"] == 0 and now >= full_at:
                filler = root / "filler"
                fill(filler)
                faults["disk_full"] += 1
                print(f"[{now - end + 60 * args.minutes:6.1f}s] disk full", flush=True)
                time.sleep(args.full_for)
                filler.unlink()
                freed = time.monotonic()
                took = resumed(tally, freed, args.resume_within)
                if took is None:
                    liveness.append("ingest did not resume after the disk was freed")
                print(f"  freed; acks resumed after {_secs(took)}", flush=True)
            elif now >= next_kill:
                server.kill()
                faults["sigkill"] += 1
                server.start()
                restarted = time.monotonic()
                took = resumed(tally, restarted, args.resume_within)
                if took is None:
                    liveness.append(f"ingest did not resume after SIGKILL #{faults['sigkill']}")
                print(
                    f"[{now - end + 60 * args.minutes:6.1f}s] SIGKILL #{faults['sigkill']}, "
                    f"restarted; acks resumed after {_secs(took)}",
                    flush=True,
                )
                next_kill = time.monotonic() + args.kill_every
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        code = server.stop()
        if code != 0:
            liveness.append(f"serve exited {code} on SIGTERM")
        counts = dict(
            aftershock.open(data)
            .sql(f"select span_attributes['{TAG}'] as tag, count(*) as n from spans group by 1")
            .iter_rows()
        )
    finally:
        stop.set()
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
        subprocess.run(["umount", "-l", str(root)], check=False)
        os.rmdir(root)

    lost = [t for t in tally.acked if counts.get(t, 0) < SPANS_PER_REQUEST]
    duplicated = [t for t, n in counts.items() if n > SPANS_PER_REQUEST]
    partial = [t for t, n in counts.items() if 0 < n < SPANS_PER_REQUEST]
    stored = sum(counts.values())
    print(
        f"records sent {tally.sent * SPANS_PER_REQUEST:,}  acknowledged "
        f"{len(tally.acked) * SPANS_PER_REQUEST:,}  stored {stored:,}  refused requests "
        f"{tally.refused:,}  faults {faults}  lost {len(lost) * SPANS_PER_REQUEST}  "
        f"duplicated requests {len(duplicated)}  partial requests {len(partial)}"
    )
    for problem in liveness:
        print(f"LIVENESS: {problem}")
    ok = not lost and not duplicated and not partial and not liveness
    print("conservation and liveness: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
