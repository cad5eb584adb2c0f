"""One exception handler: domain errors become the documented error shape."""

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from generation.services import RenderRefused


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RenderRefused):
        return Response({"error": {"code": "render_refused", "message": str(exc)}}, status=409)
    return drf_exception_handler(exc, context)
