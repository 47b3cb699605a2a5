"""`aftershock serve`: the OTLP receiver and lake writer (see `aftershock.receiver`)."""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from aftershock.commands import CliError, add_data_option, duration, option, size

OFF = "off"

#: How often the main thread wakes up while serving. The kernel may deliver SIGTERM or SIGINT
#: to any of the process's threads (grpc's, the writer's); Python runs the handler in the
#: main thread once it executes bytecode, which a wait without a timeout never does.
SIGNAL_POLL_SECONDS = 0.2

#: What serve may take, beyond twice the receiver's grace (calls in progress, then exports
#: still inside the writer), to commit and exit after SIGTERM or SIGINT. Past it, serve
#: prints every thread's stack and exits: 0 if everything was committed, else 1 with the
#: acknowledged data left in the WAL, which the next start replays.
SHUTDOWN_SLACK_SECONDS = 30.0


def _exit_if_stuck(seconds: float, drained: threading.Event) -> None:
    """Ends the process if it is still alive ``seconds`` from now (a stuck shutdown)."""

    def give_up() -> None:
        done = drained.is_set()
        state = "committed everything" if done else "acknowledged data stays in the WAL"
        print(
            f"aftershock serve: still running {seconds:g} s after the stop signal "
            f"({state}); exiting {0 if done else 1}. Threads:",
            file=sys.stderr,
            flush=True,
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(0 if done else 1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()


def register(sub: Any) -> None:
    """Adds ``serve`` to the CLI."""
    p = sub.add_parser(
        "serve",
        help="run the OTLP receiver (gRPC :4317, HTTP :4318) and write the lake",
        description="Receive OTLP traces and logs over gRPC and HTTP and store them durably.",
    )
    add_data_option(p)
    option(
        p,
        "--tables",
        None,
        metavar="DIR",
        help="where the Delta tables go (default: the data directory); several receivers, each "
        "with its own --data, may share one",
    )
    option(p, "--otlp-grpc", "127.0.0.1:4317", help="OTLP/gRPC address HOST:PORT, or off")
    option(p, "--otlp-http", "127.0.0.1:4318", help="OTLP/HTTP address HOST:PORT, or off")
    option(p, "--metrics", "127.0.0.1:9464", help="Prometheus /metrics address, or off")
    option(
        p,
        "--durability",
        "fsync",
        choices=("fsync", "os"),
        help="fsync: acknowledge after fsync (default); os: after the OS has the bytes",
    )
    option(p, "--retention", "7d", type=duration, help="drop data older than this")
    option(
        p,
        "--flush-interval",
        "2s",
        type=duration,
        help="commit acknowledged data to the lake at least this often",
    )
    option(
        p,
        "--max-buffer",
        "512MiB",
        type=size,
        help="memory for rows awaiting a commit; past it, clients are told to retry",
    )
    option(p, "--max-request-size", "64MiB", type=size, help="largest request after decompression")
    option(p, "--workers", 0, type=int, help="request threads (default: max(16, 4 x cores))")
    option(p, "--auth-token-file", None, help="require 'Authorization: Bearer <token>'")
    option(p, "--tls-cert", None, help="PEM certificate chain: serve TLS")
    option(p, "--tls-key", None, help="PEM private key for --tls-cert")
    option(p, "--tls-client-ca", None, help="PEM CA: require client certificates it signed")
    p.set_defaults(run=run)


def _address(value: str, flag: str) -> str | None:
    from aftershock.receiver import split_address

    if value.strip().lower() == OFF:
        return None
    try:
        split_address(value)
    except ValueError as e:
        raise CliError(f"{flag}: {e}") from None
    return value


def _readable(value: str | None, flag: str) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    try:
        path.read_bytes()
    except OSError as e:
        raise CliError(f"{flag}: cannot read {value!r}: {e.strerror or e}") from None
    return path


def options_from(args: argparse.Namespace) -> Any:
    """Checks the flags (nothing is written before they pass) into ReceiverOptions."""
    from aftershock.receiver import ReceiverOptions

    token_file = _readable(args.auth_token_file, "--auth-token-file")
    token = token_file.read_text().strip() if token_file else None
    if token_file is not None and not token:
        raise CliError(f"--auth-token-file: {args.auth_token_file!r} is empty")
    cert = _readable(args.tls_cert, "--tls-cert")
    key = _readable(args.tls_key, "--tls-key")
    if (cert is None) != (key is None):
        raise CliError("--tls-cert and --tls-key go together")
    client_ca = _readable(args.tls_client_ca, "--tls-client-ca")
    if client_ca is not None and cert is None:
        raise CliError("--tls-client-ca needs --tls-cert and --tls-key")
    tables = Path(args.tables) if args.tables else None
    if tables is not None and tables.exists() and not tables.is_dir():
        raise CliError(f"--tables: {args.tables!r} is not a directory")
    opts = ReceiverOptions(
        tables_dir=tables,
        otlp_grpc=_address(args.otlp_grpc, "--otlp-grpc"),
        otlp_http=_address(args.otlp_http, "--otlp-http"),
        metrics=_address(args.metrics, "--metrics"),
        durability=args.durability,
        flush_interval=float(args.flush_interval),
        max_buffer_bytes=int(args.max_buffer),
        max_request_bytes=int(args.max_request_size),
        retention=dt.timedelta(seconds=float(args.retention)),
        auth_token=token,
        tls_cert=cert,
        tls_key=key,
        tls_client_ca=client_ca,
    )
    if int(args.workers) > 0:
        opts.workers = int(args.workers)
    if opts.otlp_grpc is None and opts.otlp_http is None:
        raise CliError("both --otlp-grpc and --otlp-http are off: nothing to serve")
    return opts


def run(args: argparse.Namespace) -> int:
    """Serves until SIGTERM or SIGINT, then drains, flushes and exits 0."""
    from aftershock.errors import AftershockError
    from aftershock.receiver import Receiver

    opts = options_from(args)
    data = Path(args.data)
    if data.exists() and not data.is_dir():
        raise CliError(f"--data: {str(data)!r} is not a directory")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    receiver = Receiver(data, opts)
    try:
        receiver.start()
    except (OSError, AftershockError, RuntimeError) as e:
        raise CliError(f"cannot start: {e}", exit_code=1) from None
    scheme = "https" if opts.tls_cert else "http"
    names = {
        "otlp_grpc": ("OTLP/gRPC", opts.otlp_grpc, ""),
        "otlp_http": ("OTLP/HTTP", opts.otlp_http, f" ({scheme}://.../v1/traces, /v1/logs)"),
        "metrics": ("metrics", opts.metrics, " (/metrics)"),
    }
    for key, (label, address, extra) in names.items():
        if key in receiver.ports and address is not None:
            host = address.rpartition(":")[0]
            print(f"aftershock serve: {label} listening on {host}:{receiver.ports[key]}{extra}")
    tables = f" (tables in {opts.tables_dir.resolve()})" if opts.tables_dir else ""
    print(f"aftershock serve: writing to {data.resolve()}{tables}", flush=True)
    while not stop.wait(SIGNAL_POLL_SECONDS):
        pass
    print("aftershock serve: stopping: draining requests and committing", file=sys.stderr)
    drained = threading.Event()
    _exit_if_stuck(2 * opts.shutdown_grace + SHUTDOWN_SLACK_SECONDS, drained)
    receiver.stop()
    drained.set()
    return 0
