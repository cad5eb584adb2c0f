"""GET /view and POST /upload/image, with ComfyUI's status codes for bad names."""

from __future__ import annotations

import asyncio
import hashlib
import io
import mimetypes
import os
import shutil
from typing import IO, Any

from aiohttp import web
from PIL import Image

from . import paths
from .appkeys import SETTINGS_KEY
from .settings import PreviewSettings

# Served as downloads so a hostile upload cannot run script in the browser on this origin.
_FORCED_DOWNLOAD_TYPES = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}

# What ComfyUI's /view answers for the files its save nodes write, as the host's mime.types
# (read by mimetypes.init) gives them; fixed here so the answer does not depend on the host.
_SAVED_TYPES = {
    ".png": "image/png",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".opus": "audio/ogg",
}


def content_type_of(filename: str) -> str:
    saved = _SAVED_TYPES.get(os.path.splitext(filename)[1].lower())
    return saved or mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _disposition(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'filename="{filename}"'}


def _reencoded(file: str, query: Any) -> tuple[bytes, str]:
    """The /view variants that transcode: preview=webp|jpeg;quality, channel=rgb, channel=a."""
    channel = query.get("channel", "")
    with Image.open(file) as img:
        if "preview" in query:
            preview_info = query["preview"].split(";")
            image_format = preview_info[0]
            if image_format not in ("webp", "jpeg") or "a" in channel:
                image_format = "webp"
            quality = int(preview_info[-1]) if preview_info[-1].isdigit() else 90
            out_img = img.convert("RGB") if image_format == "jpeg" or channel == "rgb" else img
            buffer = io.BytesIO()
            out_img.save(buffer, format=image_format, quality=quality)
            return buffer.getvalue(), f"image/{image_format}"
        if channel == "rgb":
            if img.mode == "RGBA":
                r, g, b, _ = img.split()
                rgb = Image.merge("RGB", (r, g, b))
            else:
                rgb = img.convert("RGB")
            buffer = io.BytesIO()
            rgb.save(buffer, format="PNG")
            return buffer.getvalue(), "image/png"
        alpha = img.split()[3] if img.mode == "RGBA" else Image.new("L", img.size, 255)
        alpha_img = Image.new("RGBA", img.size)
        alpha_img.putalpha(alpha)
        buffer = io.BytesIO()
        alpha_img.save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"


async def view(request: web.Request) -> web.StreamResponse:
    settings: PreviewSettings = request.app[SETTINGS_KEY]
    query = request.rel_url.query
    if "filename" not in query:
        return web.Response(status=404)
    filename, folder_type = paths.split_annotation(query["filename"])
    if not filename:
        return web.Response(status=400)
    if filename[0] == "/" or ".." in filename or paths.has_bad_characters(filename):
        return web.Response(status=400)
    base = paths.folder_for_type(settings, folder_type or query.get("type") or "output")
    if base is None:
        return web.Response(status=400)
    folder = base
    if "subfolder" in query:
        subfolder = query["subfolder"]
        folder = base / subfolder
        if paths.has_bad_characters(subfolder) or not paths.is_inside(base, folder):
            return web.Response(status=403)
    filename = os.path.basename(filename)
    file = folder / filename
    if not paths.is_inside(base, file):
        return web.Response(status=403)
    if not file.is_file():
        return web.Response(status=404)

    if "preview" in query or query.get("channel", "rgba") in ("rgb", "a"):
        body, content_type = await asyncio.to_thread(_reencoded, str(file), query)
        return web.Response(body=body, content_type=content_type, headers=_disposition(filename))

    content_type = content_type_of(filename)
    if content_type in _FORCED_DOWNLOAD_TYPES:
        content_type = "application/octet-stream"
    # FileResponse streams from disk and handles ETag, Last-Modified, Range and If-None-Match.
    return web.FileResponse(file, headers={**_disposition(filename), "Content-Type": content_type})


def _same_content(path: os.PathLike[str], upload: IO[bytes]) -> bool:
    """Compare by sha256 in chunks, so a large upload is never held in memory."""
    existing, incoming = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            existing.update(chunk)
    upload.seek(0)
    for chunk in iter(lambda: upload.read(1 << 20), b""):
        incoming.update(chunk)
    upload.seek(0)
    return existing.hexdigest() == incoming.hexdigest()


def _store_upload(
    settings: PreviewSettings,
    folder_type: str,
    subfolder: str,
    filename: str,
    overwrite: bool,
    upload: IO[bytes],
) -> str:
    folder, target = paths.upload_target(settings, folder_type, subfolder, filename)
    folder.mkdir(parents=True, exist_ok=True)
    if not paths.is_inside(paths.folder_for_type(settings, folder_type) or folder, folder):
        raise paths.UnsafePathError("path leaves the upload folder")
    if not overwrite:
        stem, extension = os.path.splitext(filename)
        counter = 1
        while target.exists():
            # Same bytes under the same name: reuse the file instead of making "name (1).png".
            if target.is_file() and _same_content(target, upload):
                return filename
            filename = f"{stem} ({counter}){extension}"
            target = folder / filename
            counter += 1
    upload.seek(0)
    with open(target, "wb") as handle:
        shutil.copyfileobj(upload, handle, 1 << 20)
    return filename


async def upload_image(request: web.Request) -> web.Response:
    settings: PreviewSettings = request.app[SETTINGS_KEY]
    post = await request.post()
    image = post.get("image")
    if not isinstance(image, web.FileField) or not image.filename:
        return web.Response(status=400)
    folder_type = post.get("type") or "input"
    subfolder = post.get("subfolder", "")
    overwrite = post.get("overwrite")
    if not isinstance(folder_type, str) or not isinstance(subfolder, str):
        return web.Response(status=400)
    try:
        name = await asyncio.to_thread(
            _store_upload,
            settings,
            folder_type,
            subfolder,
            image.filename,
            overwrite in ("true", "1"),
            image.file,
        )
    except paths.UnsafePathError:
        return web.Response(status=400)
    return web.json_response({"name": name, "subfolder": subfolder, "type": folder_type})
