"""The committed gRPC code for proto/aftershock/deploy/v1/deploy.proto is what grpcio-tools
generates, and DeployService records markers.

Regenerate after editing the proto with ``python tests/test_deploy_proto.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO = "aftershock/deploy/v1/deploy.proto"
OUT = ROOT / "python" / "aftershock" / "deploys"
NAMES = ("deploy_pb2.py", "deploy_pb2.pyi", "deploy_pb2_grpc.py")
#: The generated stubs import the proto package path; the code lives in aftershock.deploys.
IMPORT = "from aftershock.deploy.v1 import deploy_pb2"
#: Generated code is exempt from the project's lints and type checks.
HEADERS = {
    "deploy_pb2.py": "# ruff: noqa\n",
    "deploy_pb2.pyi": "# ruff: noqa\n# mypy: ignore-errors\n",
    "deploy_pb2_grpc.py": "# ruff: noqa\n# mypy: ignore-errors\n",
}


def generate() -> dict[str, str]:
    """The three files as grpcio-tools writes them, imports fixed and ruff-formatted."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{ROOT / 'proto'}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(ROOT / "proto" / PROTO),
            ],
            check=True,
        )
        out = {}
        for name in NAMES:
            text = (Path(tmp) / "aftershock/deploy/v1" / name).read_text()
            text = HEADERS[name] + text.replace(IMPORT, "from aftershock.deploys import deploy_pb2")
            out[name] = subprocess.run(
                [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(OUT / name), "-"],
                input=text,
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout
        return out


def test_generated_code_is_up_to_date() -> None:
    for name, text in generate().items():
        assert (OUT / name).read_text() == text, f"{name} is stale: run {Path(__file__).name}"


if __name__ == "__main__":
    for name, text in generate().items():
        (OUT / name).write_text(text)


def test_mark_deploy_over_grpc_writes_a_marker(tmp_path: Path) -> None:
    from concurrent import futures

    import grpc
    import pytest
    from deltalake import DeltaTable

    from aftershock.deploys import deploy_pb2, deploy_pb2_grpc
    from aftershock.deploys.service import deploy_service_handler

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers([deploy_service_handler(tmp_path)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = deploy_pb2_grpc.DeployServiceStub(channel)
            reply = stub.MarkDeploy(
                deploy_pb2.MarkDeployRequest(
                    service="checkout",
                    version="2.4.0",
                    environment="prod",
                    time_unix_nano=1_795_000_020_000_000_000,
                    attributes={"vcs.ref": "abc123"},
                )
            )
            assert reply.time_unix_nano == 1_795_000_020_000_000_000
            with pytest.raises(grpc.RpcError) as err:
                stub.MarkDeploy(deploy_pb2.MarkDeployRequest(service="checkout"))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop(None)
    import pyarrow.parquet as pq

    files = DeltaTable(str(tmp_path / "markers")).file_uris()
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert len(rows) == 1
    row = rows[0]
    assert (row["service_name"], row["service_version"], row["deployment_environment"]) == (
        "checkout",
        "2.4.0",
        "prod",
    )
    assert row["source"] == "marker" and row["attributes"] == [("vcs.ref", "abc123")]
    assert "/day=2026-11-18/" in files[0]
