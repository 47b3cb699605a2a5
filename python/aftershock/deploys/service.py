"""The gRPC ``aftershock.deploy.v1.DeployService`` (proto/aftershock/deploy/v1/deploy.proto).

``deploy_service_handler(data_dir)`` is registered by the receiver next to the OTLP services,
so CI pipelines can mark deploys on the same port they send telemetry to.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from aftershock.deploys import deploy_pb2
from aftershock.deploys.markers import write_marker

SERVICE_NAME = "aftershock.deploy.v1.DeployService"


def deploy_service_handler(data_dir: Path | str) -> grpc.GenericRpcHandler:
    """A generic handler serving ``DeployService`` by writing markers under ``data_dir``."""

    def mark_deploy(
        request: deploy_pb2.MarkDeployRequest, context: grpc.ServicerContext
    ) -> deploy_pb2.MarkDeployResponse:
        if not request.service or not request.version:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "service and version are required")
        recorded = write_marker(
            data_dir,
            request.service,
            request.version,
            request.environment or None,
            request.time_unix_nano or None,
            dict(request.attributes),
        )
        return deploy_pb2.MarkDeployResponse(
            time_unix_nano=recorded.time_unix_nano,
            recorded_at_unix_nano=recorded.recorded_at_unix_nano,
        )

    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "MarkDeploy": grpc.unary_unary_rpc_method_handler(
                mark_deploy,
                request_deserializer=deploy_pb2.MarkDeployRequest.FromString,
                response_serializer=deploy_pb2.MarkDeployResponse.SerializeToString,
            )
        },
    )
