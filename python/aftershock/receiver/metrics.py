"""The receiver's self-metrics, in Prometheus text format, named like the Collector's.

Labels take only values the receiver chooses (transport, signal, reason), never strings a
client sent, so a hostile client cannot blow up the number of series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from aftershock.lake import LakeWriter
    from aftershock.receiver.ingest import Ingestor, Signal

#: Content type of :meth:`ReceiverMetrics.exposition`.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ReceiverMetrics:
    """Counters and gauges of one receiver, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._accepted = {
            "spans": Counter(
                "aftershock_receiver_accepted_spans",
                "Spans stored durably.",
                ["transport"],
                registry=r,
            ),
            "log_records": Counter(
                "aftershock_receiver_accepted_log_records",
                "Log records stored durably.",
                ["transport"],
                registry=r,
            ),
        }
        self._refused = {
            "spans": Counter(
                "aftershock_receiver_refused_spans",
                "Spans rejected as invalid inside otherwise stored requests.",
                ["transport"],
                registry=r,
            ),
            "log_records": Counter(
                "aftershock_receiver_refused_log_records",
                "Log records rejected as invalid inside otherwise stored requests.",
                ["transport"],
                registry=r,
            ),
        }
        self._repaired = Counter(
            "aftershock_receiver_repaired_values",
            "Values stored repaired: invalid UTF-8 replaced, values cut to the size cap, "
            "nesting cut at the depth cap, negative durations clamped to 0.",
            ["transport", "kind"],
            registry=r,
        )
        self._refused_requests = Counter(
            "aftershock_receiver_refused_requests",
            "Export requests refused as a whole, by reason.",
            ["transport", "signal", "reason"],
            registry=r,
        )
        self._latency = Histogram(
            "aftershock_receiver_request_duration_seconds",
            "Time to store one export request (decode, WAL append and fsync).",
            ["transport", "signal"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.flush_duration = Histogram(
            "aftershock_lake_flush_duration_seconds",
            "Time to write buffered rows as Parquet and commit them to Delta.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self._gauges: list[Gauge] = []

    def bind(self, writer: LakeWriter, ingestor: Ingestor) -> None:
        """Adds the gauges read from the writer and the ingestor at scrape time."""
        readings = {
            "aftershock_receiver_queue_depth": (
                "Export requests currently being stored.",
                lambda: ingestor.inflight,
            ),
            "aftershock_lake_buffered_bytes": (
                "Bytes of acknowledged rows not yet committed to the lake.",
                lambda: writer.metrics()["buffered_bytes"],
            ),
            "aftershock_wal_bytes": (
                "Bytes in the write-ahead log.",
                lambda: writer.metrics()["wal_bytes"],
            ),
            "aftershock_lake_flush_errors": (
                "Flushes that failed and will be retried (since start).",
                lambda: writer.metrics()["flush_errors"],
            ),
        }
        for name, (doc, read) in readings.items():
            gauge = Gauge(name, doc, registry=self.registry)
            gauge.set_function(read)
            self._gauges.append(gauge)
        writer.on_flush = self.flush_duration.observe

    def stored(
        self,
        transport: str,
        signal: Signal,
        accepted: int,
        rejected: int,
        repairs: dict[str, int] | None = None,
    ) -> None:
        """Counts one stored request."""
        self._accepted[signal.records].labels(transport).inc(accepted)
        if rejected:
            self._refused[signal.records].labels(transport).inc(rejected)
        for kind, n in (repairs or {}).items():
            if n:
                self._repaired.labels(transport, kind).inc(n)

    def refused_request(self, transport: str, signal: Signal, reason: str) -> None:
        """Counts one request refused as a whole."""
        self._refused_requests.labels(transport, signal.value[0], reason).inc()

    def request_done(self, transport: str, signal: Signal, seconds: float) -> None:
        """Observes the time one request spent in the writer."""
        self._latency.labels(transport, signal.value[0]).observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
