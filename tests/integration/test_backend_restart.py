"""A backend restart costs no job: a preview server killed with kill -9 in the middle of a batch
pinned to it, and started again 10 s later with an empty queue and history. Every job succeeds,
once, with a retry budget of 0, and the backend is used again within 2 s of answering."""

import time

import httpx
import pytest
from django.utils import timezone

from generation.models import Attempt, Backend, JobEvent
from tests.stack import free_port, start_preview_server

pytestmark = pytest.mark.integration

SCENES = 12
TERMINAL = ("succeeded", "failed", "cancelled", "lost")


def test_a_backend_killed_for_10_s_mid_batch_costs_no_job(studio, tmp_path):
    port = free_port()
    log = (tmp_path / "preview.log").open("ab")
    preview = start_preview_server(port, tmp_path / "preview", log, render_seconds=1)
    try:
        backend = Backend.objects.create(name="Restartable", base_url=f"http://127.0.0.1:{port}", capacity=1)
        deadline = time.monotonic() + 20
        while not Backend.objects.filter(pk=backend.pk, socket_connected=True).exists():
            assert time.monotonic() < deadline, "the render watcher never connected"
            time.sleep(0.05)
        headers = {"Authorization": f"Token {studio['token']}"}
        with httpx.Client(base_url=studio["stack"].web_url, headers=headers, timeout=30) as api:
            brief = api.post(
                "/api/v1/briefs/",
                json={
                    "title": "Restart",
                    "scenes": [{"title": f"S{n}", "prompt": f"frame {n}"} for n in range(SCENES)],
                },
            ).json()
            batch = api.post(
                f"/api/v1/briefs/{brief['uuid']}/renders/",
                json={"backend": "Restartable", "policy_overrides": {"retry_budget": 0}},
            )
            assert batch.status_code == 202, batch.text
            uuids = [job["uuid"] for job in batch.json()["jobs"]]

            def states() -> list[str]:
                return [api.get(f"/api/v1/jobs/{uuid}/").json()["state"] for uuid in uuids]

            deadline = time.monotonic() + 60
            while (now := states()).count("succeeded") < 2:
                assert time.monotonic() < deadline, now
                time.sleep(0.1)
            assert "running" in now and now.count("succeeded") < SCENES, now  # the kill lands mid-batch
            preview.kill()
            preview.wait()
            time.sleep(10)
            preview = start_preview_server(port, tmp_path / "preview", log, render_seconds=1)
            answering_since = timezone.now()

            deadline = time.monotonic() + 120
            now = states()
            while any(state not in TERMINAL for state in now):
                assert time.monotonic() < deadline, now
                time.sleep(0.3)
                now = states()
        assert now == ["succeeded"] * SCENES
        ends = [JobEvent.objects.filter(job__uuid=u, to_state__in=TERMINAL).count() for u in uuids]
        assert ends == [1] * SCENES
        first_after = Attempt.objects.filter(backend=backend, created_at__gte=answering_since).order_by(
            "created_at"
        )
        assert first_after.exists()
        back_in_use = (first_after.first().created_at - answering_since).total_seconds()
        print(f"backend used again {back_in_use:.2f} s after it answered")
        assert back_in_use < 2.0
        # The kill cost attempts (lost or unreachable), but no job its budget.
        assert Attempt.objects.filter(job__uuid__in=uuids, error_code__in=["lost", "unavailable"]).exists()
    finally:
        preview.kill()
        preview.wait()
        log.close()
