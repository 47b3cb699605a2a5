"""The receive stage: `aftershock serve` as an object you can run in-process.

:class:`Receiver` opens the lake writer (replaying its WAL before anything is accepted),
then serves OTLP/gRPC (with this project's ``DeployService`` for deploy markers on the same
port), OTLP/HTTP and Prometheus metrics. ``stop()`` is the graceful
shutdown: refuse new requests, let those in progress finish, commit everything, release.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime as dt
import os
import platform
import resource
import ssl
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from aftershock.deploys.service import deploy_service_handler
from aftershock.lake import LakeWriter
from aftershock.receiver.auth import BearerToken
from aftershock.receiver.ingest import Ingestor
from aftershock.receiver.metrics import ReceiverMetrics
from aftershock.receiver.otlp_grpc import GrpcListener, server_credentials
from aftershock.receiver.otlp_http import HttpListener

DEFAULT_MAX_REQUEST_BYTES = 64 << 20


@dataclass
class ReceiverOptions:
    """Everything `aftershock serve` takes besides the data directory.

    An address is ``HOST:PORT``; ``None`` turns that listener off. Port 0 picks a free port
    (see :attr:`Receiver.ports`).
    """

    otlp_grpc: str | None = "127.0.0.1:4317"
    otlp_http: str | None = "127.0.0.1:4318"
    metrics: str | None = "127.0.0.1:9464"
    #: Where the Delta tables are written: the data directory unless several receivers
    #: share one table location (each keeps its WAL in its own data directory).
    tables_dir: Path | None = None
    durability: str = "fsync"
    flush_interval: float = 2.0
    max_buffer_bytes: int = 512 << 20
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    retention: dt.timedelta = dt.timedelta(days=7)
    #: Threads decoding and storing requests in parallel (the GIL is released in Rust).
    workers: int = field(default_factory=lambda: max(16, 4 * (os.cpu_count() or 1)))
    auth_token: str | None = None
    #: PEM files: server certificate chain and key (TLS), and the CA that signs client
    #: certificates (mTLS: clients without one are refused).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    #: Seconds requests in progress get to finish on shutdown.
    shutdown_grace: float = 10.0
    extra_grpc_handlers: tuple[grpc.GenericRpcHandler, ...] = ()


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:4317`` for IPv6) as a host and a port number."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"address must be HOST:PORT, not {address!r}")
    number = int(port)
    if number > 65535:
        raise ValueError(f"port out of range in {address!r}")
    return host.strip("[]"), number


def raise_descriptor_limit() -> int:
    """Raises this process's soft limit on open files to its hard limit; returns it.

    Every client connection is a descriptor, and the usual soft limit of 1024 lets about a
    thousand idle connections starve the listeners and the lake's own files.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Requests up to this size are allocated from malloc's heap rather than mapped for each.
REQUEST_MMAP_THRESHOLD = 32 << 20
#: Free memory malloc keeps at the top of its heap rather than giving back to the kernel.
REQUEST_TRIM_THRESHOLD = 128 << 20


def keep_request_memory() -> bool:
    """Lets glibc's malloc reuse the memory of finished requests; returns whether it could.

    gRPC's receive buffers and each request's bytes (megabytes each) come from glibc's
    malloc, not from the core's allocator. By default malloc maps each block that large
    afresh and unmaps it when freed, so every request's pages were faulted in and zeroed
    by the kernel again: under a Collector-like load 85-100K page faults in 5 s. With
    these thresholds freed blocks are reused (33K faults in the same run, peak RSS ~30
    MiB higher; benches/README.md, receiver). A no-op where the C library is not glibc.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(
            libc.mallopt(_M_MMAP_THRESHOLD, REQUEST_MMAP_THRESHOLD)
            and libc.mallopt(_M_TRIM_THRESHOLD, REQUEST_TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False


class Receiver:
    """An OTLP receiver writing into the lake at ``data_dir``."""

    def __init__(self, data_dir: str | os.PathLike[str], options: ReceiverOptions) -> None:
        self.data_dir = Path(data_dir)
        self.options = options
        #: Bound ports by listener name (``otlp_grpc``, ``otlp_http``, ``metrics``).
        self.ports: dict[str, int] = {}
        self.metrics = ReceiverMetrics()
        self.writer: LakeWriter | None = None
        self._grpc: GrpcListener | None = None
        self._http: HttpListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ingestor: Ingestor | None = None

    def start(self) -> Receiver:
        """Opens the lake (replaying the WAL), binds every listener and starts serving."""
        opts = self.options
        for address in (opts.otlp_grpc, opts.otlp_http, opts.metrics):
            if address is not None:
                split_address(address)
        token = BearerToken(opts.auth_token) if opts.auth_token is not None else None
        raise_descriptor_limit()
        keep_request_memory()
        self.writer = LakeWriter(
            self.data_dir,
            tables_dir=opts.tables_dir,
            durability=opts.durability,
            flush_interval=opts.flush_interval,
            max_buffer_bytes=opts.max_buffer_bytes,
            retention=opts.retention,
        )
        try:
            self._start_listeners(token)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_listeners(self, token: BearerToken | None) -> None:
        opts = self.options
        assert self.writer is not None
        self._ingestor = ingestor = Ingestor(self.writer, self.metrics)
        self.metrics.bind(self.writer, ingestor)
        tls = opts.tls_cert is not None and opts.tls_key is not None
        if opts.otlp_grpc is not None:
            creds = (
                server_credentials(
                    opts.tls_cert.read_bytes(),
                    opts.tls_key.read_bytes(),
                    opts.tls_client_ca.read_bytes() if opts.tls_client_ca else None,
                )
                if opts.tls_cert is not None and opts.tls_key is not None
                else None
            )
            self._grpc = GrpcListener(
                ingestor,
                max_request_bytes=opts.max_request_bytes,
                workers=opts.workers,
                token=token,
                credentials=creds,
                extra_handlers=(
                    deploy_service_handler(self.writer.tables_dir),
                    *opts.extra_grpc_handlers,
                ),
            )
            self.ports["otlp_grpc"] = self._grpc.bind(opts.otlp_grpc)
            self._grpc.start()
        if opts.otlp_http is None and opts.metrics is None:
            return
        self._pool = ThreadPoolExecutor(opts.workers, thread_name_prefix="aftershock-http")
        self._http = HttpListener(
            ingestor,
            self.metrics,
            max_request_bytes=opts.max_request_bytes,
            pool=self._pool,
            token=token,
            ssl_context=self._ssl_context() if tls else None,
        )
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="aftershock-http-loop", daemon=True
        )
        self._loop_thread.start()
        http = self._http
        if opts.otlp_http is not None:
            host, port = split_address(opts.otlp_http)
            self.ports["otlp_http"] = self._run(http.listen(http.otlp_app(), host, port, tls))
        if opts.metrics is not None:
            host, port = split_address(opts.metrics)
            self.ports["metrics"] = self._run(http.listen(http.metrics_app(), host, port, False))

    def _ssl_context(self) -> ssl.SSLContext:
        opts = self.options
        assert opts.tls_cert is not None and opts.tls_key is not None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        if opts.tls_client_ca is not None:
            ctx.load_verify_locations(cafile=opts.tls_client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def _run(self, coro: Coroutine[Any, Any, int]) -> int:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        """Graceful shutdown: stop accepting, finish requests in progress, commit, release."""
        grace = self.options.shutdown_grace
        if self._grpc is not None:
            self._grpc.stop(grace)
            self._grpc = None
        if self._http is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._http.close(), self._loop).result()
            self._http = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join()
            self._loop.close()
            self._loop = None
        if self._ingestor is not None:
            # A request whose client gave up may still be inside the writer: let it land.
            self._ingestor.wait_idle(grace)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
