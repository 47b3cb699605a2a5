"""Helpers for receiver tests: an in-process receiver on free ports, raw gRPC and HTTP calls."""

from __future__ import annotations

import gzip
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from aftershock.receiver import Receiver, ReceiverOptions

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def start_receiver(data_dir: Path, **overrides: Any) -> Receiver:
    """A receiver on 127.0.0.1 with every listener on a free port; fsync durability."""
    opts = ReceiverOptions(
        otlp_grpc="127.0.0.1:0",
        otlp_http="127.0.0.1:0",
        metrics="127.0.0.1:0",
        flush_interval=0.5,
        workers=8,
        shutdown_grace=5.0,
    )
    for key, value in overrides.items():
        setattr(opts, key, value)
    return Receiver(data_dir, opts).start()


def grpc_export(
    receiver: Receiver,
    body: bytes,
    *,
    method: str = TRACES_METHOD,
    compression: grpc.Compression | None = None,
    metadata: tuple[tuple[str, str], ...] | None = None,
    channel: grpc.Channel | None = None,
) -> bytes:
    """One unary Export call with raw bytes; raises grpc.RpcError on a non-OK status."""
    own = channel is None
    ch = channel or grpc.insecure_channel(f"127.0.0.1:{receiver.ports['otlp_grpc']}")
    try:
        call = ch.unary_unary(method)
        response: bytes = call(body, timeout=30, compression=compression, metadata=metadata)
        return response
    finally:
        if own:
            ch.close()


def http_post(
    receiver: Receiver,
    path: str,
    body: bytes,
    *,
    content_type: str = "application/x-protobuf",
    encoding: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    scheme: str = "http",
    context: Any = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the OTLP/HTTP listener; returns status, headers, body."""
    hdrs = {"Content-Type": content_type, **(headers or {})}
    if encoding == "gzip":
        body = gzip.compress(body)
    if encoding is not None:
        hdrs["Content-Encoding"] = encoding
    url = f"{scheme}://127.0.0.1:{receiver.ports['otlp_http']}{path}"
    req = urllib.request.Request(url, data=body, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metrics_text(receiver: Receiver) -> str:
    """The Prometheus exposition of the receiver."""
    url = f"http://127.0.0.1:{receiver.ports['metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text: str = resp.read().decode()
        return text


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in an exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        sample, _, label_text = key.partition("{")
        got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if sample == name and got == want:
            return float(value)
    return 0.0


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Polls ``check`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()
