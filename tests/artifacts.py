"""What the engine stores for a successful render, made directly: tests of what reads renders (takes,
the brief list, deliverables, who may download what) need the rows and files, not a render."""

from __future__ import annotations

import hashlib
import io

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from PIL import Image

from generation.models import Artifact, Attempt, RenderJob


def png_bytes(size: tuple[int, int] = (32, 18), colour: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def stored_png(
    job: RenderJob,
    attempt: Attempt,
    *,
    size: tuple[int, int] = (32, 18),
    colour: tuple[int, int, int] = (200, 120, 40),
) -> Artifact:
    """A PNG of the attempt, in the artifacts storage and as its Artifact row."""
    body = png_bytes(size, colour)
    name = storages["artifacts"].save(f"{job.brief.uuid}/{job.uuid}/{attempt.uuid}-0.png", ContentFile(body))
    return Artifact.objects.create(
        job=job,
        attempt=attempt,
        storage_name=name,
        content_type="image/png",
        size_bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        width=size[0],
        height=size[1],
    )
