"""Where files live, and the checks that keep untrusted names inside data_dir."""

from __future__ import annotations

import os
import pathlib
import time

from .settings import PreviewSettings

FOLDER_TYPES = ("output", "input", "temp")
_ANNOTATIONS = {" [output]": "output", " [input]": "input", " [temp]": "temp"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


class UnsafePathError(Exception):
    """A name pointed outside the folder it was meant for."""


def folder_for_type(settings: PreviewSettings, folder_type: str) -> pathlib.Path | None:
    return {
        "output": settings.output_dir,
        "input": settings.input_dir,
        "temp": settings.temp_dir,
    }.get(folder_type)


def split_annotation(name: str) -> tuple[str, str | None]:
    """`file.png [output]` names a folder inline, as the ComfyUI frontend writes it."""
    for suffix, folder_type in _ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], folder_type
    return name, None


def is_inside(base: pathlib.Path, candidate: pathlib.Path) -> bool:
    """True when `candidate` stays under `base`, both lexically and after following symlinks.

    The lexical check is what ComfyUI does; the resolved check also stops a
    symlink planted inside data_dir from reaching the rest of the disk.
    """
    base_abs = os.path.abspath(base)
    cand_abs = os.path.abspath(candidate)
    if os.path.commonpath((base_abs, cand_abs)) != base_abs:
        return False
    base_real = os.path.realpath(base)
    cand_real = os.path.realpath(candidate)
    return os.path.commonpath((base_real, cand_real)) == base_real


def has_bad_characters(name: str) -> bool:
    return "\x00" in name


def resolve_input_image(settings: PreviewSettings, name: str) -> pathlib.Path | None:
    """The file a LoadImage value refers to, or None when it is missing or escapes its folder."""
    if has_bad_characters(name):
        return None
    plain, folder_type = split_annotation(name)
    base = folder_for_type(settings, folder_type or "input")
    if base is None or not plain:
        return None
    candidate = base / plain
    if not is_inside(base, candidate) or not candidate.is_file():
        return None
    return candidate


def list_input_images(settings: PreviewSettings) -> list[str]:
    """Files LoadImage offers: images directly in input/, sorted like ComfyUI does."""
    try:
        entries = os.listdir(settings.input_dir)
    except FileNotFoundError:
        return []
    return sorted(
        name
        for name in entries
        if name.lower().endswith(IMAGE_EXTENSIONS) and (settings.input_dir / name).is_file()
    )


def _expand_prefix_variables(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    replacements = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": str(now.tm_mon).zfill(2),
        "%day%": str(now.tm_mday).zfill(2),
        "%hour%": str(now.tm_hour).zfill(2),
        "%minute%": str(now.tm_min).zfill(2),
        "%second%": str(now.tm_sec).zfill(2),
    }
    for key, value in replacements.items():
        prefix = prefix.replace(key, value)
    return prefix


def save_image_path(
    filename_prefix: str, base: pathlib.Path, width: int, height: int
) -> tuple[pathlib.Path, str, int, str]:
    """Folder, file stem, first free counter and subfolder for a SaveImage-style prefix.

    Follows ComfyUI's get_save_image_path: a `/` in the prefix makes a
    subfolder and the counter continues after the highest one on disk.
    """
    if "%" in filename_prefix:
        filename_prefix = _expand_prefix_variables(filename_prefix, width, height)
    if has_bad_characters(filename_prefix):
        raise UnsafePathError("Saving image outside the output folder is not allowed.")
    normalised = os.path.normpath(filename_prefix)
    subfolder = os.path.dirname(normalised)
    stem = os.path.basename(normalised)
    folder = base / subfolder
    if os.path.isabs(subfolder) or not is_inside(base, folder):
        raise UnsafePathError("Saving image outside the output folder is not allowed.")
    folder.mkdir(parents=True, exist_ok=True)
    # Re-check after mkdir: a symlinked parent only shows up once the path exists.
    if not is_inside(base, folder):
        raise UnsafePathError("Saving image outside the output folder is not allowed.")
    return folder, stem, _next_counter(folder, stem), subfolder


def _next_counter(folder: pathlib.Path, stem: str) -> int:
    highest = 0
    prefix_len = len(stem)
    for name in os.listdir(folder):
        head = name[: prefix_len + 1]
        if os.path.normcase(head[:-1]) != os.path.normcase(stem) or not head.endswith("_"):
            continue
        try:
            digits = int(name[prefix_len + 1 :].split("_")[0])
        except ValueError:
            digits = 0
        highest = max(highest, digits)
    return highest + 1


def upload_target(
    settings: PreviewSettings, folder_type: str, subfolder: str, filename: str
) -> tuple[pathlib.Path, pathlib.Path]:
    """Folder and file path for an upload, refusing anything that leaves the folder."""
    base = folder_for_type(settings, folder_type)
    if base is None:
        raise UnsafePathError(f"unknown folder type {folder_type!r}")
    if (
        not filename
        or has_bad_characters(filename)
        or has_bad_characters(subfolder)
        or filename in (".", "..")
        or "/" in filename
        or "\\" in filename
    ):
        raise UnsafePathError("bad file name")
    folder = base / os.path.normpath(subfolder) if subfolder else base
    target = folder / filename
    if not is_inside(base, folder) or not is_inside(base, target):
        raise UnsafePathError("path leaves the upload folder")
    return folder, target
