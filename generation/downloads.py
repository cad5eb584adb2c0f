from django.core.files.storage import storages
from django.http import FileResponse, HttpRequest
from django.utils.text import slugify

from generation.models import Artifact, Deliverable
from storycore.responses import file_response

DELIVERABLE_CONTENT_TYPES = {
    "zip": "application/zip",
    "png": "image/png",
    "pdf": "application/pdf",
    "mp4": "video/mp4",
    "csv": "text/csv; charset=utf-8",
}


def artifact_response(request: HttpRequest, artifact: Artifact, *, as_attachment: bool) -> FileResponse:
    """Stream a stored artifact; the download name is ours, never the backend's."""
    handle = storages["artifacts"].open(artifact.storage_name, "rb")
    extension = artifact.storage_name.rsplit(".", 1)[-1]
    response = file_response(
        request,
        handle,
        content_type=artifact.content_type,
        as_attachment=as_attachment,
        filename=f"scene-{artifact.job.scene.position}-{artifact.uuid}.{extension}",
    )
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def deliverable_response(request: HttpRequest, deliverable: Deliverable) -> FileResponse:
    """Stream a built deliverable as an attachment named after its brief and kind."""
    handle = storages["deliverables"].open(deliverable.file_name, "rb")
    extension = deliverable.file_name.rsplit(".", 1)[-1]
    stem = slugify(deliverable.brief.title)[:60] or "brief"
    response = file_response(
        request,
        handle,
        content_type=DELIVERABLE_CONTENT_TYPES.get(extension, "application/octet-stream"),
        as_attachment=True,
        filename=f"{stem}-{deliverable.kind.replace('_', '-')}.{extension}",
    )
    response["Cache-Control"] = "private, no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    return response
