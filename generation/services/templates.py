"""Workflow templates: loaded from workflows/, imported from ComfyUI exports, every version kept."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from generation.models import (
    RenderJob,
    WorkflowTemplate,
    WorkflowTemplateVersion,
)
from generation.providers.base import ErrorCode, ProviderError
from generation.workflow_binding import (
    TemplateError,
    TemplateSpec,
    load_template_file,
    spec_from_document,
)
from generation.workflow_import import template_document

log = logging.getLogger(__name__)

TEMPLATE_LABEL_FIELDS = ("name", "description", "enabled")
# The node catalogue recorded from a real ComfyUI that the bundled preview server answers with. An
# undeclared parameter is typed from it (ranges, choices), the same on every load: a template's
# parameters must not depend on which backend happened to answer. Read as data, never imported.
REFERENCE_OBJECT_INFO = (
    Path(__file__).resolve().parents[1] / "bundled_backends/preview_server/object_info.json"
)


@functools.cache
def reference_object_info() -> dict[str, Any]:
    try:
        return dict(json.loads(REFERENCE_OBJECT_INFO.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        log.warning(
            "no reference node catalogue at %s; parameters are typed from their values", REFERENCE_OBJECT_INFO
        )
        return {}


def workflow_templates_sync(*, directory: Path | None = None) -> tuple[list[WorkflowTemplate], list[str]]:
    """Load every workflows/*.json into the database; returns the templates and the errors per file."""
    directory = directory or settings.WORKFLOWS_DIR
    loaded: list[WorkflowTemplate] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.json")):
        try:
            spec = load_template_file(path, object_info=reference_object_info())
        except TemplateError as exc:
            errors.append(str(exc))
            continue
        loaded.append(_template_sync_file(spec, source_file=f"workflows/{path.name}"))
    return loaded, errors


def _template_sync_file(spec: TemplateSpec, *, source_file: str) -> WorkflowTemplate:
    """A file's template becomes a new version only when the file changed since it was last
    loaded: a version imported in the admin since then stays current across restarts."""
    with transaction.atomic():
        template = WorkflowTemplate.objects.select_for_update().filter(slug=spec.slug).first()
        if template is not None:
            last_from_file = template.versions.filter(source_file=source_file).order_by("-version").first()
            if last_from_file is not None and last_from_file.content_sha256 == spec.sha256:
                return template
        return _template_new_version(template, spec, source_file=source_file, version=spec.version)


def _template_new_version(
    template: WorkflowTemplate | None, spec: TemplateSpec, *, source_file: str, version: int = 1
) -> WorkflowTemplate:
    """Make `spec` the template's current version, keeping every earlier one; numbers never repeat."""
    if template is not None:
        latest = template.versions.aggregate(n=Max("version"))["n"] or template.version
        version = max(version, latest + 1)
    fields = {
        "name": spec.name,
        "description": spec.description,
        "version": version,
        "graph": spec.graph,
        "bindings": spec.bindings_as_json(),
        "parameters": spec.parameters_as_json(),
        "source_file": source_file,
        "content_sha256": spec.sha256,
    }
    if template is None:
        template = WorkflowTemplate.objects.create(slug=spec.slug, **fields)
    else:
        WorkflowTemplate.objects.filter(pk=template.pk).update(updated_at=timezone.now(), **fields)
        template.refresh_from_db()
    WorkflowTemplateVersion.objects.create(
        template=template,
        version=version,
        graph=spec.graph,
        bindings=spec.bindings_as_json(),
        parameters=spec.parameters_as_json(),
        content_sha256=spec.sha256,
        source_file=source_file,
    )
    return template


def workflow_template_import(
    *, name: str, api_json: str, slug: str = "", description: str = "", bindings_json: str = ""
) -> WorkflowTemplate:
    """A template from a workflow exported with ComfyUI's "Save (API)".

    Bindings are detected unless given. Importing under an existing slug makes
    a new version of that template; renders already made keep the version they used.
    """
    where = name.strip() or "the workflow"
    graph = _parse_json(api_json, what=f"{where}: the exported workflow")
    bindings = _parse_json(bindings_json, what=f"{where}: the bindings") if bindings_json.strip() else None
    slug = slug.strip() or slugify(name)[:100]
    document = template_document(
        name=name,
        description=description,
        graph=graph,
        bindings=bindings,
        parameters=_declarations_of(WorkflowTemplate.objects.filter(slug=slug).first()),
    )
    if not slug:
        raise TemplateError(f"{where}: choose a slug made of letters, digits and dashes")
    spec = spec_from_document(document, slug=slug, where=where, object_info=reference_object_info())
    with transaction.atomic():
        existing = WorkflowTemplate.objects.select_for_update().filter(slug=slug).first()
        template = _template_new_version(existing, spec, source_file="")
        if not template.enabled:
            WorkflowTemplate.objects.filter(pk=template.pk).update(enabled=True)
            template.enabled = True
    return template


def _declarations_of(template: WorkflowTemplate | None) -> dict[str, Any]:
    """A template's parameters as declarations for its next version: labels, help and ranges carry
    over; the default comes from the new graph, the value the workflow was saved with."""
    if template is None:
        return {}
    return {
        item["name"]: {k: v for k, v in item.items() if k not in ("name", "default") and v is not None}
        for item in template.parameters or []
    }


def workflow_template_version_of(job: RenderJob) -> WorkflowTemplateVersion:
    """The exact graph and bindings a job recorded, even if its template moved on since."""
    kept = WorkflowTemplateVersion.objects.filter(
        template_id=job.template_id, version=job.template_version
    ).first()
    if kept is not None:
        return kept
    template = job.template
    if template.version == job.template_version:
        # Rows older than kept versions: the template's own graph is the one recorded.
        return WorkflowTemplateVersion(
            template=template,
            version=template.version,
            graph=template.graph,
            bindings=template.bindings,
            parameters=template.parameters,
            content_sha256=template.content_sha256,
        )
    raise ProviderError(
        ErrorCode.CONFIG_INVALID,
        f"version {job.template_version} of the workflow {template.name} is no longer kept; render again",
    )


def workflow_template_update(*, template: WorkflowTemplate, **values: Any) -> WorkflowTemplate:
    """Rename or describe a template, or take it out of use for new renders.

    Its graph and bindings change only through `workflow_template_import`, as a new version with
    its own hash: a render records the version and hash it used, and an edit in place would make
    that record name a workflow other than the one rendered.
    """
    unknown = set(values) - set(TEMPLATE_LABEL_FIELDS)
    if unknown:
        raise TypeError(f"workflow_template_update() got unknown fields: {', '.join(sorted(unknown))}")
    if values:
        WorkflowTemplate.objects.filter(pk=template.pk).update(**values, updated_at=timezone.now())
        template.refresh_from_db()
    return template


def _parse_json(text: str, *, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
