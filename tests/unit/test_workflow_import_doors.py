"""Importing a ComfyUI "Save (API)" export through the admin and the command."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from generation.models import WorkflowTemplate

DATA = Path(__file__).resolve().parent.parent / "data" / "comfyui"
EXPORT = (DATA / "default_workflow_api.json").read_text()


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", password="a-long-password-4")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_staff_import_an_export_and_its_bindings_are_detected(admin_client):
    upload = SimpleUploadedFile("txt2img.json", EXPORT.encode(), content_type="application/json")
    response = admin_client.post(
        "/admin/generation/workflowtemplate/import/", {"name": "Default txt2img", "workflow_file": upload}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    template = WorkflowTemplate.objects.get(slug="default-txt2img")
    assert template.bindings["prompt"] == [{"node": "6", "input": "text"}]
    assert template.bindings["negative_prompt"] == [{"node": "7", "input": "text"}]
    assert template.bindings["filename_prefix"] == [{"node": "9", "input": "filename_prefix"}]
    assert template.version == 1


@pytest.mark.django_db
def test_importing_the_same_slug_again_makes_a_new_version(admin_client):
    for _ in range(2):
        admin_client.post(
            "/admin/generation/workflowtemplate/import/", {"name": "Txt", "workflow_json": EXPORT}
        )
    assert WorkflowTemplate.objects.get(slug="txt").version == 2


@pytest.mark.django_db
def test_a_ui_format_export_is_refused_with_a_hint_and_nothing_saved(admin_client):
    ui = (DATA / "default_workflow_ui_frontend_1.27.10.json").read_text()
    response = admin_client.post(
        "/admin/generation/workflowtemplate/import/", {"name": "UI", "workflow_json": ui}
    )
    assert response.status_code == 400
    assert "Save (API)" in response.content.decode()
    assert not WorkflowTemplate.objects.exists()


@pytest.mark.django_db
def test_broken_json_is_refused_with_line_and_column(admin_client):
    response = admin_client.post(
        "/admin/generation/workflowtemplate/import/", {"name": "Bad", "workflow_json": '{"3": {'}
    )
    assert response.status_code == 400
    assert "not valid JSON (line 1, column 8" in response.content.decode()


@pytest.mark.django_db
def test_a_writer_cannot_import(client, writer):
    client.force_login(writer)
    response = client.post(
        "/admin/generation/workflowtemplate/import/", {"name": "X", "workflow_json": EXPORT}
    )
    assert response.status_code == 302  # sent to the admin login
    assert not WorkflowTemplate.objects.exists()


@pytest.mark.django_db
def test_the_command_imports_with_given_bindings(tmp_path):
    export = tmp_path / "flow.json"
    export.write_text(EXPORT)
    bindings = tmp_path / "bindings.json"
    bindings.write_text(
        json.dumps(
            {
                "prompt": {"node": "6", "input": "text"},
                "filename_prefix": {"node": "9", "input": "filename_prefix"},
            }
        )
    )
    out = StringIO()
    call_command("import_workflow", str(export), "--name", "Flow", "--bindings", str(bindings), stdout=out)
    assert "imported flow v1" in out.getvalue()
    assert sorted(WorkflowTemplate.objects.get(slug="flow").bindings) == ["filename_prefix", "prompt"]


@pytest.mark.django_db
def test_the_command_reports_a_binding_to_a_missing_node(tmp_path):
    export = tmp_path / "flow.json"
    export.write_text(EXPORT)
    bindings = tmp_path / "bindings.json"
    bindings.write_text(
        json.dumps(
            {
                "prompt": {"node": "60", "input": "text"},
                "filename_prefix": {"node": "9", "input": "filename_prefix"},
            }
        )
    )
    with pytest.raises(CommandError, match="binding 'prompt' points at node '60'"):
        call_command("import_workflow", str(export), "--name", "Flow", "--bindings", str(bindings))
