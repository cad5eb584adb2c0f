"""The finals as a zip (streamed file by file, block by block), its manifest, and the shot list."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from decimal import Decimal
from typing import IO, Any, BinaryIO

from generation.deliverables.plan import NO_PROGRESS, BuildError, Plan, Progress, open_checked

BLOCK = 1024 * 1024
MANIFEST_NAME = "manifest.json"
SHOT_LIST_NAME = "shot-list.csv"

SHOT_LIST_COLUMNS = [
    "position",
    "title",
    "start_s",
    "duration_s",
    "transition",
    "shot_type",
    "camera_move",
    "lens",
    "lighting",
    "mood",
    "prompt",
    "negative_prompt",
    "seed",
    "template",
    "template_version",
    "take",
    "source",
]


def _seconds(value: Decimal) -> float:
    return float(value)


def manifest(plan: Plan, files: dict[str, list[dict[str, Any]]], *, created_at: str) -> dict[str, Any]:
    """The zip's table of contents: scenes in order with what made them, and each file's hash.

    `files` maps a take's uuid to its entries in the zip ({"path", "content_type", "size", "sha256"}).
    """
    return {
        "brief": {"uuid": plan.brief_uuid, "title": plan.brief_title, "aspect_ratio": plan.aspect_ratio},
        "created_at": created_at,
        "total_duration_s": _seconds(plan.total_s),
        "scenes": [
            {
                "position": scene.position,
                "title": scene.title,
                "duration_s": _seconds(scene.duration_s),
                "transition": scene.transition,
                "prompt": scene.prompt,
                "negative_prompt": scene.negative_prompt,
                "seed": scene.seed,
                "template": scene.template,
                "template_version": scene.template_version,
                "take": scene.take,
                "source": scene.source,
                "files": files.get(scene.take, []),
            }
            for scene in plan.scenes
        ],
    }


def build_zip(plan: Plan, out: BinaryIO, *, created_at: str, progress: Progress = NO_PROGRESS) -> None:
    """Write every final into `out` as a zip, one block at a time, with manifest.json and the shot list.

    A file whose bytes no longer hash to what was recorded when it was stored is refused: the
    manifest would otherwise vouch for a file nobody picked.
    """
    total = sum(file.size for scene in plan.scenes for file in scene.files) or 1
    done = 0
    entries: dict[str, list[dict[str, Any]]] = {}
    # Stills and clips are compressed already: storing them costs nothing and reads back fast.
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for scene in plan.scenes:
            for index, file in enumerate(scene.files):
                path = scene.zip_name(index, file)
                digest = hashlib.sha256()
                size = 0
                with open_checked(file, scene) as source, archive.open(path, "w", force_zip64=True) as target:
                    while block := source.read(BLOCK):
                        digest.update(block)
                        target.write(block)
                        size += len(block)
                        done += len(block)
                        progress(min(done / total, 1.0) * 0.98)
                if file.sha256 and digest.hexdigest() != file.sha256:
                    raise BuildError(
                        f"{scene.label}: its file {file.name} has changed since it was stored "
                        f"(sha256 {digest.hexdigest()[:12]}…, recorded {file.sha256[:12]}…)"
                    )
                entries.setdefault(scene.take, []).append(
                    {
                        "path": path,
                        "content_type": file.content_type,
                        "size": size,
                        "sha256": digest.hexdigest(),
                    }
                )
        table = manifest(plan, entries, created_at=created_at)
        archive.writestr(
            MANIFEST_NAME, json.dumps(table, indent=2, ensure_ascii=False), compress_type=zipfile.ZIP_DEFLATED
        )
        text = io.StringIO()
        write_shot_list(plan, text)
        archive.writestr(SHOT_LIST_NAME, text.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
    progress(1.0)


def write_shot_list(plan: Plan, out: IO[str], *, progress: Progress = NO_PROGRESS) -> None:
    """One row per scene, in order, with where it starts on the animatic's timeline."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SHOT_LIST_COLUMNS)
    start = Decimal(0)
    count = len(plan.scenes) or 1
    for number, scene in enumerate(plan.scenes, 1):
        writer.writerow(
            [
                scene.position,
                scene.title,
                f"{start:.2f}",
                f"{scene.duration_s:.2f}",
                scene.transition,
                scene.shot_type,
                scene.camera_move,
                scene.lens,
                scene.lighting,
                scene.mood,
                scene.prompt,
                scene.negative_prompt,
                "" if scene.seed is None else scene.seed,
                scene.template,
                "" if scene.template_version is None else scene.template_version,
                scene.take,
                scene.source,
            ]
        )
        start += scene.duration_s
        progress(number / count)
