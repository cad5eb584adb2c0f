"""An uploaded input image rendered through LoadImage -> ImageInvert -> SaveImage, as recorded."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import copy
import io
from typing import Any

from PIL import Image, ImageOps

from generation.providers.base import EventKind, RemoteOutput, RenderRequest
from generation.providers.comfyui import ComfyUIProvider

from .conftest import DATA_DIR, recorded_step
from .provider_fixtures import Target, collect_events, kinds, open_target  # noqa: F401 (fixtures)

INVERT = "prompt_loadimage_invert.json"
SOURCE_NAME = "rec_invert_src_ea02b9.png"
SAMPLE = (DATA_DIR / "sample_upload.png").read_bytes()


def _render(
    target: Target, provider: ComfyUIProvider, label: str, image_value: str
) -> tuple[list[EventKind], list[RemoteOutput]]:
    """Submit the recorded LoadImage prompt of step `label` loading `image_value`; follow it to its end."""
    recorded = target.render_request(label)
    workflow = copy.deepcopy(recorded.workflow)
    workflow["10"]["inputs"]["image"] = image_value
    request = RenderRequest(attempt_id=recorded.attempt_id, workflow=workflow)
    target.while_running(request.attempt_id)
    handle = provider.submit(request)
    events = collect_events(provider, handle)
    target.done_running()
    return kinds(events), provider.outputs(handle)


def _image(provider: ComfyUIProvider, output: RemoteOutput) -> Image.Image:
    with provider.fetch(output) as chunks:
        image = Image.open(io.BytesIO(b"".join(chunks)))
        image.load()
    return image


def test_an_uploaded_image_is_inverted_into_the_rec_subfolder_and_loads_from_an_input_subfolder_too(
    open_target: Any,
) -> None:
    target = open_target(INVERT)
    provider = target.provider("websocket_client")
    if target.replay is not None:
        # The recording kept only the sha256 of the 32x24 source it uploaded, and not the bytes
        # of the inverted result either (/view serves a blank PNG of the recorded size): the
        # replay checks names, folders, events and sizes; the preview server checks the pixels.
        recorded = recorded_step(INVERT, "upload source image")["request"]["form_files"]["image"]
        target.replay.substitute_upload(recorded["sha256"], SAMPLE, "sample_upload.png for the unkept source")

    assert provider.upload_image(SOURCE_NAME, SAMPLE) == SOURCE_NAME
    events, outputs = _render(target, provider, "submit LoadImage workflow", SOURCE_NAME)
    assert events[-1] == EventKind.FINISHED and EventKind.FAILED not in events
    assert {(o.node_id, o.folder_type, o.subfolder) for o in outputs} == {
        ("12", "output", "rec"),
        ("13", "temp", ""),
    }
    saved = next(o for o in outputs if o.node_id == "12")
    assert saved.filename.startswith("inverted_") and saved.kind == "image"
    inverted = _image(provider, saved)

    # The same source uploaded into an input subfolder: LoadImage takes "subfolder/name".
    in_subfolder = provider.upload_image(SOURCE_NAME, SAMPLE, subfolder="rec_sub2")
    assert in_subfolder == f"rec_sub2/{SOURCE_NAME}"
    label = "LoadImage with 'subfolder/name' value"
    assert recorded_step(INVERT, label)["request"]["json"]["prompt"]["10"]["inputs"]["image"] == in_subfolder
    events, outputs = _render(target, provider, label, in_subfolder)
    assert events[-1] == EventKind.FINISHED
    from_subfolder = next(o for o in outputs if o.node_id == "12")
    assert (from_subfolder.folder_type, from_subfolder.subfolder) == ("output", "")
    assert from_subfolder.filename.startswith("rec_from_sub_")

    if target.replay is not None:
        assert (inverted.format, inverted.size) == ("PNG", (32, 24))
        assert any("inverted_00001_.png" in note and "not recorded" in note for note in target.replay.notes)
        return
    source = Image.open(io.BytesIO(SAMPLE)).convert("RGB")
    assert source.getpixel((0, 0)) == (31, 224, 0)
    assert inverted.convert("RGB").getpixel((0, 0)) == (224, 31, 255)
    assert inverted.convert("RGB").tobytes() == ImageOps.invert(source).tobytes()
    assert _image(provider, from_subfolder).convert("RGB").tobytes() == ImageOps.invert(source).tobytes()
