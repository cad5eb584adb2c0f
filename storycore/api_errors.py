"""One exception handler: domain errors become the documented error shape."""

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from briefs.services import SceneParamsRefused, TeamRefused
from generation.policies import PolicyOutOfBounds
from generation.services import DeliverableBusy, DeliverableRefused, RenderRefused


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RenderRefused):
        return Response({"error": {"code": "render_refused", "message": str(exc)}}, status=409)
    if isinstance(exc, DeliverableBusy):
        return Response({"error": {"code": "deliverable_busy", "message": str(exc)}}, status=409)
    if isinstance(exc, DeliverableRefused):
        return Response({"error": {"code": "deliverable_refused", "message": str(exc)}}, status=400)
    # The three below come back as field errors, the shape a serializer's own checks have.
    if isinstance(exc, TeamRefused):
        return Response({"team": [str(exc)]}, status=400)
    if isinstance(exc, SceneParamsRefused):
        return Response({"params": {name: [message] for name, message in exc.errors.items()}}, status=400)
    if isinstance(exc, PolicyOutOfBounds):
        return Response({"policy_overrides": {exc.field: [exc.message]}}, status=400)
    return drf_exception_handler(exc, context)
