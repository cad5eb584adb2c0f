from django.core.files.storage import storages
from django.http import FileResponse, HttpRequest

from generation.models import Artifact
from storycore.responses import file_response


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
