"""OTLP/gRPC: TraceService and LogsService ``Export`` on raw request bytes, plus health.

The handlers are generic: grpcio hands over the request bytes without parsing them, the
Rust core decodes them (with the GIL released), and the response is encoded by hand. grpcio
does not decompress them either (``grpc.per_message_decompression`` off): the handler
inflates gzip and deflate messages with zlib, which costs half what gRPC's own inflate did,
under the same size limit after decompression as OTLP/HTTP bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aftershock.receiver import protowire
from aftershock.receiver.auth import BearerToken
from aftershock.receiver.ingest import (
    Ingestor,
    Refusal,
    Signal,
    decompress,
    grpc_message_encoding,
    unauthenticated,
)

METHODS = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": Signal.TRACES,
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export": Signal.LOGS,
}
SERVICES = tuple(m.split("/")[1] for m in METHODS)
HEALTH_PREFIX = "/grpc.health.v1.Health/"


def abort(context: grpc.ServicerContext, refusal: Refusal) -> None:
    """Ends the call with the refusal's status; retryable ones carry ``RetryInfo``.

    The delay goes both in ``grpc-status-details-bin`` (the rich error model the Collector
    reads) and in ``google.rpc.retryinfo-bin`` (what the Python SDK exporter reads).
    """
    if refusal.retry_after is not None:
        code = refusal.grpc_code.value[0]
        context.set_trailing_metadata(
            (
                (
                    "grpc-status-details-bin",
                    protowire.status(code, refusal.message, refusal.retry_after),
                ),
                ("google.rpc.retryinfo-bin", protowire.retry_info(refusal.retry_after)),
            )
        )
    context.abort(refusal.grpc_code, refusal.message)


class _ExportHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, ingestor: Ingestor, max_request_bytes: int) -> None:
        self.ingestor = ingestor
        self.max_request_bytes = max_request_bytes
        self._handlers = {
            method: grpc.unary_unary_rpc_method_handler(self._exporter(signal))
            for method, signal in METHODS.items()
        }

    def _exporter(self, signal: Signal) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                encoding = grpc_message_encoding(request)
                if encoding is not None:
                    try:
                        request = decompress(request, encoding, self.max_request_bytes)
                    except Refusal as refusal:
                        self.ingestor.metrics.refused_request("grpc", signal, refusal.reason)
                        raise
                rejected, message = self.ingestor.export(
                    signal, request, json=False, transport="grpc"
                )
            except Refusal as refusal:
                abort(context, refusal)
                raise  # abort raised already; this keeps type checkers informed
            return protowire.export_response(rejected, message)

        return export

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(details.method)


class _TokenInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses every call but health checks without the bearer token."""

    def __init__(self, token: BearerToken, on_refused: Callable[[str], None]) -> None:
        self.token = token
        self.on_refused = on_refused

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            abort(context, unauthenticated())

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if details.method.startswith(HEALTH_PREFIX):
            return continuation(details)
        metadata = dict(details.invocation_metadata or ())
        authorization = metadata.get("authorization")
        if isinstance(authorization, str) and self.token.allows(authorization):
            return continuation(details)
        self.on_refused(details.method)
        return self._deny


class GrpcListener:
    """The gRPC server: OTLP export, health, and any extra services (deploy markers)."""

    def __init__(
        self,
        ingestor: Ingestor,
        *,
        max_request_bytes: int,
        workers: int,
        token: BearerToken | None = None,
        credentials: grpc.ServerCredentials | None = None,
        extra_handlers: tuple[grpc.GenericRpcHandler, ...] = (),
    ) -> None:
        interceptors = []
        if token is not None:

            def refused(method: str) -> None:
                signal = METHODS.get(method)
                if signal is not None:
                    ingestor.metrics.refused_request("grpc", signal, "unauthenticated")

            interceptors.append(_TokenInterceptor(token, refused))
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aftershock-grpc"),
            handlers=[_ExportHandler(ingestor, max_request_bytes), *extra_handlers],
            interceptors=interceptors,
            options=[
                # Messages arrive as the client compressed them (see the module's doc): this
                # bounds their size on the wire, `decompress` their size inflated.
                ("grpc.per_message_decompression", 0),
                ("grpc.max_receive_message_length", max_request_bytes),
                ("grpc.max_send_message_length", 4 << 20),
                # Two receivers must never share a port without noticing.
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.credentials = credentials

    def bind(self, address: str) -> int:
        """Binds ``address`` (``HOST:PORT``; port 0 picks one) and returns the port."""
        if self.credentials is None:
            port: int = self.server.add_insecure_port(address)
        else:
            port = self.server.add_secure_port(address, self.credentials)
        if port == 0:
            raise OSError(f"cannot listen on {address} for OTLP/gRPC")
        return port

    def start(self) -> None:
        """Starts serving and reports every service healthy."""
        self.server.start()
        for name in ("", *SERVICES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        """Refuses new calls, gives calls in progress ``grace`` seconds, then ends them."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def server_credentials(cert: bytes, key: bytes, client_ca: bytes | None) -> grpc.ServerCredentials:
    """TLS credentials; with ``client_ca`` clients must present a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
