"""The few protobuf messages the receiver writes itself, encoded by hand.

Responses are tiny and fixed, so the receiver needs no Python protobuf runtime on its hot
path: ``Export*ServiceResponse`` with ``partial_success``, ``google.rpc.Status`` and
``google.rpc.RetryInfo``. Field numbers are from opentelemetry-proto and googleapis.
"""

from __future__ import annotations

import json
import math

_LEN = 2  # wire type of length-delimited fields
_VARINT = 0

RETRY_INFO_TYPE_URL = "type.googleapis.com/google.rpc.RetryInfo"


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3 | _VARINT) + _varint(value) if value else b""


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(value)) + value


def export_response(rejected: int, error_message: str | None) -> bytes:
    """``Export{Trace,Logs}ServiceResponse``; empty on full success (no ``partial_success``).

    Both responses have ``partial_success = 1`` whose message has ``rejected_* = 1`` (int64)
    and ``error_message = 2``.
    """
    if rejected == 0 and not error_message:
        return b""
    partial = _field_varint(1, rejected)
    if error_message:
        partial += _field_bytes(2, error_message.encode())
    return _field_bytes(1, partial)


def export_response_json(rejected: int, error_message: str | None, signal_field: str) -> bytes:
    """The OTLP/JSON form of :func:`export_response`; ``signal_field`` is e.g. ``rejectedSpans``."""
    if rejected == 0 and not error_message:
        return b"{}"
    partial: dict[str, object] = {signal_field: str(rejected)}
    if error_message:
        partial["errorMessage"] = error_message
    return json.dumps({"partialSuccess": partial}).encode()


def retry_info(delay_seconds: float) -> bytes:
    """``google.rpc.RetryInfo{retry_delay = Duration{seconds, nanos}}``."""
    seconds = math.floor(delay_seconds)
    nanos = round((delay_seconds - seconds) * 1e9)
    return _field_bytes(1, _field_varint(1, seconds) + _field_varint(2, nanos))


def status(code: int, message: str, retry_delay: float | None = None) -> bytes:
    """``google.rpc.Status{code, message, details}``, with a ``RetryInfo`` detail if asked."""
    out = _field_varint(1, code) + (_field_bytes(2, message.encode()) if message else b"")
    if retry_delay is not None:
        any_msg = _field_bytes(1, RETRY_INFO_TYPE_URL.encode()) + _field_bytes(
            2, retry_info(retry_delay)
        )
        out += _field_bytes(3, any_msg)
    return out


def status_json(code: int, message: str) -> bytes:
    """The JSON form of ``google.rpc.Status`` (the OTLP/HTTP error body for JSON requests)."""
    return json.dumps({"code": code, "message": message}).encode()
