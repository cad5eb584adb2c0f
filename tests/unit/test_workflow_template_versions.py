"""Every version of a workflow template is kept: a job renders the graph it recorded even when a
newer one was imported while it waited, version numbers never repeat, and loading workflows/ at
start-up makes a new version only when a file changed (an imported version stays current)."""

import copy
import json
import shutil

import pytest

from generation import attempts, services
from generation.dispatch import _claim
from generation.models import Attempt, JobState, RenderJob, WorkflowTemplate, WorkflowTemplateVersion
from generation.providers.base import ErrorCode


def _import_with_cfg(template: WorkflowTemplate, cfg: float) -> WorkflowTemplate:
    graph = copy.deepcopy(template.graph)
    graph["3"]["inputs"]["cfg"] = cfg
    return services.workflow_template_import(
        name=template.name,
        slug=template.slug,
        api_json=json.dumps(graph),
        bindings_json=json.dumps(template.bindings),
    )


@pytest.mark.django_db
def test_a_job_queued_under_one_version_renders_that_version_after_a_newer_import(
    brief, template, backend, staff_user
):
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user, template=template)
    first_cfg = template.graph["3"]["inputs"]["cfg"]
    newer = _import_with_cfg(template, first_cfg + 1.5)
    assert newer.version == template.version + 1
    attempt = _claim(job, backend)
    bound = attempts._bound_workflow(RenderJob.objects.get(pk=job.pk), attempt)
    assert bound["3"]["inputs"]["cfg"] == first_cfg
    assert job.template_version == template.version

    later = services.render_job_submit(scene=brief.scenes.first(), user=staff_user, template=newer)
    assert later.template_version == newer.version
    assert attempts._bound_workflow(later, attempt)["3"]["inputs"]["cfg"] == first_cfg + 1.5


@pytest.mark.django_db
def test_a_job_whose_version_is_no_longer_kept_fails_with_a_clear_message(
    brief, template, backend, staff_user
):
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user, template=template)
    _import_with_cfg(template, 2.0)
    WorkflowTemplateVersion.objects.filter(template=template, version=job.template_version).delete()
    attempt = _claim(job, backend)
    attempts.attempt_submit(Attempt.objects.select_related("backend").get(pk=attempt.pk))
    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, ErrorCode.CONFIG_INVALID)
    assert (
        f"version {template.version} of the workflow {template.name} is no longer kept" in job.error_message
    )


@pytest.mark.django_db
def test_version_numbers_never_repeat_and_each_version_is_kept(template):
    versions = [_import_with_cfg(template, cfg).version for cfg in (2.0, 3.0, 4.0)]
    assert versions == [template.version + 1, template.version + 2, template.version + 3]
    kept = list(WorkflowTemplateVersion.objects.filter(template=template).values_list("version", flat=True))
    assert kept == [template.version + 3, template.version + 2, template.version + 1, template.version]


@pytest.mark.django_db
def test_loading_unchanged_files_keeps_an_imported_version_current(template):
    imported = _import_with_cfg(template, 2.5)
    _, errors = services.workflow_templates_sync()
    assert not errors
    current = WorkflowTemplate.objects.get(pk=template.pk)
    assert (current.version, current.content_sha256) == (imported.version, imported.content_sha256)
    assert current.graph["3"]["inputs"]["cfg"] == 2.5


@pytest.mark.django_db
def test_a_changed_file_becomes_the_next_version(template, tmp_path, settings):
    _import_with_cfg(template, 2.5)
    workflows = tmp_path / "workflows"
    shutil.copytree(settings.WORKFLOWS_DIR, workflows)
    document = json.loads((workflows / "storyboard-txt2img.json").read_text())
    document["workflow"]["3"]["inputs"]["cfg"] = 6.25
    (workflows / "storyboard-txt2img.json").write_text(json.dumps(document))
    services.workflow_templates_sync(directory=workflows)
    current = WorkflowTemplate.objects.get(pk=template.pk)
    assert current.version == template.version + 2
    assert current.graph["3"]["inputs"]["cfg"] == 6.25
    assert current.versions.first().source_file == "workflows/storyboard-txt2img.json"
