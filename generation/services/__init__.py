"""State changes of the render studio's engine, one module per subject.

- `templates`: workflow templates loaded, imported and versioned;
- `backends`: registration, health, the live socket, drain, node catalogues;
- `jobs`: submitting renders and moving jobs through their states;
- `deliverables`: zips, contact sheets, animatics and shot lists built from a brief's finals.

Callers use `generation.services.<name>`: this package names every service in one place.
"""

from generation.services.backends import (
    DEGRADED_LATENCY_S,
    HEALTH_MESSAGE_CHARS,
    backend_check_health,
    backend_object_info,
    backend_record_health,
    backend_register_local_runpod,
    backend_register_preview,
    backend_set_api_key,
    backend_set_draining,
    backend_socket_changed,
    check_backends,
    error_with_hint,
    workflow_check_on_backend,
)
from generation.services.deliverables import (
    MISSING_CHOICES,
    DeliverableBusy,
    DeliverableRefused,
    deliverable_build,
    deliverable_fail,
    deliverable_plan,
    deliverable_request,
    deliverables_left_behind,
)
from generation.services.jobs import (
    MAX_SEED,
    OPEN_SCENES_CHOICES,
    RenderAlreadyOpen,
    RenderRefused,
    RenderScenesOpen,
    default_template,
    dispatch_soon,
    job_progress,
    job_transition,
    render_brief_submit,
    render_job_cancel,
    render_job_submit,
    scene_delete_with_renders,
    scene_render_params,
    scene_template,
)
from generation.services.takes import TakeRefused, take_render_again, take_restore
from generation.services.templates import (
    TEMPLATE_LABEL_FIELDS,
    workflow_template_import,
    workflow_template_update,
    workflow_template_version_of,
    workflow_templates_sync,
)

__all__ = [
    "DEGRADED_LATENCY_S",
    "HEALTH_MESSAGE_CHARS",
    "MAX_SEED",
    "MISSING_CHOICES",
    "OPEN_SCENES_CHOICES",
    "TEMPLATE_LABEL_FIELDS",
    "DeliverableBusy",
    "DeliverableRefused",
    "RenderAlreadyOpen",
    "RenderRefused",
    "RenderScenesOpen",
    "TakeRefused",
    "backend_check_health",
    "backend_object_info",
    "backend_record_health",
    "backend_register_local_runpod",
    "backend_register_preview",
    "backend_set_api_key",
    "backend_set_draining",
    "backend_socket_changed",
    "check_backends",
    "default_template",
    "deliverable_build",
    "deliverable_fail",
    "deliverable_plan",
    "deliverable_request",
    "deliverables_left_behind",
    "dispatch_soon",
    "error_with_hint",
    "job_progress",
    "job_transition",
    "render_brief_submit",
    "render_job_cancel",
    "render_job_submit",
    "scene_delete_with_renders",
    "scene_render_params",
    "scene_template",
    "take_render_again",
    "take_restore",
    "workflow_check_on_backend",
    "workflow_template_import",
    "workflow_template_update",
    "workflow_template_version_of",
    "workflow_templates_sync",
]
