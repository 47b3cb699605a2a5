"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/.

Seeds: the shared OTLP/JSON fixtures (as they are for the JSON decoders, as protobuf for
the protobuf decoders), the fixed requests of tests/otlp_samples.py in both encodings,
hand-made protobuf edge cases (deep nesting, invalid UTF-8, bad ids, long values) and a
few write-ahead-log segments. Deterministic: rerunning it rewrites the same files.

Usage (from the repository root, in the venv): python fuzz/make_corpus.py
"""

from __future__ import annotations

import shutil
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import otlp_samples  # noqa: E402
import otlp_wire as w  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: E402
    ExportLogsServiceRequest,
)
from test_decode_json import FIXTURES, otlp_json  # noqa: E402
from test_query import otlp_json_to_protobuf  # noqa: E402

CORPUS = ROOT / "fuzz" / "corpus"
TRACE_FIXTURES = [FIXTURES / "trace.json", *sorted((FIXTURES / "jaeger").glob("*.json"))]
LOG_FIXTURES = [FIXTURES / "logs.json", FIXTURES / "events.json"]

ID16, ID8 = bytes(range(1, 17)), bytes(range(1, 9))


def _span(name: bytes = b"op", extra: bytes = b"", trace_id: bytes = ID16) -> bytes:
    return w.span(trace_id=trace_id, span_id=ID8, name=name, extra=extra)


def _attr(value: bytes) -> bytes:
    """A KeyValue with key ``k``; the caller wraps it in the attributes field."""
    return w.key_value(b"k", value)


def trace_edge_cases() -> Iterator[tuple[str, bytes]]:
    """Spans the official encoder cannot write, or that stress the decoder's limits."""
    deep = w.nested_arrays(80, w.any_string(b"leaf"))
    yield "edge-deep-array", w.single_span_request(_span(extra=w.f_len(9, _attr(deep))))
    deep = w.nested_kvlists(80, w.any_string(b"leaf"))
    yield "edge-deep-kvlist", w.single_span_request(_span(extra=w.f_len(9, _attr(deep))))
    yield "edge-groups", w.single_span_request(_span(extra=w.nested_groups(30)))
    yield "edge-invalid-utf8", w.single_span_request(_span(name=b"bad \xff\xfe name"))
    yield "edge-zero-id", w.single_span_request(_span(trace_id=bytes(16)))
    yield "edge-short-id", w.single_span_request(_span(trace_id=b"\x01\x02"))
    times = w.f_fixed64(7, 2_000) + w.f_fixed64(8, 1_000)
    yield "edge-negative-duration", w.single_span_request(_span(extra=times))
    long = w.any_string(b"\xc3\xa9" * 6000)
    yield "edge-long-value", w.single_span_request(_span(extra=w.f_len(9, _attr(long))))


def log_edge_cases() -> Iterator[tuple[str, bytes]]:
    """Log records counterpart of :func:`trace_edge_cases`."""
    deep = w.nested_arrays(80, w.any_string(b"leaf"))
    yield "edge-deep-body", w.single_log_request(w.f_len(5, deep))
    yield "edge-invalid-utf8", w.single_log_request(w.f_len(5, w.any_string(b"\xff body")))
    long = w.any_string(b"\xe2\x82\xac" * 4000)
    yield "edge-long-attr", w.single_log_request(w.f_len(6, _attr(long)))
    yield "edge-ids", w.single_log_request(w.f_len(9, bytes(16)) + w.f_len(10, b"\x01"))


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def wal_record(seq: int, payload: bytes, kind: int = 1) -> bytes:
    """One record in the layout documented at the top of rust/core/src/wal.rs."""
    rest = bytes([0xA7, 1, kind, 0]) + struct.pack("<IQI", len(payload), seq, _crc32c(payload))
    return struct.pack("<I", _crc32c(rest)) + rest + payload


def wal_segments() -> Iterator[tuple[str, bytes]]:
    """Intact, torn and damaged segments."""
    payloads = [b"", b"a", otlp_samples.sdk_trace_request().SerializeToString()[:200]]
    intact = b"".join(wal_record(seq, p) for seq, p in enumerate(payloads, start=1))
    yield "intact", intact
    yield "torn-tail", intact + wal_record(4, b"cut short")[:30]
    damaged = bytearray(intact)
    damaged[24 + 24] ^= 0xFF  # the second record's header checksum
    yield "damaged-middle", bytes(damaged)
    yield "stale-seq", wal_record(5, b"x") + wal_record(3, b"y") + wal_record(6, b"z")


def seeds() -> dict[str, list[tuple[str, bytes]]]:
    """Every target's seeds, as (file name, content)."""
    logs = ExportLogsServiceRequest
    sdk_traces, sdk_logs = otlp_samples.sdk_trace_request(), otlp_samples.sdk_logs_request()
    rich_traces, rich_logs = otlp_samples.rich_trace_request(), otlp_samples.rich_logs_request()
    spelled = {"snake_case": True, "enum_numbers": True, "int_numbers": True, "upper_hex": True}
    return {
        "decode_traces": [
            *((f"fixture-{p.stem}.pb", otlp_json_to_protobuf(p)) for p in TRACE_FIXTURES),
            ("sdk.pb", sdk_traces.SerializeToString()),
            ("rich.pb", rich_traces.SerializeToString()),
            *((f"{name}.pb", data) for name, data in trace_edge_cases()),
        ],
        "decode_logs": [
            *((f"fixture-{p.stem}.pb", otlp_json_to_protobuf(p, logs)) for p in LOG_FIXTURES),
            ("sdk.pb", sdk_logs.SerializeToString()),
            ("rich.pb", rich_logs.SerializeToString()),
            *((f"{name}.pb", data) for name, data in log_edge_cases()),
        ],
        "decode_traces_json": [
            *((f"fixture-{p.stem}.json", p.read_bytes()) for p in TRACE_FIXTURES),
            ("other-signal-metrics.json", (FIXTURES / "metrics.json").read_bytes()),
            ("sdk.json", otlp_json(sdk_traces)),
            ("rich.json", otlp_json(rich_traces)),
            ("rich-spelled.json", otlp_json(rich_traces, **spelled)),
        ],
        "decode_logs_json": [
            *((f"fixture-{p.stem}.json", p.read_bytes()) for p in LOG_FIXTURES),
            ("sdk.json", otlp_json(sdk_logs)),
            ("rich.json", otlp_json(rich_logs)),
            ("rich-spelled.json", otlp_json(rich_logs, **spelled)),
        ],
        "wal_replay": [(f"{name}.wal", data) for name, data in wal_segments()],
    }


def main() -> None:
    """Replaces the seeds of every target (fuzzer-found inputs are kept out of git)."""
    for target, files in seeds().items():
        out = CORPUS / target
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for name, data in files:
            (out / name).write_bytes(data)
        print(f"{target}: {len(files)} seeds, {sum(len(d) for _, d in files)} bytes")


if __name__ == "__main__":
    main()
