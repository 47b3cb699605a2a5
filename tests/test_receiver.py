"""The receiver against RECEIVER.md, point by point, over real gRPC and HTTP on loopback."""

from __future__ import annotations

import gzip
import json
import platform
import ssl
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lake_workload import logs_request, tag_counts, trace_request
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from otlp_wire import resource_spans as wire_resource_spans
from otlp_wire import scope_spans, span
from otlp_wire import trace_request as wire_trace_request
from receiver_support import (
    LOGS_METHOD,
    grpc_export,
    http_post,
    metric,
    metrics_text,
    start_receiver,
    wait_for,
)

from aftershock.receiver import Receiver


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = start_receiver(tmp_path / "data")
    yield r
    r.stop()


def stored(receiver: Receiver, table: str = "spans") -> dict[str, int]:
    """Rows per request tag once committed (flushes first)."""
    assert receiver.writer is not None
    receiver.writer.flush()
    return dict(tag_counts(receiver.data_dir, table))


def mixed_request() -> tuple[bytes, int]:
    """Three good spans and two invalid ones (zero trace id, short span id)."""
    good = [span(bytes([1]) * 16, bytes([i + 1]) * 8, name=b"ok") for i in range(3)]
    bad = [span(b"\x00" * 16, b"\x05" * 8), span(b"\x01" * 16, b"\x06" * 4)]
    return wire_trace_request(wire_resource_spans(scope_spans(*good, *bad))), 3


# --- gRPC (RECEIVER.md 1-9) -------------------------------------------------------------


def test_grpc_full_success_is_an_empty_response(receiver: Receiver) -> None:
    assert grpc_export(receiver, trace_request("a")) == b""
    assert grpc_export(receiver, logs_request("l"), method=LOGS_METHOD) == b""
    assert stored(receiver) == {"a": 20}
    assert stored(receiver, "logs") == {"l": 10}


def test_grpc_empty_request_is_success(receiver: Receiver) -> None:
    assert grpc_export(receiver, b"") == b""
    assert grpc_export(receiver, b"", method=LOGS_METHOD) == b""


def test_grpc_partial_success_keeps_the_good_spans(receiver: Receiver) -> None:
    body, good = mixed_request()
    response = ExportTraceServiceResponse.FromString(grpc_export(receiver, body))
    assert response.HasField("partial_success")
    assert response.partial_success.rejected_spans == 2
    assert "trace_id" in response.partial_success.error_message
    assert receiver.writer is not None
    receiver.writer.flush()
    [(rows,)] = _count(receiver, "spans")
    assert rows == good


def _count(receiver: Receiver, table: str) -> list[tuple[int]]:
    import duckdb
    from lake_workload import files

    uris = files(receiver.data_dir, table)
    if not uris:
        return [(0,)]
    return duckdb.sql("select count(*) from read_parquet($f)", params={"f": uris}).fetchall()


def test_grpc_undecodable_is_invalid_argument_and_stores_nothing(receiver: Receiver) -> None:
    with pytest.raises(grpc.RpcError) as err:
        grpc_export(receiver, b"\x0a\xff\xff\xff\xff\x0f garbage")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at byte 6" in (err.value.details() or "")
    assert _count(receiver, "spans") == [(0,)]
    text = metrics_text(receiver)
    labels = {"transport": "grpc", "signal": "traces", "reason": "invalid"}
    assert metric(text, "aftershock_receiver_refused_requests_total", **labels) == 1


def test_grpc_gzip_works(receiver: Receiver) -> None:
    grpc_export(receiver, trace_request("gz"), compression=grpc.Compression.Gzip)
    assert stored(receiver) == {"gz": 20}


def test_grpc_deflate_and_corrupt_compressed_messages(receiver: Receiver) -> None:
    """The server inflates messages itself: deflate works as gzip does; a message with a
    gzip header that does not inflate is INVALID_ARGUMENT and counted as refused."""
    grpc_export(receiver, trace_request("zz"), compression=grpc.Compression.Deflate)
    assert stored(receiver) == {"zz": 20}
    broken = gzip.compress(trace_request("broken"))[:-40]
    with pytest.raises(grpc.RpcError) as err:
        grpc_export(receiver, broken)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "gzip" in (err.value.details() or "")
    labels = {"transport": "grpc", "signal": "traces", "reason": "invalid"}
    assert metric(metrics_text(receiver), "aftershock_receiver_refused_requests_total", **labels)
    assert stored(receiver) == {"zz": 20}


def test_grpc_message_encoding_is_told_by_its_header() -> None:
    import zlib

    from aftershock.receiver.ingest import grpc_message_encoding

    body = trace_request("sniff")
    assert body[0] == 0x0A
    assert grpc_message_encoding(body) is None
    assert grpc_message_encoding(b"") is None
    assert grpc_message_encoding(gzip.compress(body)) == "gzip"
    for level in (1, 6, 9):
        for wbits in (9, 12, 15):
            z = zlib.compressobj(level, zlib.DEFLATED, wbits)
            assert grpc_message_encoding(z.compress(body) + z.flush()) == "deflate"
    # The tag of field 1 is no zlib header, whatever follows it.
    assert all(grpc_message_encoding(bytes([0x0A, b])) is None for b in range(256))


def test_grpc_limit_applies_after_decompression(tmp_path: Path) -> None:
    r = start_receiver(tmp_path, max_request_bytes=256 << 10)
    try:
        # ~480 KiB of spans that gzip to far less: the limit must count decompressed bytes.
        body = trace_request("big", spans=6000)
        assert len(body) > 256 << 10 and len(gzip.compress(body)) < 256 << 10
        with pytest.raises(grpc.RpcError) as err:
            grpc_export(r, body, compression=grpc.Compression.Gzip)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(err.value.trailing_metadata() or ())
        assert "google.rpc.retryinfo-bin" not in trailers  # not retryable
        labels = {"transport": "grpc", "signal": "traces", "reason": "too_large"}
        assert metric(metrics_text(r), "aftershock_receiver_refused_requests_total", **labels) == 1
        grpc_export(r, trace_request("small"), compression=grpc.Compression.Gzip)
        assert stored(r) == {"small": 20}
    finally:
        r.stop()


def test_grpc_busy_is_unavailable_with_retry_info(tmp_path: Path) -> None:
    r = start_receiver(tmp_path, max_buffer_bytes=64 << 10, flush_interval=3600)
    try:
        with pytest.raises(grpc.RpcError) as err:
            for i in range(1000):
                grpc_export(r, trace_request(f"b{i}"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        trailers = dict(err.value.trailing_metadata() or ())
        info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
        assert 0 < delay <= 5
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        [detail] = status.details
        assert detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR)
        stored_tags = stored(r)  # the flush frees the budget
        assert all(n == 20 for n in stored_tags.values()) and len(stored_tags) == i
        grpc_export(r, trace_request("after"))
        assert stored(r)["after"] == 20
    finally:
        r.stop()


def test_grpc_health_reports_serving(receiver: Receiver) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{receiver.ports['otlp_grpc']}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "opentelemetry.proto.collector.trace.v1.TraceService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_unknown_method_is_unimplemented(receiver: Receiver) -> None:
    with pytest.raises(grpc.RpcError) as err:
        grpc_export(receiver, b"", method="/opentelemetry.proto.collector.metrics.v1.X/Export")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- HTTP (RECEIVER.md 10-14) -----------------------------------------------------------


def test_http_protobuf_success_and_content_type_echo(receiver: Receiver) -> None:
    status, headers, body = http_post(
        receiver,
        "/v1/traces",
        trace_request("h"),
        content_type="Application/X-Protobuf; charset=utf-8",
    )
    assert (status, headers["Content-Type"], body) == (200, "application/x-protobuf", b"")
    status, _, body = http_post(receiver, "/v1/logs", logs_request("hl"), encoding="gzip")
    assert status == 200 and ExportLogsServiceResponse.FromString(body).ByteSize() == 0
    assert stored(receiver) == {"h": 20}
    assert stored(receiver, "logs") == {"hl": 10}


def test_http_partial_success(receiver: Receiver) -> None:
    body, _ = mixed_request()
    status, _, out = http_post(receiver, "/v1/traces", body)
    assert status == 200
    assert ExportTraceServiceResponse.FromString(out).partial_success.rejected_spans == 2


def test_http_methods_paths_and_media_types(receiver: Receiver) -> None:
    assert http_post(receiver, "/v1/traces", b"", method="GET")[0] == 405
    assert http_post(receiver, "/v1/traces", b"", method="PUT")[0] == 405
    assert http_post(receiver, "/v1/metrics", b"")[0] == 404
    assert http_post(receiver, "/nope", b"")[0] == 404
    status, _, body = http_post(receiver, "/v1/traces", b"x", content_type="text/plain")
    assert status == 415
    assert "Content-Type" in status_pb2.Status.FromString(body).message


def test_http_bad_encoding_and_bad_body_are_400(receiver: Receiver) -> None:
    status, _, _ = http_post(receiver, "/v1/traces", trace_request("e"), encoding="br")
    assert status == 400
    status, headers, body = http_post(
        receiver, "/v1/traces", b"\x0a\xff\xff garbage", content_type="application/x-protobuf"
    )
    assert status == 400 and headers["Content-Type"] == "application/x-protobuf"
    err = status_pb2.Status.FromString(body)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "decode" in err.message
    status, _, _ = http_post(
        receiver,
        "/v1/traces",
        b"not gzip",
        headers={"Content-Encoding": "gzip"},
    )
    assert status == 400
    assert stored(receiver) == {}


def test_http_limit_after_decompression_is_413(tmp_path: Path) -> None:
    r = start_receiver(tmp_path, max_request_bytes=256 << 10)
    try:
        bomb = b"\x00" * (50 << 20)  # 50 MiB of zeros: ~50 KiB gzipped
        status, _, _ = http_post(r, "/v1/traces", bomb, encoding="gzip")
        assert status == 413
        status, _, _ = http_post(r, "/v1/traces", b"\x00" * (300 << 10))
        assert status == 413
        assert http_post(r, "/v1/traces", trace_request("ok"), encoding="gzip")[0] == 200
        assert stored(r) == {"ok": 20}
    finally:
        r.stop()


def test_http_busy_is_503_with_retry_after(tmp_path: Path) -> None:
    r = start_receiver(tmp_path, max_buffer_bytes=64 << 10, flush_interval=3600)
    try:
        for i in range(1000):
            status, headers, body = http_post(r, "/v1/traces", trace_request(f"b{i}"))
            if status != 200:
                break
        assert status == 503
        assert int(headers["Retry-After"]) >= 1
        assert status_pb2.Status.FromString(body).code == grpc.StatusCode.UNAVAILABLE.value[0]
    finally:
        r.stop()


def test_http_empty_bodies_are_empty_requests(receiver: Receiver) -> None:
    for media, empty in (("application/x-protobuf", b""), ("application/json", b"")):
        status, _, _ = http_post(receiver, "/v1/traces", empty, content_type=media)
        assert status == 200
    status, _, body = http_post(receiver, "/v1/logs", b"{}", content_type="application/json")
    assert (status, json.loads(body)) == (200, {})


def test_http_json_error_bodies_are_json(receiver: Receiver) -> None:
    status, headers, body = http_post(
        receiver, "/v1/traces", b"{not json", content_type="application/json"
    )
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


# --- security, metrics ------------------------------------------------------------------


def test_bearer_token_is_required_on_both_transports(tmp_path: Path) -> None:
    r = start_receiver(tmp_path, auth_token="s3cret")
    try:
        with pytest.raises(grpc.RpcError) as err:
            grpc_export(r, trace_request("no"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            grpc_export(r, trace_request("no"), metadata=(("authorization", "Bearer nope"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert http_post(r, "/v1/traces", trace_request("no"))[0] == 401
        bad = {"Authorization": "Bearer s3cre"}
        assert http_post(r, "/v1/traces", trace_request("no"), headers=bad)[0] == 401
        good = {"Authorization": "Bearer s3cret"}
        grpc_export(r, trace_request("g"), metadata=(("authorization", good["Authorization"]),))
        assert http_post(r, "/v1/traces", trace_request("h"), headers=good)[0] == 200
        # Health stays open for probes.
        with grpc.insecure_channel(f"127.0.0.1:{r.ports['otlp_grpc']}") as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert stored(r) == {"g": 20, "h": 20}
        text = metrics_text(r)
        for transport in ("grpc", "http"):
            labels = {"transport": transport, "signal": "traces", "reason": "unauthenticated"}
            assert metric(text, "aftershock_receiver_refused_requests_total", **labels) == 2
    finally:
        r.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@aftershock.test")
    paths = {
        "ca": d / "ca.pem",
        "cert": d / "server.pem",
        "key": d / "server.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    return paths


def test_tls_on_grpc_and_http(tmp_path: Path, pki: dict[str, Path]) -> None:
    r = start_receiver(tmp_path, tls_cert=pki["cert"], tls_key=pki["key"])
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{r.ports['otlp_grpc']}", creds) as ch:
            grpc_export(r, trace_request("tls"), channel=ch)
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        status, _, _ = http_post(
            r, "/v1/traces", trace_request("tlsh"), scheme="https", context=ctx
        )
        assert status == 200
        with pytest.raises(grpc.RpcError) as err:  # plaintext against a TLS port
            grpc_export(r, trace_request("plain"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert stored(r) == {"tls": 20, "tlsh": 20}
    finally:
        r.stop()


def test_mtls_refuses_clients_without_a_certificate(tmp_path: Path, pki: dict[str, Path]) -> None:
    r = start_receiver(tmp_path, tls_cert=pki["cert"], tls_key=pki["key"], tls_client_ca=pki["ca"])
    try:
        root = pki["ca"].read_bytes()
        anonymous = grpc.ssl_channel_credentials(root_certificates=root)
        with grpc.secure_channel(f"127.0.0.1:{r.ports['otlp_grpc']}", anonymous) as ch:
            with pytest.raises(grpc.RpcError) as err:
                grpc_export(r, trace_request("anon"), channel=ch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        mutual = grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=pki["client_key"].read_bytes(),
            certificate_chain=pki["client_cert"].read_bytes(),
        )
        with grpc.secure_channel(f"127.0.0.1:{r.ports['otlp_grpc']}", mutual) as ch:
            grpc_export(r, trace_request("mutual"), channel=ch)
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            http_post(r, "/v1/traces", trace_request("anonh"), scheme="https", context=ctx)
        ctx.load_cert_chain(pki["client_cert"], pki["client_key"])
        assert http_post(r, "/v1/traces", trace_request("h"), scheme="https", context=ctx)[0] == 200
        assert stored(r) == {"mutual": 20, "h": 20}
    finally:
        r.stop()


def test_metrics_count_accepted_and_refused(receiver: Receiver) -> None:
    grpc_export(receiver, trace_request("m"))
    http_post(receiver, "/v1/logs", logs_request("m"))
    body, _ = mixed_request()
    grpc_export(receiver, body)
    text = metrics_text(receiver)
    assert metric(text, "aftershock_receiver_accepted_spans_total", transport="grpc") == 23
    assert metric(text, "aftershock_receiver_refused_spans_total", transport="grpc") == 2
    assert metric(text, "aftershock_receiver_accepted_log_records_total", transport="http") == 10
    assert metric(text, "aftershock_receiver_request_duration_seconds_count",
                  transport="grpc", signal="traces") == 2  # fmt: skip
    assert "aftershock_wal_bytes" in text and "aftershock_receiver_queue_depth" in text
    assert wait_for(lambda: "aftershock_lake_flush_duration_seconds_count 0.0" not in
                    metrics_text(receiver))  # fmt: skip
    # Client-supplied strings never become label values.
    assert "svc-0" not in text and "op-1" not in text


def test_stop_commits_everything_acknowledged(tmp_path: Path) -> None:
    r = start_receiver(tmp_path, flush_interval=3600)
    for i in range(5):
        grpc_export(r, trace_request(f"s{i}"))
    r.stop()
    assert dict(tag_counts(tmp_path, "spans")) == {f"s{i}": 20 for i in range(5)}


# --- OTLP/JSON (RECEIVER.md 14) ---------------------------------------------------------

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "otlp-json"


def test_the_shared_fixtures_are_there() -> None:
    # Without them the parametrized test below would silently collect nothing.
    assert len(list(FIXTURES.rglob("*.json"))) >= 10


def _fixture_items(doc: dict[str, object]) -> tuple[str, int, set[str]]:
    """The path a fixture goes to, how many records it holds and its (lowercased) trace ids."""
    if "resourceSpans" in doc:
        resources, scopes, items, path = "resourceSpans", "scopeSpans", "spans", "/v1/traces"
    else:
        resources, scopes, items, path = "resourceLogs", "scopeLogs", "logRecords", "/v1/logs"
    records = [
        record
        for resource in doc[resources]  # type: ignore[attr-defined]
        for scope in resource.get(scopes, [])
        for record in scope.get(items, [])
    ]
    ids = {r["traceId"].lower() for r in records if r.get("traceId")}
    return path, len(records), ids


@pytest.mark.parametrize(
    "fixture",
    sorted(
        p.relative_to(FIXTURES).as_posix()
        for p in FIXTURES.rglob("*.json")
        if p.name != "metrics.json"
    ),
)
def test_json_fixtures_all_ingest(receiver: Receiver, fixture: str) -> None:
    raw = (FIXTURES / fixture).read_bytes()
    path, n, ids = _fixture_items(json.loads(raw))
    assert n > 0
    for encoding in (None, "gzip"):
        status, headers, body = http_post(
            receiver, path, raw, content_type="application/json", encoding=encoding
        )
        assert status == 200, body
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {}
    table = "spans" if path == "/v1/traces" else "logs"
    assert receiver.writer is not None
    receiver.writer.flush()
    [(rows,)] = _count(receiver, table)
    assert rows == 2 * n
    import duckdb
    from lake_workload import files

    stored_ids = {
        row[0]
        for row in duckdb.sql(
            "select trace_id from read_parquet($f) where trace_id is not null",
            params={"f": files(receiver.data_dir, table)},
        ).fetchall()
    }
    assert stored_ids == ids


def test_json_partial_success_names_rejected_spans(receiver: Receiver) -> None:
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": "5B8EFFF798038103D269B633813FC60C",
                             "spanId": "EEE19B7EC3C1B174", "name": "ok"},
                            {"traceId": "00000000000000000000000000000000",
                             "spanId": "EEE19B7EC3C1B175", "name": "zero trace id"},
                        ]
                    }
                ]
            }
        ]
    }  # fmt: skip
    status, _, body = http_post(
        receiver, "/v1/traces", json.dumps(doc).encode(), content_type="application/json"
    )
    assert status == 200
    partial = json.loads(body)["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and partial["errorMessage"]
    assert receiver.writer is not None
    receiver.writer.flush()
    [(rows,)] = _count(receiver, "spans")
    assert rows == 1


def test_deploy_markers_over_the_otlp_grpc_port_need_the_token_too(tmp_path: Path) -> None:
    from aftershock.deploys import deploy_pb2, deploy_pb2_grpc

    r = start_receiver(tmp_path, auth_token="s3cret")
    try:
        request = deploy_pb2.MarkDeployRequest(
            service="checkout", version="2.4.0", environment="prod", time_unix_nano=10**18
        )
        with grpc.insecure_channel(f"127.0.0.1:{r.ports['otlp_grpc']}") as ch:
            stub = deploy_pb2_grpc.DeployServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.MarkDeploy(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            reply = stub.MarkDeploy(
                request, timeout=10, metadata=(("authorization", "Bearer s3cret"),)
            )
        assert reply.time_unix_nano == 10**18
    finally:
        r.stop()
    import aftershock

    markers = aftershock.open(tmp_path).sql("select service_name, service_version from markers")
    assert markers.rows() == [("checkout", "2.4.0")]


def test_metrics_count_repaired_values(receiver: Receiver) -> None:
    from otlp_wire import any_string, f_len, key_value

    big = key_value(b"big", any_string(b"x" * 20_000))  # over the 8 KiB value cap
    body = wire_trace_request(
        wire_resource_spans(
            scope_spans(span(b"\x01" * 16, b"\x02" * 8, name=b"bad \xff name", extra=f_len(9, big)))
        )
    )
    assert grpc_export(receiver, body) == b""
    text = metrics_text(receiver)
    name = "aftershock_receiver_repaired_values_total"
    assert metric(text, name, transport="grpc", kind="invalid_utf8") == 1
    assert metric(text, name, transport="grpc", kind="truncated_values") == 1


#: Threads allocating, touching and freeing request-sized blocks, as the receiver's gRPC
#: threads and handlers do; prints the page faults it took.
_REQUEST_CHURN = """
import resource, sys, threading
if sys.argv[1] == "keep":
    from aftershock.receiver import keep_request_memory
    assert keep_request_memory()
def churn():
    for i in range(40):
        block = bytearray((3 << 20) + 4096 * i)
        block[::4096] = b"x" * len(block[::4096])
        del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
threads = [threading.Thread(target=churn) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")
def test_freed_request_memory_is_reused_not_faulted_in_again(tmp_path: Path) -> None:
    def faults(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _REQUEST_CHURN, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        return int(out.stdout)

    default, kept = faults("default"), faults("keep")
    # Each thread's first block is faulted in either way (~3K pages for the four); by
    # default most later ones are too.
    assert kept < default * 0.75, (kept, default)
