"""Workflow templates in the admin: the graph and bindings change only as a new imported version."""

import json

import pytest

from generation import services
from generation.models import WorkflowTemplate


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", password="a-long-password-7")
    client.force_login(user)
    return client


def change_url(template: WorkflowTemplate) -> str:
    return f"/admin/generation/workflowtemplate/{template.pk}/change/"


def new_version_url(template: WorkflowTemplate) -> str:
    return f"/admin/generation/workflowtemplate/import/?template={template.uuid}"


def new_version_of(template: WorkflowTemplate, *, graph: dict, bindings: dict) -> dict[str, str]:
    return {
        "name": template.name,
        "slug": template.slug,
        "description": template.description,
        "workflow_json": json.dumps(graph),
        "bindings_json": json.dumps(bindings),
    }


@pytest.mark.django_db
def test_a_crafted_post_to_the_change_page_changes_neither_graph_bindings_version_nor_hash(
    admin_client, template
):
    before = WorkflowTemplate.objects.get(pk=template.pk)
    response = admin_client.post(
        change_url(template),
        {
            "name": "Storyboard, renamed",
            "description": before.description,
            "enabled": "on",
            "slug": "elsewhere",
            "version": "99",
            "content_sha256": "0" * 64,
            "graph": json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}}),
            "bindings": json.dumps({"filename_prefix": [{"node": "1", "input": "filename_prefix"}]}),
        },
    )
    assert response.status_code == 302
    after = WorkflowTemplate.objects.get(pk=template.pk)
    assert after.name == "Storyboard, renamed"
    assert (after.slug, after.version, after.content_sha256) == (
        before.slug,
        before.version,
        before.content_sha256,
    )
    assert (after.graph, after.bindings) == (before.graph, before.bindings)


@pytest.mark.django_db
def test_the_change_page_shows_the_graph_read_only_and_offers_a_new_version(admin_client, template):
    page = admin_client.get(change_url(template))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="graph"' not in html
    assert 'name="bindings"' not in html
    assert "CheckpointLoaderSimple" in html
    assert f'href="{new_version_url(template)}"' in html


@pytest.mark.django_db
def test_the_add_page_sends_staff_to_the_import_and_saves_nothing(admin_client, template):
    response = admin_client.post(
        "/admin/generation/workflowtemplate/add/",
        {"name": "Raw", "slug": "raw", "version": "1", "graph": "{}", "bindings": "{}", "content_sha256": ""},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/generation/workflowtemplate/import/"
    assert not WorkflowTemplate.objects.filter(slug="raw").exists()


@pytest.mark.django_db
def test_the_new_version_page_starts_from_the_templates_graph_and_bindings(admin_client, template):
    page = admin_client.get(new_version_url(template))
    assert page.status_code == 200
    form = page.context["form"]
    assert json.loads(form["workflow_json"].value()) == template.graph
    assert json.loads(form["bindings_json"].value()) == template.bindings
    assert form["slug"].value() == template.slug
    html = page.content.decode()
    assert f"becomes version {template.version + 1}" in html
    assert "workflows/storyboard-txt2img.json is loaded again by" in html


@pytest.mark.django_db
def test_a_changed_graph_becomes_a_new_version_with_a_new_hash_and_renders_record_it(
    admin_client, template, brief, backend, staff_user
):
    earlier = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    graph = json.loads(json.dumps(template.graph))
    graph["3"]["inputs"]["cfg"] = 4.5

    response = admin_client.post(
        new_version_url(template), new_version_of(template, graph=graph, bindings=template.bindings)
    )

    assert response.status_code == 302
    after = WorkflowTemplate.objects.get(pk=template.pk)
    assert after.version == template.version + 1
    assert after.content_sha256 != template.content_sha256
    assert after.graph["3"]["inputs"]["cfg"] == 4.5
    earlier.refresh_from_db()
    assert (earlier.template_version, earlier.template_sha256) == (template.version, template.content_sha256)
    later = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    assert (later.template_version, later.template_sha256) == (after.version, after.content_sha256)


@pytest.mark.django_db
def test_a_binding_to_a_missing_node_is_refused_on_the_page_and_nothing_changes(admin_client, template):
    bindings = {**template.bindings, "seed": [{"node": "99", "input": "seed"}]}

    response = admin_client.post(
        new_version_url(template), new_version_of(template, graph=template.graph, bindings=bindings)
    )

    assert response.status_code == 400
    assert "binding &#x27;seed&#x27; points at node &#x27;99&#x27;" in response.content.decode()
    after = WorkflowTemplate.objects.get(pk=template.pk)
    assert (after.version, after.content_sha256, after.bindings) == (
        template.version,
        template.content_sha256,
        template.bindings,
    )


@pytest.mark.django_db
def test_a_graph_with_a_node_without_class_type_is_refused_on_the_page_and_nothing_changes(
    admin_client, template
):
    graph = {**template.graph, "10": {"inputs": {}}}

    response = admin_client.post(
        new_version_url(template), new_version_of(template, graph=graph, bindings=template.bindings)
    )

    assert response.status_code == 400
    assert "node &#x27;10&#x27; has no class_type" in response.content.decode()
    after = WorkflowTemplate.objects.get(pk=template.pk)
    assert (after.version, after.content_sha256, after.graph) == (
        template.version,
        template.content_sha256,
        template.graph,
    )
