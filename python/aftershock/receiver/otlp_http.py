"""OTLP/HTTP: ``POST /v1/traces`` and ``/v1/logs`` with protobuf or JSON bodies, and /metrics.

aiohttp serves it: asyncio keeps thousands of idle or slow connections cheap (no thread
each), and its parser is mature. The event loop only parses HTTP; decompression and the
Rust ingest run on a thread pool (both release the GIL), so slow bodies never stall it.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from aiohttp import web

from aftershock.receiver import protowire
from aftershock.receiver.auth import BearerToken
from aftershock.receiver.ingest import (
    ENCODINGS,
    Ingestor,
    Refusal,
    Signal,
    decompress,
    too_large,
    unauthenticated,
)
from aftershock.receiver.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from aftershock.receiver.metrics import ReceiverMetrics

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: Seconds an idle HTTP keep-alive connection is kept open.
KEEPALIVE_SECONDS = 75.0
#: Time a client gets to send its whole body (aiohttp has no such limit); a slower one gets
#: 408, so a client trickling its body cannot hold a connection and a buffer forever.
BODY_TIMEOUT_SECONDS = 30.0


class HttpListener:
    """The OTLP/HTTP app and the metrics app, on one event loop in a thread of its own."""

    def __init__(
        self,
        ingestor: Ingestor,
        metrics: ReceiverMetrics,
        *,
        max_request_bytes: int,
        pool: ThreadPoolExecutor,
        token: BearerToken | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.metrics = metrics
        self.limit = max_request_bytes
        self.pool = pool
        self.token = token
        self.ssl_context = ssl_context
        self._runners: list[web.AppRunner] = []

    def otlp_app(self) -> web.Application:
        """The OTLP routes; other methods on them get 405, other paths 404 (from aiohttp)."""
        app = web.Application(client_max_size=self.limit)
        for signal in Signal:
            app.router.add_post(signal.path, self._handler(signal))
        return app

    def metrics_app(self) -> web.Application:
        """``GET /metrics``: Prometheus text."""
        app = web.Application()

        async def scrape(request: web.Request) -> web.Response:
            body = self.metrics.exposition()
            return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

        app.router.add_get("/metrics", scrape)
        return app

    async def listen(self, app: web.Application, host: str, port: int, tls: bool) -> int:
        """Serves ``app`` on ``host:port`` (0 picks a port); returns the bound port."""
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            auto_decompress=False,
            shutdown_timeout=10.0,
            # Idle keep-alive connections are closed after this long (aiohttp's default is
            # an hour); each one holds a descriptor.
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        await runner.setup()
        site = web.TCPSite(
            runner, host, port, ssl_context=self.ssl_context if tls else None, reuse_port=False
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runners.append(runner)
        bound = runner.addresses[0]
        return int(bound[1])

    async def close(self) -> None:
        """Stops listening, lets requests in progress finish, then closes every connection."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    def _handler(self, signal: Signal) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            media = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            as_json = media == JSON
            try:
                if self.token is not None and not self.token.allows(
                    request.headers.get("Authorization")
                ):
                    raise unauthenticated()
                if media not in (PROTOBUF, JSON):
                    raise Refusal(
                        "unsupported_media",
                        f"Content-Type must be {PROTOBUF} or {JSON}, not {media or 'missing'!r}",
                        grpc_code=grpc.StatusCode.INVALID_ARGUMENT,
                        http_status=415,
                    )
                body = await self._body(request)
                loop = asyncio.get_running_loop()
                rejected, message = await loop.run_in_executor(
                    self.pool, self._export, signal, body, as_json
                )
            except Refusal as refusal:
                if refusal.reason in _COUNTED_HERE:
                    self.metrics.refused_request("http", signal, refusal.reason)
                return _error_response(refusal, as_json)
            if as_json:
                out = protowire.export_response_json(rejected, message, signal.json_rejected_field)
            else:
                out = protowire.export_response(rejected, message)
            return web.Response(body=out, headers={"Content-Type": JSON if as_json else PROTOBUF})

        return handle

    def _export(self, signal: Signal, body: bytes, as_json: bool) -> tuple[int, str | None]:
        if not body:
            # An empty body is an empty request in either encoding: success, nothing stored.
            return 0, None
        return self.ingestor.export(signal, body, json=as_json, transport="http")

    async def _body(self, request: web.Request) -> bytes:
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ENCODINGS and encoding not in ("", "identity"):
            raise Refusal(
                "bad_encoding",
                f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)",
                grpc_code=grpc.StatusCode.INVALID_ARGUMENT,
                http_status=400,
            )
        try:
            body = await asyncio.wait_for(request.read(), BODY_TIMEOUT_SECONDS)
        except web.HTTPRequestEntityTooLarge:
            raise too_large(self.limit) from None
        except TimeoutError:
            raise Refusal(
                "timeout",
                f"request body not received within {BODY_TIMEOUT_SECONDS:g} s",
                grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED,
                http_status=408,
            ) from None
        if encoding in ENCODINGS:
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(self.pool, decompress, body, encoding, self.limit)
        return body


#: Refusals that happen before the ingestor sees the request, so HTTP counts them itself.
_COUNTED_HERE = frozenset(
    {"unauthenticated", "unsupported_media", "bad_encoding", "too_large", "timeout"}
)


def _error_response(refusal: Refusal, as_json: bool) -> web.Response:
    """A ``google.rpc.Status`` body in the request's encoding, with the right headers."""
    code = refusal.grpc_code.value[0]
    headers = {"Content-Type": JSON if as_json else PROTOBUF}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
    if refusal.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = (
        protowire.status_json(code, refusal.message)
        if as_json
        else protowire.status(code, refusal.message)
    )
    return web.Response(status=refusal.http_status, body=body, headers=headers)
