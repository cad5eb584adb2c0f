"""The deliverable builders on their own, without Django: what they write is read back."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tracemalloc
import zipfile
from decimal import Decimal
from pathlib import Path

import av
import pytest
from PIL import Image

from generation.deliverables.animatic import build_animatic
from generation.deliverables.contact import build_contact_sheet, sheet_size
from generation.deliverables.package import MANIFEST_NAME, SHOT_LIST_NAME, build_zip, write_shot_list
from generation.deliverables.plan import ANIMATIC_FPS, BuildError, FinalFile, Plan, SceneEntry, frame_size

COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 200, 30)]


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (160, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def still(tmp_path: Path, name: str, body: bytes, content_type: str = "image/png") -> FinalFile:
    path = tmp_path / name
    path.write_bytes(body)
    return FinalFile(
        name=name,
        content_type=content_type,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        open=lambda: path.open("rb"),
    )


def scene(position: int, file: FinalFile, duration: str = "1", transition: str = "cut") -> SceneEntry:
    return SceneEntry(
        position=position,
        title=f"Shot {position}",
        duration_s=Decimal(duration),
        transition=transition,
        take=f"take-{position}",
        source="final",
        prompt=f"prompt {position}",
        seed=1000 + position,
        template="storyboard-txt2img",
        template_version=1,
        files=(file,),
    )


def plan_of(scenes: list[SceneEntry], aspect: str = "16:9") -> Plan:
    return Plan(brief_title="Night ferry", brief_uuid="b-1", aspect_ratio=aspect, scenes=tuple(scenes))


def close_to(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


@pytest.mark.parametrize(
    ("aspect", "size"),
    [
        ("16:9", (1280, 720)),
        ("9:16", (404, 720)),
        ("1:1", (720, 720)),
        ("4:3", (960, 720)),
        ("2.39:1", (1720, 720)),
    ],
)
def test_the_frame_size_follows_the_aspect_ratio_with_an_even_width(aspect, size):
    assert frame_size(aspect) == size


def test_a_malformed_aspect_ratio_is_refused_by_name():
    with pytest.raises(BuildError, match="'wide'"):
        frame_size("wide")


@pytest.mark.parametrize("aspect", ["16:9", "9:16"])
def test_the_animatic_runs_the_scenes_durations_at_the_briefs_size_showing_each_final(tmp_path, aspect):
    durations = ["1.5", "0.75", "1.3", "1"]
    transitions = ["dissolve", "fade", "cut", "fade"]
    scenes = [
        scene(i + 1, still(tmp_path, f"s{i}.png", png_bytes(colour)), durations[i], transitions[i])
        for i, colour in enumerate(COLOURS)
    ]
    out = tmp_path / "animatic.mp4"
    seen: list[float] = []
    with out.open("wb") as handle:
        build_animatic(plan_of(scenes, aspect), handle, progress=seen.append)
    assert seen[-1] == 1.0
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == frame_size(aspect)
        frames = [(frame.time, frame.to_image()) for frame in container.decode(stream)]
    total = sum(Decimal(d) for d in durations)
    assert abs(len(frames) / ANIMATIC_FPS - float(total)) <= 1 / ANIMATIC_FPS
    assert abs(frames[-1][0] + 1 / ANIMATIC_FPS - float(total)) <= 1 / ANIMATIC_FPS
    start = Decimal(0)
    width, height = frame_size(aspect)
    for duration, colour in zip(durations, COLOURS, strict=True):
        middle = float(start + Decimal(duration) / 2)
        image = min(frames, key=lambda item: abs(item[0] - middle))[1]
        assert close_to(image.getpixel((width // 2, height // 2)), colour), (middle, colour)
        start += Decimal(duration)


def test_a_dissolve_blends_across_the_cut_and_a_fade_passes_through_black(tmp_path):
    red, blue = (220, 40, 40), (40, 60, 220)
    scenes = [
        scene(1, still(tmp_path, "a.png", png_bytes(red)), "1", "dissolve"),
        scene(2, still(tmp_path, "b.png", png_bytes(blue)), "1", "fade"),
        scene(3, still(tmp_path, "c.png", png_bytes(red)), "1", "cut"),
    ]
    out = io.BytesIO()
    build_animatic(plan_of(scenes, "1:1"), out)
    out.seek(0)
    with av.open(out) as container:
        frames = [frame.to_image().getpixel((360, 360)) for frame in container.decode(video=0)]
    assert len(frames) == 72
    at_dissolve = frames[24]
    assert 60 < at_dissolve[0] < 200 and 60 < at_dissolve[2] < 200  # half red, half blue
    assert max(frames[47]) < 40 and max(frames[48]) < 40  # black either side of the fade's cut


def test_titles_are_burned_in_when_asked(tmp_path):
    scenes = [scene(1, still(tmp_path, "a.png", png_bytes((40, 200, 60))), "0.5")]
    plain, titled = io.BytesIO(), io.BytesIO()
    build_animatic(plan_of(scenes), plain)
    build_animatic(plan_of(scenes), titled, titles=True)
    images = []
    for buffer in (plain, titled):
        buffer.seek(0)
        with av.open(buffer) as container:
            images.append(next(container.decode(video=0)).to_image())
    band = (0, 650, 1280, 720)
    assert images[0].crop(band).getextrema()[0][1] < 80  # green only, no white
    assert images[1].crop(band).getextrema()[0][1] > 200  # white letters on the band


def test_a_clip_is_played_and_its_last_frame_held(tmp_path):
    clip = io.BytesIO()
    with av.open(clip, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for number in range(12):
            colour = (220, 40, 40) if number < 6 else (40, 60, 220)
            frame = av.VideoFrame.from_image(Image.new("RGB", (320, 180), colour))
            frame.pts = number
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    file = still(tmp_path, "clip.mp4", clip.getvalue(), "video/mp4")
    out = io.BytesIO()
    build_animatic(plan_of([scene(1, file, "1")]), out)
    out.seek(0)
    with av.open(out) as container:
        frames = [frame.to_image().getpixel((640, 360)) for frame in container.decode(video=0)]
    assert len(frames) == 24
    assert close_to(frames[2], (220, 40, 40)) and close_to(frames[9], (40, 60, 220))
    assert close_to(frames[23], (40, 60, 220))  # held past the clip's half second


def test_a_clip_that_cannot_be_decoded_names_its_scene(tmp_path):
    broken = still(tmp_path, "broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100, "video/mp4")
    with pytest.raises(BuildError, match=r"scene 1 \(Shot 1\): its clip broken.mp4"):
        build_animatic(plan_of([scene(1, broken)]), io.BytesIO())


def test_a_missing_file_names_its_scene(tmp_path):
    file = still(tmp_path, "gone.png", png_bytes((1, 2, 3)))
    (tmp_path / "gone.png").unlink()
    with pytest.raises(BuildError, match=r"scene 2 \(Shot 2\): its file gone.png is missing"):
        build_zip(plan_of([scene(2, file)]), io.BytesIO(), created_at="now")


def test_the_zip_holds_every_final_and_a_manifest_with_their_hashes(tmp_path):
    scenes = [scene(i + 1, still(tmp_path, f"s{i}.png", png_bytes(c)), "2") for i, c in enumerate(COLOURS)]
    out = io.BytesIO()
    build_zip(plan_of(scenes), out, created_at="2026-01-01T00:00:00Z")
    with zipfile.ZipFile(out) as archive:
        table = json.loads(archive.read(MANIFEST_NAME))
        assert [s["position"] for s in table["scenes"]] == [1, 2, 3, 4]
        assert table["total_duration_s"] == 8.0
        for entry, original in zip(table["scenes"], scenes, strict=True):
            assert entry["title"] == original.title and entry["seed"] == original.seed
            assert entry["template"] == "storyboard-txt2img" and entry["prompt"] == original.prompt
            (file,) = entry["files"]
            assert hashlib.sha256(archive.read(file["path"])).hexdigest() == file["sha256"]
            assert file["sha256"] == original.files[0].sha256
        rows = list(csv.reader(io.StringIO(archive.read(SHOT_LIST_NAME).decode())))
        assert rows[1][:4] == ["1", "Shot 1", "0.00", "2.00"] and rows[4][2] == "6.00"


def test_a_file_changed_since_it_was_stored_is_refused(tmp_path):
    file = still(tmp_path, "s.png", png_bytes((1, 2, 3)))
    (tmp_path / "s.png").write_bytes(png_bytes((9, 9, 9)))
    with pytest.raises(BuildError, match="has changed since it was stored"):
        build_zip(plan_of([scene(1, file)]), io.BytesIO(), created_at="now")


def test_the_zip_of_200_finals_is_built_with_flat_memory(tmp_path):
    body_size = 256 * 1024
    scenes = []
    for number in range(200):
        # One final far bigger than a block: read whole, it alone would break the bound below.
        size = 8 * 1024 * 1024 if number == 100 else body_size
        body = number.to_bytes(4, "big") * (size // 4)
        scenes.append(scene(number + 1, still(tmp_path, f"s{number}.png", body)))
    out = (tmp_path / "finals.zip").open("wb")
    tracemalloc.start()
    try:
        build_zip(plan_of(scenes), out, created_at="now")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        out.close()
    total = 199 * body_size + 8 * 1024 * 1024
    # One block in flight and the manifest, whatever the number and size of the files.
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for {total / 1e6:.0f} MB of finals"
    assert peak < total / 10
    with zipfile.ZipFile(tmp_path / "finals.zip") as archive:
        assert len(archive.namelist()) == 202


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_the_contact_sheet_shows_every_scene(tmp_path, fmt):
    scenes = [
        scene(i + 1, still(tmp_path, f"s{i}.png", png_bytes(c)), "2.5") for i, c in enumerate(COLOURS * 6)
    ]
    out = io.BytesIO()
    build_contact_sheet(plan_of(scenes), out, fmt=fmt)
    out.seek(0)
    if fmt == "png":
        image = Image.open(out)
        assert image.size == sheet_size("16:9", 24)
        # The first tile is the first scene's colour, the fifth (second row) the first colour again.
        assert close_to(image.getpixel((16 + 160, 56 + 90)), COLOURS[0])
        assert close_to(image.getpixel((16 + 336 + 160, 56 + 90)), COLOURS[1])
    else:
        body = out.getvalue()
        assert body.startswith(b"%PDF")
        assert body.count(b"/Type /Page\n") + body.count(b"/Type /Page ") >= 2 or b"/Count 2" in body


def test_the_shot_list_puts_each_scene_on_its_own_row(tmp_path):
    scenes = [scene(i + 1, still(tmp_path, f"s{i}.png", png_bytes(c)), "1.25") for i, c in enumerate(COLOURS)]
    text = io.StringIO()
    write_shot_list(plan_of(scenes), text)
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert [row["title"] for row in rows] == ["Shot 1", "Shot 2", "Shot 3", "Shot 4"]
    assert [row["start_s"] for row in rows] == ["0.00", "1.25", "2.50", "3.75"]
    assert rows[0]["seed"] == "1001" and rows[0]["take"] == "take-1"
