"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from hermes.api.problems import problem_response
from hermes.bootstrap import Container, run_probes
from hermes.domain.errors import Code


class HealthController(Controller):
    include_in_schema = True
    tags = ["health"]

    @get("/healthz", summary="Liveness: the process is up")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", summary="Readiness: PostgreSQL, NATS JetStream and Redis all answer")
    async def readyz(self, request: Request[Any, Any, Any],
                     container: NamedDependency[Container]) -> Response[Any]:
        checks = await run_probes(container.probes, container.settings.readiness_timeout_s)
        failed = sorted(name for name, result in checks.items() if not result["ok"])
        if failed:
            return problem_response(
                request,
                Code.DEPENDENCY_UNAVAILABLE,
                f"not ready: {', '.join(failed)} unavailable",
                extra={"checks": checks, "failed": failed},
            )
        return Response({"status": "ready", "checks": checks})
