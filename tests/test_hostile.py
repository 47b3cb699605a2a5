"""Survival under hostile input (issue 8): every case gets its specified answer, the server
stays up, and the good records sent alongside are stored.

Bombs run against an `aftershock serve` process so that its RSS can be read from /proc; the
rest run against in-process receivers (one with the default 64 MiB limit, one with 1 MiB).
"""

from __future__ import annotations

import json
import resource
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lake_workload import TAG, files, tag_counts, trace_request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from otlp_wire import (
    Av,
    any_string,
    f_len,
    f_varint,
    key_value,
    nested_arrays,
    nested_kvlists,
    resource_spans,
    scope_spans,
    span,
    tag,
    varint,
)
from otlp_wire import trace_request as wire_trace_request
from receiver_support import (
    grpc_export,
    http_post,
    metric,
    metrics_text,
    start_receiver,
    wait_for,
)
from test_serve_e2e import Serve, assert_exits_0, start_serve, visible

import aftershock
from aftershock.receiver import Receiver, otlp_http

SMALL_LIMIT = 1 << 20
CAPPED = "...(nested too deep)"
DEPTH = 100_000


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """A receiver with the default limits (64 MiB requests, 8 KiB values)."""
    r = start_receiver(tmp_path_factory.mktemp("hostile") / "data")
    yield r
    r.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """A receiver whose request limit is 1 MiB."""
    r = start_receiver(tmp_path_factory.mktemp("small") / "data", max_request_bytes=SMALL_LIMIT)
    yield r
    r.stop()


def stored(receiver: Receiver) -> dict[str, int]:
    """Span rows per request tag once committed (flushes first)."""
    assert receiver.writer is not None
    receiver.writer.flush()
    return dict(tag_counts(receiver.data_dir, "spans"))


def attribute_of(receiver: Receiver, tag_value: str, key: str) -> list[str | None]:
    """``span_attributes[key]`` of every stored span tagged ``tag_value`` (flushes first)."""
    assert receiver.writer is not None
    receiver.writer.flush()
    rows = duckdb.sql(
        f"select span_attributes[$key] from read_parquet($f) where span_attributes['{TAG}'] = $t",
        params={"f": files(receiver.data_dir, "spans"), "key": key, "t": tag_value},
    ).fetchall()
    return [value for (value,) in rows]


def tagged_span(tag_value: str, n: int, *, extra: bytes = b"", name: bytes = b"op") -> bytes:
    """A valid span carrying the request tag, ids derived from ``tag_value`` and ``n``."""
    seed = zlib.crc32(tag_value.encode()) & 0xFF or 1
    tag_attr = f_len(9, key_value(TAG.encode(), any_string(tag_value.encode())))
    return span(bytes([seed]) * 16, bytes([seed, n + 1]) * 4, name=name, extra=tag_attr + extra)


def one_span_request(tag_value: str, extra: bytes = b"", name: bytes = b"op") -> bytes:
    """A trace request of one tagged span with further encoded span fields ``extra``."""
    return wire_trace_request(
        resource_spans(scope_spans(tagged_span(tag_value, 0, extra=extra, name=name)))
    )


def attr(key: bytes, value: bytes) -> bytes:
    """Span field 9 (attributes) holding KeyValue(key, value)."""
    return f_len(9, key_value(key, value))


def padded(body: bytes, size: int) -> bytes:
    """``body`` followed by an unknown top-level field so that the whole is ``size`` bytes."""
    for header in range(2, 12):
        pad = size - len(body) - header
        field = tag(99, 2) + varint(pad) + b"p" * pad
        if pad >= 0 and len(field) == size - len(body):
            return body + field
    raise AssertionError("cannot pad")


def gzip_stream(zeros: int, wbits: int = 31) -> bytes:
    """``zeros`` zero bytes compressed in chunks, never holding them all in memory."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = bytes(1 << 20)
    out = [comp.compress(chunk) for _ in range(zeros >> 20)]
    return b"".join(out) + comp.flush()


def ensure_fds(needed: int) -> None:
    """Raises the soft fd limit to ``needed`` (skips if the hard limit is lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} file descriptors, hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# --- Gzip bombs and RSS (a serve process) ------------------------------------------------


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid`` in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    data = tmp_path_factory.mktemp("serve") / "data"
    s = start_serve(data, "--max-request-size", "1MiB", "--flush-interval", "0.5s")
    yield s
    s.proc.send_signal(signal.SIGTERM)
    assert_exits_0(s)


def test_gzip_bombs_are_refused_without_inflating(serve: Serve) -> None:
    grpc_port, http_port = serve.ports["OTLP/gRPC"], serve.ports["OTLP/HTTP"]
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    export(trace_request("warm"), timeout=30)
    assert visible(serve.data, "spans", "warm", 20)  # the first flush's allocations are done
    before = rss_kib(serve.proc.pid)

    # gRPC: 64 MiB of zeros, about 64 KiB on the wire.
    bomb = bytes(64 << 20)
    with pytest.raises(grpc.RpcError) as err:
        export(bomb, timeout=60, compression=grpc.Compression.Gzip)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    del bomb
    after_grpc = rss_kib(serve.proc.pid)

    # HTTP: 256 MiB of zeros as gzip and as deflate (about 256 KiB on the wire).
    for encoding, wbits, zeros in (("gzip", 31, 256 << 20), ("deflate", 15, 256 << 20)):
        body = gzip_stream(zeros, wbits)
        assert len(body) < SMALL_LIMIT
        req = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/traces",
            data=body,
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": encoding},
        )
        with pytest.raises(urllib.error.HTTPError) as http_err:
            urllib.request.urlopen(req, timeout=30)
        assert http_err.value.code == 413, encoding
    after_http = rss_kib(serve.proc.pid)

    # The server is up and stores a good request sent after the bombs.
    assert export(trace_request("after-bombs"), timeout=30) == b""
    status = urllib.request.urlopen(
        urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/traces",
            data=trace_request("after-bombs-http"),
            headers={"Content-Type": "application/x-protobuf"},
        ),
        timeout=30,
    ).status
    assert status == 200
    channel.close()
    assert visible(serve.data, "spans", "after-bombs", 20)
    assert visible(serve.data, "spans", "after-bombs-http", 20)

    print(f"\nRSS KiB before {before}, after gRPC bomb {after_grpc}, after HTTP bombs {after_http}")
    # Inflating either bomb would add at least 64 MiB; allow 16 MiB of allocator noise.
    assert after_grpc["VmHWM"] - before["VmHWM"] < 16 << 10
    assert after_http["VmHWM"] - before["VmHWM"] < 16 << 10


# --- Size limit edges --------------------------------------------------------------------


def test_requests_just_under_and_just_over_the_limit(small: Receiver) -> None:
    for transport in ("grpc", "grpc-gzip", "http", "http-gzip"):
        at_limit = padded(trace_request(f"at-limit-{transport}"), SMALL_LIMIT)
        over = padded(trace_request(f"over-{transport}"), SMALL_LIMIT + 1)
        assert len(at_limit) == SMALL_LIMIT and len(over) == SMALL_LIMIT + 1
        if transport.startswith("grpc"):
            compression = grpc.Compression.Gzip if transport.endswith("gzip") else None
            assert grpc_export(small, at_limit, compression=compression) == b""
            with pytest.raises(grpc.RpcError) as err:
                grpc_export(small, over, compression=compression)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, transport
            details = dict(err.value.trailing_metadata() or ())
            assert "google.rpc.retryinfo-bin" not in details
        else:
            encoding = "gzip" if transport.endswith("gzip") else None
            status, _, _ = http_post(small, "/v1/traces", at_limit, encoding=encoding)
            assert status == 200, transport
            status, _, _ = http_post(small, "/v1/traces", over, encoding=encoding)
            assert status == 413, transport
    counts = stored(small)
    for transport in ("grpc", "grpc-gzip", "http", "http-gzip"):
        assert counts.get(f"at-limit-{transport}") == 20, transport
        assert f"over-{transport}" not in counts


# --- Deep nesting, invalid UTF-8, ids ----------------------------------------------------


def json_deep(depth: int, tag_value: str) -> bytes:
    """An OTLP/JSON request of one tagged span whose attribute ``deep`` nests ``depth`` arrays."""
    value = '{"arrayValue":{"values":[' * depth + '{"intValue":"1"}' + "]}}" * depth
    tagged = f'{{"key":"{TAG}","value":{{"stringValue":"{tag_value}"}}}}'
    attrs = f'[{tagged},{{"key":"deep","value":{value}}}]'
    return (
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a",'
        f'"spanId":"0b0b0b0b0b0b0b0b","name":"deep","attributes":{attrs}}}]}}]}}]}}'
    ).encode()


def test_100k_levels_of_nesting_are_stored_truncated(receiver: Receiver) -> None:
    leaf = f_varint(Av.INT, 1)
    arrays = "[" * 64 + f'"{CAPPED}"' + "]" * 64
    kvlists = '{"k":' * 64 + f'"{CAPPED}"' + "}" * 64
    deep = one_span_request("deep-arrays", attr(b"deep", nested_arrays(DEPTH, leaf)))
    assert grpc_export(receiver, deep) == b""
    body = one_span_request("deep-kvlists", attr(b"deep", nested_kvlists(DEPTH, leaf)))
    assert http_post(receiver, "/v1/traces", body)[0] == 200
    status, _, _ = http_post(
        receiver, "/v1/traces", json_deep(DEPTH, "deep-json"), content_type="application/json"
    )
    assert status == 200
    assert grpc_export(receiver, trace_request("deep-alongside")) == b""
    counts = stored(receiver)
    for name in ("deep-arrays", "deep-kvlists", "deep-json"):
        assert counts.get(name) == 1, name
    assert counts.get("deep-alongside") == 20
    assert attribute_of(receiver, "deep-arrays", "deep") == [arrays]
    assert attribute_of(receiver, "deep-kvlists", "deep") == [kvlists]
    assert attribute_of(receiver, "deep-json", "deep") == [arrays]


def test_invalid_utf8_is_stored_replaced_and_counted(receiver: Receiver) -> None:
    bad = b"a\xffb\xc3"
    body = one_span_request("utf8", attr(b"k\xfe", any_string(bad)), name=bad)
    _, stats = aftershock.decode_traces(body, with_stats=True)
    assert stats["invalid_utf8"] == 3  # the decoder counts each repaired string
    assert grpc_export(receiver, body) == b""
    json_body = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c",'
        b'"spanId":"0d0d0d0d0d0d0d0d","name":"a\xffb","attributes":[{"key":"' + TAG.encode()
        + b'","value":{"stringValue":"utf8-json"}},'
        b'{"key":"k","value":{"stringValue":"x\xc3y"}}]}]}]}]}'
    )  # fmt: skip
    status, _, _ = http_post(receiver, "/v1/traces", json_body, content_type="application/json")
    assert status == 200
    assert stored(receiver).get("utf8") == 1 and stored(receiver).get("utf8-json") == 1
    assert attribute_of(receiver, "utf8", "k\ufffd") == ["a\ufffdb\ufffd"]
    assert attribute_of(receiver, "utf8-json", "k") == ["x\ufffdy"]
    names = duckdb.sql(
        f"select span_name from read_parquet($f) where span_attributes['{TAG}'] like 'utf8%'"
        " order by 1",
        params={"f": files(receiver.data_dir, "spans")},
    ).fetchall()
    assert names == [("a\ufffdb",), ("a\ufffdb\ufffd",)]


def test_zero_and_short_ids_reject_only_those_spans(receiver: Receiver) -> None:
    good = [tagged_span("ids", i) for i in range(3)]
    tag_attr = f_len(9, key_value(TAG.encode(), any_string(b"ids")))
    bad = [
        span(b"\x00" * 16, b"\x05" * 8, extra=tag_attr),  # zero trace id
        span(b"\x01" * 16, b"\x00" * 8, extra=tag_attr),  # zero span id
        span(b"\x01" * 8, b"\x06" * 8, extra=tag_attr),  # short trace id
        span(b"\x01" * 16, b"\x06" * 4, extra=tag_attr),  # short span id
        span(b"", b"", extra=tag_attr),  # no ids at all
    ]
    body = wire_trace_request(
        resource_spans(scope_spans(good[0], *bad[:3], good[1], *bad[3:], good[2]))
    )
    response = ExportTraceServiceResponse.FromString(grpc_export(receiver, body))
    assert response.partial_success.rejected_spans == 5
    assert response.partial_success.error_message
    json_body = json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": trace_id,
                                    "spanId": span_id,
                                    "name": "op",
                                    "attributes": [
                                        {"key": TAG, "value": {"stringValue": "ids-json"}}
                                    ],
                                }
                                for trace_id, span_id in (
                                    ("0e" * 16, "0f" * 8),
                                    ("00" * 16, "0f" * 8),
                                    ("0e" * 16, "0f" * 4),
                                    ("0e" * 16, "0e" * 8),
                                )
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    status, _, out = http_post(receiver, "/v1/traces", json_body, content_type="application/json")
    assert status == 200
    assert json.loads(out)["partialSuccess"]["rejectedSpans"] in (2, "2")
    counts = stored(receiver)
    assert counts.get("ids") == 3 and counts.get("ids-json") == 2


# --- Many and huge attributes ------------------------------------------------------------


def test_100k_attributes_on_one_span(receiver: Receiver) -> None:
    many = b"".join(attr(b"k%d" % i, any_string(b"v%d" % i)) for i in range(100_000))
    assert grpc_export(receiver, one_span_request("many-attrs", many)) == b""
    assert receiver.writer is not None
    receiver.writer.flush()
    [(n, last)] = duckdb.sql(
        "select cardinality(span_attributes), span_attributes['k99999'] from read_parquet($f)"
        f" where span_attributes['{TAG}'] = 'many-attrs'",
        params={"f": files(receiver.data_dir, "spans")},
    ).fetchall()
    assert (n, last) == (100_001, "v99999")


def test_huge_attribute_values_are_capped_at_8_kib(receiver: Receiver) -> None:
    huge = b"x" * (10 << 20)
    body = one_span_request(
        "huge", attr(b"huge", any_string(huge)) + attr(b"bytes", f_len(Av.BYTES, huge))
    )
    assert grpc_export(receiver, body) == b""
    assert (
        http_post(
            receiver,
            "/v1/traces",
            one_span_request("huge-http", attr(b"huge", any_string(huge))),
            encoding="gzip",
        )[0]
        == 200
    )
    assert receiver.writer is not None
    [value] = attribute_of(receiver, "huge", "huge")
    assert value is not None and len(value.encode()) <= 8192 and value.startswith("xxxx")
    [value] = attribute_of(receiver, "huge-http", "huge")
    assert value is not None and len(value.encode()) <= 8192
    [value] = attribute_of(receiver, "huge", "bytes")
    assert value is not None and len(value.encode()) <= 8192


# --- Connections -------------------------------------------------------------------------


def open_idle(port: int, n: int) -> list[socket.socket]:
    """``n`` TCP connections to ``port`` that never send a byte."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def test_thousands_of_idle_connections_do_not_block_requests(receiver: Receiver) -> None:
    http_idle, grpc_idle = 2000, 300
    # Each connection costs a descriptor here and one in the (in-process) server.
    ensure_fds(2 * (http_idle + grpc_idle) + 1024)
    socks = open_idle(receiver.ports["otlp_http"], http_idle)
    socks += open_idle(receiver.ports["otlp_grpc"], grpc_idle)
    try:
        start = time.monotonic()
        assert http_post(receiver, "/v1/traces", trace_request("idle-http"))[0] == 200
        assert grpc_export(receiver, trace_request("idle-grpc")) == b""
        assert time.monotonic() - start < 5.0
    finally:
        for s in socks:
            s.close()
    counts = stored(receiver)
    assert counts.get("idle-http") == 20 and counts.get("idle-grpc") == 20


def serve_with_fd_limit(data: Path, limit: int) -> Serve:
    """`aftershock serve` with a soft descriptor limit of ``limit`` (it inherits ours).

    Its stderr is drained in a thread: running out of descriptors makes it log a traceback
    per failed accept, and a full pipe would block its event loop.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        s = start_serve(data, "--flush-interval", "0.5s")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert s.proc.stderr is not None
    threading.Thread(target=s.proc.stderr.read, daemon=True).start()
    return s


def test_idle_connections_past_a_1024_fd_limit(tmp_path: Path) -> None:
    """Started with the common soft limit of 1024 descriptors, serve raises it to the hard
    limit, so 1100 idle connections neither starve new connections nor the lake's files; and
    it keeps serving once they close."""
    ensure_fds(3000)
    s = serve_with_fd_limit(tmp_path / "data", 1024)
    http_port, grpc_port = s.ports["OTLP/HTTP"], s.ports["OTLP/gRPC"]

    def post(tag_value: str) -> int | str:
        req = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/traces",
            data=trace_request(tag_value),
            headers={"Content-Type": "application/x-protobuf"},
        )
        try:
            return int(urllib.request.urlopen(req, timeout=2).status)
        except OSError as e:
            return repr(e)

    try:
        socks = open_idle(http_port, 1100)
        during = post("fd-during")
        for sock in socks:
            sock.close()
        assert wait_for(lambda: post("fd-after") == 200, timeout=10)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            )
            assert export(trace_request("fd-after-grpc"), timeout=5) == b""
        assert visible(s.data, "spans", "fd-after-grpc", 20)
    finally:
        s.proc.send_signal(signal.SIGTERM)
        assert_exits_0(s)
    assert during == 200, f"1100 idle connections exhausted a 1024-descriptor serve: {during}"


def test_a_slow_client_does_not_hold_up_others(receiver: Receiver) -> None:
    body = trace_request("slow")
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    slow = socket.create_connection(("127.0.0.1", receiver.ports["otlp_http"]), timeout=10)
    slow.sendall(head)
    trickle_until = time.monotonic() + 2.0
    sent = 0

    def trickle() -> None:
        nonlocal sent
        while time.monotonic() < trickle_until and sent < len(body) - 1:
            slow.sendall(body[sent : sent + 1])
            sent += 1
            time.sleep(0.01)

    t = threading.Thread(target=trickle)
    t.start()
    try:
        for i in range(5):
            start = time.monotonic()
            assert http_post(receiver, "/v1/traces", trace_request(f"beside-slow-{i}"))[0] == 200
            assert grpc_export(receiver, trace_request(f"beside-slow-grpc-{i}")) == b""
            assert time.monotonic() - start < 2.0
    finally:
        t.join()
    # The slow client finishes its body and is answered normally.
    slow.sendall(body[sent:])
    assert slow.recv(4096).startswith(b"HTTP/1.1 200")
    slow.close()
    counts = stored(receiver)
    assert counts.get("slow") == 20
    for i in range(5):
        assert counts.get(f"beside-slow-{i}") == 20 and counts.get(f"beside-slow-grpc-{i}") == 20


def test_a_client_that_stops_sending_its_body_gets_408(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otlp_http, "BODY_TIMEOUT_SECONDS", 1.0)
    body = trace_request("stalled")
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    before = metric(
        metrics_text(receiver),
        "aftershock_receiver_refused_requests_total",
        transport="http",
        signal="traces",
        reason="timeout",
    )
    with socket.create_connection(("127.0.0.1", receiver.ports["otlp_http"]), timeout=10) as s:
        s.sendall(head + body[: len(body) // 2])
        start = time.monotonic()
        assert http_post(receiver, "/v1/traces", trace_request("beside-stalled"))[0] == 200
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.9 < time.monotonic() - start < 5.0
    after = metric(
        metrics_text(receiver),
        "aftershock_receiver_refused_requests_total",
        transport="http",
        signal="traces",
        reason="timeout",
    )
    assert after == before + 1
    counts = stored(receiver)
    assert "stalled" not in counts and counts.get("beside-stalled") == 20


def send_and_drain(port: int, payload: bytes) -> bytes:
    """Sends ``payload`` on a fresh connection, then reads until the server closes or 0.5 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(payload)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return got


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def test_malformed_http2_and_http1_on_the_grpc_port(receiver: Receiver) -> None:
    port = receiver.ports["otlp_grpc"]
    garbage = bytes(range(256)) * 16
    cases = [
        PREFACE + garbage,
        PREFACE + h2_frame(4, 0, 0, b"") + h2_frame(1, 5, 1, garbage[:200]),  # bad HPACK
        PREFACE + h2_frame(4, 0, 0, b"\x00\x04\xff\xff\xff\xff"),  # window size over 2^31-1
        PREFACE + h2_frame(0, 1, 1, b"data on an idle stream"),
        PREFACE + h2_frame(4, 0, 0, b"") + len(b"x").to_bytes(3, "big") + b"\x01",  # cut off
        PREFACE[:10] + garbage,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /opentelemetry.proto.collector.trace.v1.TraceService/Export HTTP/1.1\r\n"
        b"Content-Length: 5\r\n\r\nhello",
        garbage,
    ]
    for payload in cases:
        send_and_drain(port, payload)
    # Garbage to the HTTP port too.
    for payload in (b"\x16\x03\x01" + garbage, b"BOGUS\r\n\r\n", PREFACE + garbage):
        answer = send_and_drain(receiver.ports["otlp_http"], payload)
        assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), (payload[:20], answer)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert grpc_export(receiver, trace_request("after-h2-garbage")) == b""
    assert stored(receiver).get("after-h2-garbage") == 20
