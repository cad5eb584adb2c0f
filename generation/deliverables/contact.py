"""The contact sheet: every scene's final as a thumbnail with its number, title and duration."""

from __future__ import annotations

from typing import BinaryIO

from PIL import Image, ImageDraw

from generation.deliverables.pictures import first_picture, font
from generation.deliverables.plan import NO_PROGRESS, BuildError, Plan, Progress, frame_size

THUMB_WIDTH = 320
COLUMNS = 4
MARGIN = 16
CAPTION = 46
HEADER = 56
# Rows on one page of the PDF; the PNG is one long sheet.
ROWS_PER_PAGE = 5
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)


def thumb_size(aspect_ratio: str) -> tuple[int, int]:
    width, height = frame_size(aspect_ratio)
    return THUMB_WIDTH, max(2, round(THUMB_WIDTH * height / width))


def sheet_size(aspect_ratio: str, scenes: int) -> tuple[int, int]:
    """(width, height) of a sheet of `scenes` tiles: four across (fewer when there are fewer)."""
    thumb_w, thumb_h = thumb_size(aspect_ratio)
    columns = max(1, min(COLUMNS, scenes))
    rows = max(1, -(-scenes // columns))
    width = MARGIN + columns * (thumb_w + MARGIN)
    height = HEADER + rows * (thumb_h + CAPTION + MARGIN) + MARGIN
    return width, height


def _seconds(value: object) -> str:
    text = f"{float(str(value)):.2f}".rstrip("0").rstrip(".")
    return f"{text} s"


def _page(plan: Plan, count: int, title: str) -> Image.Image:
    page = Image.new("RGB", sheet_size(plan.aspect_ratio, count), BACKGROUND)
    ImageDraw.Draw(page).text((MARGIN, MARGIN), title, font=font(24), fill=INK)
    return page


def build_contact_sheet(plan: Plan, out: BinaryIO, *, fmt: str, progress: Progress = NO_PROGRESS) -> None:
    """Write the sheet as PNG (one sheet) or PDF (a page per twenty scenes) into `out`."""
    if fmt not in ("png", "pdf"):
        raise BuildError(f"a contact sheet is PNG or PDF, not {fmt!r}")
    if not plan.scenes:
        raise BuildError("there are no scenes to put on a contact sheet")
    thumb_w, thumb_h = thumb_size(plan.aspect_ratio)
    per_page = len(plan.scenes) if fmt == "png" else COLUMNS * ROWS_PER_PAGE
    columns = max(1, min(COLUMNS, len(plan.scenes)))
    pages: list[Image.Image] = []
    total_pages = -(-len(plan.scenes) // per_page)
    title_face, caption_face = font(16), font(14)
    for number, scene in enumerate(plan.scenes):
        slot = number % per_page
        if slot == 0:
            remaining = min(per_page, len(plan.scenes) - number)
            heading = f"{plan.brief_title} · contact sheet"
            if total_pages > 1:
                heading += f" · page {len(pages) + 1} of {total_pages}"
            pages.append(_page(plan, max(remaining, columns if fmt == "pdf" else remaining), heading))
        page = pages[-1]
        row, column = divmod(slot, columns)
        x = MARGIN + column * (thumb_w + MARGIN)
        y = HEADER + row * (thumb_h + CAPTION + MARGIN)
        page.paste(first_picture(scene, (thumb_w, thumb_h)), (x, y))
        draw = ImageDraw.Draw(page)
        draw.text((x, y + thumb_h + 4), f"{scene.position}. {scene.title}"[:44], font=title_face, fill=INK)
        draw.text((x, y + thumb_h + 24), _seconds(scene.duration_s), font=caption_face, fill=MUTED)
        progress((number + 1) / len(plan.scenes) * 0.95)
    if fmt == "png":
        pages[0].save(out, "PNG", optimize=False)
    else:
        pages[0].save(
            out, "PDF", save_all=True, append_images=pages[1:], resolution=150.0, title=plan.brief_title
        )
    progress(1.0)
