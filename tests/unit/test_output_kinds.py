"""Every kind of output ComfyUI saves is checked by what its bytes are: stills and animations
with Pillow, MP4/WEBM video and FLAC/MP3/Opus audio decoded with PyAV. A whole file gives the
facts a card shows; a cut-off one fails as output_invalid, saying what is missing and that it
may still be being written (`incomplete`). The files are written by the preview server's own
encoders, the way ComfyUI's save nodes write them."""

from __future__ import annotations

import pathlib

import pytest
from PIL import Image

from generation.artifact_check import OutputFacts, inspect_output
from generation.bundled_backends.preview_server import media
from generation.bundled_backends.preview_server.values import Audio
from generation.providers.base import ErrorCode, ProviderError, output_kind
from generation.providers.comfyui import parse_outputs

MAX_PIXELS = 1 << 24


def _frames(count: int, size: tuple[int, int] = (64, 48)) -> list[Image.Image]:
    return [Image.new("RGB", size, (index * 40 % 256, 90, 200)) for index in range(count)]


def _video(tmp_path: pathlib.Path, extension: str, count: int = 6, **options: object) -> pathlib.Path:
    path = tmp_path / f"clip.{extension}"
    codec = "h264" if extension == "mp4" else "libvpx-vp9"
    crf = None if extension == "mp4" else 32.0
    media.write_video(
        path, _frames(count), 8.0, container_format=extension, codec=codec, metadata={}, crf=crf, **options
    )  # type: ignore[arg-type]
    return path


def _audio(tmp_path: pathlib.Path, audio_format: str, seconds: float = 1.0) -> pathlib.Path:
    path = tmp_path / f"sound.{audio_format}"
    quality = {"flac": "128k", "mp3": "V0", "opus": "128k"}[audio_format]
    path.write_bytes(media.encode_audio(Audio(44100, 2, round(44100 * seconds)), audio_format, quality, {}))
    return path


def _animation(tmp_path: pathlib.Path, image_format: str, count: int = 4) -> pathlib.Path:
    path = tmp_path / f"animation.{image_format.lower()}"
    first, *rest = _frames(count)
    first.save(path, format=image_format, save_all=True, append_images=rest, duration=125)
    return path


def _still(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "still.png"
    _frames(1)[0].save(path, format="PNG")
    return path


def _cut(path: pathlib.Path, share: float) -> pathlib.Path:
    data = path.read_bytes()
    cut = path.with_name(f"cut-{path.name}")
    cut.write_bytes(data[: int(len(data) * share)])
    return cut


def _check(path: pathlib.Path, *, hint: str = "image", frames: int | None = None) -> OutputFacts:
    return inspect_output(path, max_pixels=MAX_PIXELS, label=repr(path.name), frames=frames, hint=hint)


def _refused(path: pathlib.Path, *, hint: str = "image", frames: int | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as refused:
        _check(path, hint=hint, frames=frames)
    assert refused.value.code == ErrorCode.OUTPUT_INVALID
    assert repr(path.name) in refused.value.message  # names the output
    assert str(path.parent) not in refused.value.message  # never a local path
    return refused.value


# -- whole files ---------------------------------------------------------------------------
def test_a_still_is_an_image(tmp_path: pathlib.Path) -> None:
    facts = _check(_still(tmp_path))
    assert (facts.kind, facts.content_type, facts.extension) == ("image", "image/png", "png")
    assert (facts.width, facts.height, facts.frames, facts.duration_s) == (64, 48, 1, None)


@pytest.mark.parametrize(
    ("image_format", "content_type"), [("WEBP", "image/webp"), ("PNG", "image/png"), ("GIF", "image/gif")]
)
def test_an_animated_image_is_counted_by_its_frames(
    tmp_path: pathlib.Path, image_format: str, content_type: str
) -> None:
    facts = _check(_animation(tmp_path, image_format, count=4), hint="animated")
    assert (facts.kind, facts.content_type) == ("animated", content_type)
    assert (facts.width, facts.height, facts.frames) == (64, 48, 4)
    assert facts.duration_s == pytest.approx(0.5, abs=0.03)  # GIF keeps hundredths of a second


def test_an_h264_mp4_is_a_video_with_its_frames_and_length(tmp_path: pathlib.Path) -> None:
    facts = _check(_video(tmp_path, "mp4", count=6, audio=Audio(44100, 2, 44100)), hint="video")
    assert (facts.kind, facts.format, facts.content_type, facts.extension) == (
        "video",
        "MP4",
        "video/mp4",
        "mp4",
    )
    assert (facts.width, facts.height, facts.frames) == (64, 48, 6)
    assert facts.duration_s == pytest.approx(0.75)


def test_a_vp9_webm_is_a_video(tmp_path: pathlib.Path) -> None:
    facts = _check(_video(tmp_path, "webm", count=8), hint="video")
    assert (facts.kind, facts.format, facts.content_type, facts.extension) == (
        "video",
        "WEBM",
        "video/webm",
        "webm",
    )
    assert (facts.width, facts.height, facts.frames, facts.duration_s) == (64, 48, 8, 1.0)


@pytest.mark.parametrize(
    ("audio_format", "content_type"),
    [("flac", "audio/flac"), ("mp3", "audio/mpeg"), ("opus", "audio/ogg")],
)
def test_audio_is_decoded_to_its_end(tmp_path: pathlib.Path, audio_format: str, content_type: str) -> None:
    facts = _check(_audio(tmp_path, audio_format, seconds=1.0), hint="audio")
    assert (facts.kind, facts.content_type, facts.extension) == ("audio", content_type, audio_format)
    assert (facts.width, facts.height, facts.frames) == (None, None, None)
    assert facts.duration_s == pytest.approx(1.0, abs=0.03)


def test_the_bytes_decide_not_the_reported_kind(tmp_path: pathlib.Path) -> None:
    # ComfyUI reports animations and clips alike; a server may name a file any way.
    assert _check(_video(tmp_path, "webm"), hint="image").kind == "video"
    assert _check(_still(tmp_path), hint="video").kind == "image"
    assert _check(_audio(tmp_path, "flac"), hint="image").kind == "audio"


# -- cut-off and wrong files ---------------------------------------------------------------
@pytest.mark.parametrize("share", [0.3, 0.6, 0.95])
def test_a_truncated_mp4_says_where_it_stops_and_that_its_index_is_missing(
    tmp_path: pathlib.Path, share: float
) -> None:
    error = _refused(_cut(_video(tmp_path, "mp4"), share), hint="video")
    assert error.detail["incomplete"] is True
    assert "is incomplete: its MP4 stops inside its" in error.message
    assert "its index (moov), written last, is" in error.message


@pytest.mark.parametrize("share", [0.5, 0.9])
def test_a_truncated_webm_is_incomplete(tmp_path: pathlib.Path, share: float) -> None:
    error = _refused(_cut(_video(tmp_path, "webm", count=12), share), hint="video")
    assert error.detail["incomplete"] is True
    assert any(
        why in error.message
        for why in ("damaged or incomplete", "stops after", "has no video frame that decodes")
    )


@pytest.mark.parametrize("audio_format", ["flac", "mp3", "opus"])
@pytest.mark.parametrize("share", [0.5, 0.9])
def test_truncated_audio_is_incomplete(tmp_path: pathlib.Path, audio_format: str, share: float) -> None:
    error = _refused(_cut(_audio(tmp_path, audio_format, seconds=2.0), share), hint="audio")
    assert error.detail["incomplete"] is True


def test_a_truncated_mp3_says_how_much_of_it_plays(tmp_path: pathlib.Path) -> None:
    error = _refused(_cut(_audio(tmp_path, "mp3", seconds=2.0), 0.5), hint="audio")
    assert "stops after" in error.message and "of the 2.000 s its MP3 header declares" in error.message


@pytest.mark.parametrize("image_format", ["WEBP", "PNG", "GIF"])
def test_a_truncated_animation_is_incomplete(tmp_path: pathlib.Path, image_format: str) -> None:
    error = _refused(_cut(_animation(tmp_path, image_format, count=6), 0.7), hint="animated")
    assert error.detail["incomplete"] is True


def test_a_truncated_still_is_incomplete(tmp_path: pathlib.Path) -> None:
    assert _refused(_cut(_still(tmp_path), 0.8)).detail["incomplete"] is True


def test_a_clip_with_fewer_frames_than_the_workflow_asks_for_is_incomplete(tmp_path: pathlib.Path) -> None:
    error = _refused(_video(tmp_path, "mp4", count=4), hint="video", frames=8)
    assert "has 4 of the 8 frames the workflow asks for" in error.message
    assert error.detail["incomplete"] is True
    # A still saved beside the clip is not held to the clip's frame count.
    assert _check(_still(tmp_path), hint="image", frames=8).kind == "image"


def test_bytes_that_are_no_media_at_all_are_refused_for_good(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a picture, a clip or a sound\n" * 20)
    error = _refused(path)
    assert "is not a usable image, video or audio file" in error.message
    assert "incomplete" not in error.detail


def test_a_video_over_the_pixel_limit_is_refused(tmp_path: pathlib.Path) -> None:
    path = _video(tmp_path, "webm")
    with pytest.raises(ProviderError, match=r"is 64x48, above the limit of 1000 pixels"):
        inspect_output(path, max_pixels=1000, label="'clip.webm'", hint="video")


# -- what a listing says ------------------------------------------------------------------
def test_comfyui_listings_are_told_apart_by_extension() -> None:
    ui = {
        "9": {"images": [{"filename": "s_00001_.png", "subfolder": "", "type": "output"}]},
        "10": {
            "images": [{"filename": "s_00002_.webp", "subfolder": "", "type": "output"}],
            "animated": [True],
        },
        "11": {
            "images": [{"filename": "s_00003_.png", "subfolder": "", "type": "output"}],
            "animated": [True],
        },
        "12": {
            "images": [{"filename": "s_00004_.mp4", "subfolder": "", "type": "output"}],
            "animated": [True],
        },
        "13": {
            "images": [{"filename": "s_00005_.webm", "subfolder": "", "type": "output"}],
            "animated": [True],
        },
        "15": {"audio": [{"filename": "s_00006_.flac", "subfolder": "audio", "type": "output"}]},
        "16": {"audio": [{"filename": "ComfyUI_temp_abcde_00001_.flac", "subfolder": "", "type": "temp"}]},
        # VideoHelperSuite's Video Combine lists its file under `gifs`.
        "17": {
            "gifs": [
                {"filename": "v_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}
            ]
        },
        "18": {
            "gifs": [{"filename": "v_00002.gif", "subfolder": "", "type": "output", "format": "image/gif"}]
        },
        "19": {"text": ["a caption"]},
    }
    kinds = {(o.node_id, o.filename): o.kind for o in parse_outputs(ui)}
    assert kinds == {
        ("9", "s_00001_.png"): "image",
        ("10", "s_00002_.webp"): "animated",
        ("11", "s_00003_.png"): "animated",
        ("12", "s_00004_.mp4"): "video",
        ("13", "s_00005_.webm"): "video",
        ("15", "s_00006_.flac"): "audio",
        ("16", "ComfyUI_temp_abcde_00001_.flac"): "audio",
        ("17", "v_00001.mp4"): "video",
        ("18", "v_00002.gif"): "animated",
    }


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("a.png", "image"),
        ("a.webp", "animated"),
        ("a.gif", "animated"),
        ("a.mp4", "video"),
        ("a.flac", "audio"),
    ],
)
def test_a_runpod_file_name_gives_its_kind(filename: str, kind: str) -> None:
    assert output_kind("images", filename, animated=filename.endswith((".webp", ".gif"))) == kind
