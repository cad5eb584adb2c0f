"""With every GPU probe forced to fail, a rendered brief's fallback notes say which probe failed
and why, and the run still validates. Its own module: the stack's processes carry the forced
settings, and two stacks on one database would both take the queued jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings

from generation.models import Attempt
from tests.conftest import studio_on
from tests.integration.test_run_telemetry import _check_run
from tests.stack import database_url_of, settle_runs, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def probes_failing_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    var_dir = Path(tmp_path_factory.mktemp("probes-fail"))
    forced = {
        # /system_stats of the preview server reports a CPU, and this nvidia-smi does not exist.
        "TELEMETRY_GPU_PROBES": "system_stats,nvidia_smi",
        "TELEMETRY_NVIDIA_SMI": str(var_dir / "no-such-nvidia-smi"),
    }
    with start_stack(
        database_url=database_url_of(django_settings.DATABASES["default"]),
        var_dir=var_dir,
        media_root=Path(django_settings.MEDIA_ROOT),
        extra_env=forced,
    ) as running:
        yield running


@pytest.fixture
def studio_probes_failing(probes_failing_stack, transactional_db):
    yield studio_on(probes_failing_stack)
    settle_runs()


def test_with_every_probe_failing_the_notes_say_which_and_the_run_still_validates(studio_probes_failing):
    _, metadata = _check_run(studio_probes_failing)
    for scene in metadata["scenes"]:
        record = scene["attempts"][0]["telemetry"]
        notes = record["fallback_notes"]
        for moment in ("before", "after"):
            assert record[f"gpu_probe_{moment}"] is None
            assert any(n.startswith(f"GPU {moment}: system_stats failed") for n in notes), notes
            assert any(
                n.startswith(f"GPU {moment}: nvidia_smi failed") and "no-such-nvidia-smi" in n for n in notes
            ), notes
        assert record["vram_before_mb"] is None and record["vram_delta_mb"] is None
        for note in notes:
            assert any(note in warning for warning in record["warnings"])
    assert Attempt.objects.filter(gpu_before__isnull=False).count() == 2
