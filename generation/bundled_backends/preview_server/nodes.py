"""The node types the preview server knows: their object_info entries and how each one runs.

The registry is data: each NodeType pairs the object_info entry recorded from
ComfyUI (object_info.json next to this file) with an async `run` function.
Adding a node type means adding its entry to the JSON file and one NodeType in
this module or one of the nodes_* family modules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import pathlib
import random
import string
import time
from typing import Any

from PIL import Image, ImageOps, ImageSequence

from . import frames, nodes_audio, nodes_guided, nodes_ipadapter, nodes_video, paths
from .nodebase import (
    InterruptProcessing,
    NodeContext,
    NodeResult,
    NodeType,
    check_size,
    prompt_metadata,
    recorded_object_info,
)
from .settings import PreviewSettings
from .values import Checkpoint, Conditioning, ImageBatch, Latent, MaskBatch, Provenance

__all__ = [
    "NODE_TYPES",
    "InterruptProcessing",
    "NodeContext",
    "NodeResult",
    "NodeType",
    "lookup",
    "object_info",
]


async def _checkpoint_loader(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    name = inputs["ckpt_name"]
    return NodeResult((Checkpoint("MODEL", name), Checkpoint("CLIP", name), Checkpoint("VAE", name)))


async def _clip_text_encode(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((Conditioning(inputs["text"]),))


async def _empty_latent(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    width, height, batch = inputs["width"], inputs["height"], inputs["batch_size"]
    check_size(ctx.settings, width, height, batch)
    return NodeResult((Latent(width=width, height=height, batch_size=batch),))


async def _ksampler(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    model: Checkpoint = inputs["model"]
    latent: Latent = inputs["latent_image"]
    positive: Conditioning = inputs["positive"]
    negative: Conditioning = inputs["negative"]
    steps: int = inputs["steps"]
    seed: int = inputs["seed"]
    started = time.monotonic()
    end = max(started, ctx.pace.next_deadline()) if ctx.pace else started + ctx.settings.render_seconds
    step_seconds = (end - started) / steps
    if ctx.settings.max_step_seconds is not None:
        step_seconds = min(step_seconds, ctx.settings.max_step_seconds)
    sampled = dataclasses.replace(
        latent,
        positive=positive.text,
        negative=negative.text,
        seed=seed,
        sampler_node=ctx.node_id,
        steps=steps,
        # Everything that steered this sample shows up as a thumbnail in the decoded frame.
        guides=latent.guides + positive.guides + model.guides,
    )
    for step in range(1, steps + 1):
        # Sleep to each step's deadline rather than a fixed step time, so that sending
        # progress and previews does not stretch the render past its configured time.
        await ctx.sleep(max(0.0, started + step * step_seconds - time.monotonic()))
        preview = None
        if ctx.settings.preview_method == "latent2rgb":
            preview = functools.partial(
                frames.draw_sampler_preview,
                latent.width,
                latent.height,
                positive.text,
                seed,
                step,
                steps,
                ctx.settings.preview_size,
            )
        await ctx.report_progress(step, steps, preview)
    if ctx.pace:
        ctx.pace.sampler_finished()
    return NodeResult((sampled,))


async def _vae_decode(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    latent: Latent = inputs["samples"]
    # The VAE works on 8-pixel cells, so odd sizes come back rounded down like in ComfyUI.
    width, height = latent.width // 8 * 8, latent.height // 8 * 8
    check_size(ctx.settings, width, height, latent.batch_size)

    thumbnails = [(guide.caption, guide.image) for guide in latent.guides]

    def draw() -> tuple[Image.Image, ...]:
        return tuple(
            frames.draw_storyboard_frame(
                width,
                height,
                latent.positive,
                latent.seed,
                latent.sampler_node,
                index,
                latent.batch_size,
                thumbnails,
            )
            for index in range(latent.batch_size)
        )

    images = await asyncio.to_thread(draw)
    return NodeResult((ImageBatch(images, Provenance(label=latent.positive, seed=latent.seed)),))


async def _empty_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    width, height, batch, color = inputs["width"], inputs["height"], inputs["batch_size"], inputs["color"]
    check_size(ctx.settings, width, height, batch)
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    frame = Image.new("RGB", (width, height), rgb)
    # Frames are never mutated in place, so one image can stand for the whole batch.
    return NodeResult((ImageBatch((frame,) * batch),))


def _load_image_file(path: pathlib.Path) -> tuple[ImageBatch, MaskBatch]:
    with Image.open(path) as opened:
        first = ImageOps.exif_transpose(next(iter(ImageSequence.Iterator(opened))))
        first.load()
    rgb = first.convert("RGB")
    if "A" in first.getbands():
        mask = ImageOps.invert(first.getchannel("A"))
    else:
        mask = Image.new("L", (64, 64), 0)
    return ImageBatch((rgb,)), MaskBatch((mask,))


async def _load_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    path = paths.resolve_input_image(ctx.settings, inputs["image"])
    if path is None:
        raise FileNotFoundError(f"Invalid image file: {inputs['image']}")
    image, mask = await asyncio.to_thread(_load_image_file, path)
    check_size(ctx.settings, image.width, image.height, 1)
    return NodeResult((image, mask))


def _load_image_is_changed(settings: PreviewSettings, inputs: dict[str, Any]) -> str:
    path = paths.resolve_input_image(settings, str(inputs.get("image", "")))
    if path is None:
        raise FileNotFoundError(f"Invalid image file: {inputs.get('image')}")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(functools.partial(handle.read, 1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_image_validate(settings: PreviewSettings, inputs: dict[str, Any]) -> bool | str:
    image = inputs.get("image")
    if not isinstance(image, str) or paths.resolve_input_image(settings, image) is None:
        return f"Invalid image file: {image}"
    return True


_MASK_CHANNELS_BY_LETTER = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}


def _load_image_mask_file(path: pathlib.Path, channel: str) -> MaskBatch:
    with Image.open(path) as opened:
        first = ImageOps.exif_transpose(next(iter(ImageSequence.Iterator(opened))))
        first.load()
    # ComfyUI converts to RGBA first, so every channel exists; alpha comes back inverted.
    mask = first.convert("RGBA").getchannel(_MASK_CHANNELS_BY_LETTER[channel])
    return MaskBatch((ImageOps.invert(mask) if channel == "alpha" else mask,))


async def _load_image_mask(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    path = paths.resolve_input_image(ctx.settings, inputs["image"])
    if path is None:
        raise FileNotFoundError(f"Invalid image file: {inputs['image']}")
    mask = await asyncio.to_thread(_load_image_mask_file, path, inputs["channel"])
    check_size(ctx.settings, mask.frames[0].width, mask.frames[0].height, 1)
    return NodeResult((mask,))


async def _image_batch(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    first: ImageBatch = inputs["image1"]
    second: ImageBatch = inputs["image2"]
    check_size(ctx.settings, first.width, first.height, len(first.frames) + len(second.frames))
    size = (first.width, first.height)

    def fit() -> tuple[Image.Image, ...]:
        # Like ComfyUI's common_upscale(..., "bilinear", "center"): crop to the first batch's
        # aspect around the centre, then scale to its size.
        return tuple(
            frame if frame.size == size else ImageOps.fit(frame, size, Image.Resampling.BILINEAR)
            for frame in second.frames
        )

    fitted = await asyncio.to_thread(fit)
    return NodeResult((ImageBatch(first.frames + fitted, first.provenance),))


async def _image_add_noise(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image: ImageBatch = inputs["image"]
    seed, strength = inputs["seed"], inputs["strength"]

    def add_noise() -> tuple[Image.Image, ...]:
        # Seeded like ComfyUI's generator, so the same seed gives the same grain.
        rng = random.Random(seed)
        noisy = []
        for frame in image.frames:
            grain = Image.frombytes("L", frame.size, rng.randbytes(frame.width * frame.height))
            noise = Image.merge(frame.mode, (grain,) * len(frame.getbands()))
            noisy.append(Image.blend(frame, noise, strength / 2))
        return tuple(noisy)

    return NodeResult((ImageBatch(await asyncio.to_thread(add_noise), image.provenance),))


async def _image_invert(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image: ImageBatch = inputs["image"]
    inverted = await asyncio.to_thread(lambda: tuple(ImageOps.invert(f) for f in image.frames))
    return NodeResult((ImageBatch(inverted, image.provenance),))


_MASK_CHANNELS = ["red", "green", "blue", "alpha"]


async def _image_to_mask(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image: ImageBatch = inputs["image"]
    index = _MASK_CHANNELS.index(inputs["channel"])
    if index >= image.channels:
        # Same wording as torch's indexing error in ComfyUI's image_to_mask.
        raise IndexError(f"index {index} is out of bounds for dimension 3 with size {image.channels}")
    return NodeResult((MaskBatch(tuple(f.getchannel(index) for f in image.frames)),))


async def _mask_to_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    mask: MaskBatch = inputs["mask"]
    return NodeResult((ImageBatch(tuple(Image.merge("RGB", (f, f, f)) for f in mask.frames)),))


def _storyboard_chunks(ctx: NodeContext, image: ImageBatch) -> dict[str, str]:
    chunks = prompt_metadata(ctx)
    chunks["storyboard"] = frames.storyboard_chunk(
        image.provenance.label, image.provenance.seed, image.width, image.height
    )
    return chunks


async def _write_images(
    ctx: NodeContext, image: ImageBatch, prefix: str, folder_type: str, compress_level: int
) -> NodeResult:
    base = paths.folder_for_type(ctx.settings, folder_type)
    assert base is not None

    def write() -> list[dict[str, str]]:
        folder, stem, counter, subfolder = paths.save_image_path(prefix, base, image.width, image.height)
        chunks = _storyboard_chunks(ctx, image)
        results = []
        for batch_number, frame in enumerate(image.frames):
            name = f"{stem.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
            frames.save_png(frame, folder / name, chunks, compress_level)
            results.append({"filename": name, "subfolder": subfolder, "type": folder_type})
            counter += 1
        return results

    try:
        results = await asyncio.to_thread(write)
    except paths.UnsafePathError as exc:
        # ComfyUI raises a bare Exception here; keep the type so error messages match.
        raise Exception(str(exc)) from None
    return NodeResult((), {"images": results})


async def _save_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return await _write_images(ctx, inputs["images"], inputs["filename_prefix"], "output", 4)


async def _preview_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    # ComfyUI picks the random part once per node object, so reruns of the same node count up.
    suffix = ctx.state.setdefault(
        "temp_suffix", "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    )
    return await _write_images(ctx, inputs["images"], f"ComfyUI_temp_{suffix}", "temp", 1)


_CORE_NODE_TYPES = (
    NodeType("KSampler", _ksampler),
    NodeType("CheckpointLoaderSimple", _checkpoint_loader, choices=(("ckpt_name", lambda s: s.checkpoints),)),
    NodeType("CLIPTextEncode", _clip_text_encode),
    NodeType("VAEDecode", _vae_decode),
    NodeType("EmptyLatentImage", _empty_latent),
    NodeType("SaveImage", _save_image),
    NodeType("PreviewImage", _preview_image),
    NodeType(
        "LoadImage",
        _load_image,
        is_changed=_load_image_is_changed,
        custom_validation=_load_image_validate,
        custom_validation_inputs=("image",),
        choices=(("image", paths.list_input_images),),
    ),
    NodeType(
        "LoadImageMask",
        _load_image_mask,
        is_changed=_load_image_is_changed,
        custom_validation=_load_image_validate,
        custom_validation_inputs=("image",),
        choices=(("image", paths.list_input_images),),
    ),
    NodeType("ImageInvert", _image_invert),
    NodeType("ImageBatch", _image_batch),
    NodeType("ImageAddNoise", _image_add_noise),
    NodeType("EmptyImage", _empty_image),
    NodeType("MaskToImage", _mask_to_image),
    NodeType("ImageToMask", _image_to_mask),
)


def _registry() -> dict[str, NodeType]:
    found = {
        node.name: node
        for node in (
            *_CORE_NODE_TYPES,
            *nodes_guided.NODE_TYPES,
            *nodes_video.NODE_TYPES,
            *nodes_audio.NODE_TYPES,
            *nodes_ipadapter.NODE_TYPES,
        )
    }
    # /object_info lists nodes in the order the real server loads them: core first, packs after.
    order = list(recorded_object_info())
    return {name: found[name] for name in sorted(found, key=order.index)}


NODE_TYPES: dict[str, NodeType] = _registry()


def lookup(settings: PreviewSettings, name: Any) -> NodeType | None:
    """The node type named `name`, if this server offers it (custom packs only when enabled)."""
    node_type = NODE_TYPES.get(name) if isinstance(name, str) else None
    if node_type is None or not node_type.available(settings):
        return None
    return node_type


def object_info(settings: PreviewSettings) -> dict[str, Any]:
    return {name: node.object_info(settings) for name, node in NODE_TYPES.items() if node.available(settings)}
