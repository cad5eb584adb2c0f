"""Every kind of output a render saves, through the real stack: a workflow with SaveImage,
SaveAnimatedWEBP, SaveVideo (MP4), SaveWEBM and SaveAudio renders on the preview server and
each file is stored, checked by what it is and listed for its card. A truncated MP4 fails
alone, with its reason kept; when no output is usable, the render fails as output_invalid."""

import pathlib
import re
import sys
import time

import httpx
import pytest

from briefs.services import brief_create
from generation import attempts, services
from generation.artifact_check import inspect_output
from generation.dispatch import dispatch_round
from generation.events import job_payload
from generation.models import Attempt, Backend, JobEvent, RenderJob, WorkflowTemplate
from tests.integration.test_render_path import _api, _wait_for_end
from tests.stack import free_port, running

pytestmark = pytest.mark.integration

TEMPLATE = "storyboard-all-outputs"
# What each save node of the bundled workflow keeps: (kind, content type).
SAVED = {
    "9": ("image", "image/png"),
    "10": ("animated", "image/webp"),
    "12": ("video", "video/mp4"),
    "13": ("video", "video/webm"),
    "15": ("audio", "audio/flac"),
}
CLIP_FRAMES = 4  # the still and three noisier copies, batched
CLIP_FPS = 6


def test_every_output_kind_is_stored_checked_and_listed_for_its_card(studio, tmp_path):
    with _api(studio) as api:
        brief = api.post(
            "/api/v1/briefs/",
            json={"title": "Lanterns", "scenes": [{"title": "Harbour", "prompt": "lanterns on the harbour"}]},
        ).json()
        submitted = api.post(
            f"/api/v1/scenes/{brief['scenes'][0]['uuid']}/renders/", json={"template": TEMPLATE}
        )
        assert submitted.status_code == 202, submitted.text
        job = _wait_for_end(api, submitted.json()["uuid"], studio["stack"], timeout=90)
        assert job["state"] == "succeeded", job
        assert job["template"] == TEMPLATE
        listed = job["artifacts"]
        assert sorted((a["kind"], a["content_type"]) for a in listed) == sorted(SAVED.values())
        for artifact in listed:
            download = api.get(artifact["download_url"])
            assert download.status_code == 200
            assert download.headers["content-type"] == artifact["content_type"]
            # What was stored is whole and is what it says it is.
            path = tmp_path / artifact["uuid"]
            path.write_bytes(download.content)
            facts = inspect_output(path, max_pixels=1 << 24, label=artifact["uuid"], hint=artifact["kind"])
            assert (facts.kind, facts.content_type) == (artifact["kind"], artifact["content_type"])
            assert artifact["size_bytes"] == len(download.content)

    stored = RenderJob.objects.get(uuid=job["uuid"])
    by_node = {a.node_id: a for a in stored.artifacts.all()}
    assert {node: (a.kind, a.content_type) for node, a in by_node.items()} == SAVED
    assert (by_node["9"].width, by_node["9"].height, by_node["9"].duration_s) == (512, 288, None)
    for node in ("10", "12", "13"):
        clip = by_node[node]
        assert (clip.width, clip.height, clip.frame_count) == (512, 288, CLIP_FRAMES)
        assert clip.duration_s == pytest.approx(CLIP_FRAMES / CLIP_FPS, abs=0.02)
    assert by_node["15"].duration_s == pytest.approx(1.0, abs=0.03)
    assert (by_node["15"].width, by_node["15"].frame_count) == (None, None)

    # What the card reads: every output with its kind, beside the first one's old keys.
    payload = job_payload(stored)
    assert payload["artifact"] == payload["artifacts"][0]["uuid"]
    assert payload["refused_outputs"] == []
    cards = {a["uuid"]: a for a in payload["artifacts"]}
    for artifact in stored.artifacts.all():
        card = cards[str(artifact.uuid)]
        assert card["url"] == f"/artifacts/{artifact.uuid}/"
        assert (card["kind"], card["content_type"], card["width"], card["height"], card["duration_s"]) == (
            artifact.kind,
            artifact.content_type,
            artifact.width,
            artifact.height,
            artifact.duration_s,
        )
    message = JobEvent.objects.filter(job=stored, to_state="succeeded").get().message
    assert message == "5 output(s) stored"


# -- a preview server whose files the test can damage ------------------------------------
@pytest.fixture(scope="module")
def preview(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("every-kind")
    argv = [sys.executable, "manage.py", "preview_server", "--port", str(port), "--render-seconds", "0.05"]
    with running(
        "preview-every-kind", [*argv, "--data-dir", str(data)], env=None, log_dir=data / "logs", port=port
    ):
        yield f"http://127.0.0.1:{port}", data


def _rendered(preview, staff_user) -> tuple[Attempt, dict]:
    """A render of the bundled workflow that has finished on the server and is not fetched yet."""
    url, _data = preview
    services.workflow_templates_sync()
    Backend.objects.create(name="preview", base_url=url, capacity=1, queue_depth=1)
    brief = brief_create(
        user=staff_user,
        title="Damaged",
        template=WorkflowTemplate.objects.get(slug=TEMPLATE),
        scenes=[{"title": "S", "prompt": "a lighthouse in fog"}],
    )
    job = services.render_job_submit(
        scene=brief.scenes.get(), user=staff_user, policy_overrides={"post_execution_timeout_s": 0.5}
    )
    assert dispatch_round() == 1
    attempt = Attempt.objects.get(job=job)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        history = httpx.get(f"{url}/history/{attempt.remote_handle}").json()
        if history:
            entry = history[attempt.remote_handle]
            assert entry["status"]["status_str"] == "success", entry["status"]
            return attempt, entry["outputs"]
        time.sleep(0.1)
    raise AssertionError("the preview server never finished the render")


def _cut(preview, entry: dict, share: float = 0.6) -> str:
    path = pathlib.Path(preview[1]) / "output" / entry["subfolder"] / entry["filename"]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])
    return entry["filename"]


def test_a_truncated_mp4_fails_alone_with_a_clear_reason(preview, staff_user):
    attempt, outputs = _rendered(preview, staff_user)
    mp4 = _cut(preview, outputs["12"]["images"][0])

    attempts.attempt_check(attempt.pk)

    attempt.refresh_from_db()
    job = attempt.job
    job.refresh_from_db()
    assert (attempt.state, job.state) == ("succeeded", "succeeded")
    kept = {a.node_id: a.kind for a in job.artifacts.all()}
    assert kept == {"9": "image", "10": "animated", "13": "video", "15": "audio"}
    [refused] = attempt.error_detail["refused_outputs"]
    assert (refused["node_id"], refused["filename"], refused["kind"]) == ("12", mp4, "video")
    assert refused["reason"].startswith(f"output {mp4!r} of node 12 is incomplete: its MP4 stops inside its ")
    assert "its index (moov), written last, is missing" in refused["reason"]
    # Refused only once the post-execution wait for a file still being written was over.
    assert re.search(r" \(still so after the [0-9.]+ s post-execution wait\)$", refused["reason"])
    message = JobEvent.objects.filter(job=job, to_state="succeeded").get().message
    assert message == f"4 output(s) stored; 1 refused: {refused['reason']}"
    # The card hears of it too, without losing what was kept.
    payload = job_payload(job)
    assert len(payload["artifacts"]) == 4
    assert payload["refused_outputs"] == [{"node_id": "12", "filename": mp4, "reason": refused["reason"]}]


def test_a_render_whose_every_output_is_damaged_fails_as_output_invalid(preview, staff_user):
    attempt, outputs = _rendered(preview, staff_user)
    names = [
        _cut(preview, entries[0])
        for ui in outputs.values()
        for entries in ui.values()
        if isinstance(entries[0], dict)
    ]
    assert len(names) == len(SAVED)

    attempts.attempt_check(attempt.pk)

    attempt.refresh_from_db()
    job = attempt.job
    job.refresh_from_db()
    assert (attempt.state, job.state) == ("failed", "failed")
    assert job.error_code == attempt.error_code == "output_invalid"
    assert job.error_message.startswith("none of the 5 saved outputs is usable: ")
    for name in names:
        assert repr(name) in job.error_message
    assert [r["filename"] for r in attempt.error_detail["refused_outputs"]] == names
    assert not job.artifacts.exists()
    # Nothing saved before was lost.
    assert job.scene.prompt == "a lighthouse in fog"
