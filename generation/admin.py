import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from generation import services
from generation.api_keys import api_key_state
from generation.forms import BackendForm, WorkflowImportForm
from generation.models import (
    Artifact,
    ArtifactKind,
    Attempt,
    Backend,
    BackendState,
    Deliverable,
    JobEvent,
    QueuePolicy,
    RenderBatch,
    RenderJob,
    WorkflowTemplate,
)
from generation.providers.base import ProviderError
from generation.selectors import backends_with_load
from generation.workflow_binding import TemplateError


@admin.register(Backend)
class BackendAdmin(admin.ModelAdmin):
    form = BackendForm
    list_display = [
        "name",
        "kind",
        "base_url",
        "state_shown",
        "in_flight",
        "capacity",
        "queue_depth",
        "socket_connected",
        "is_default",
        "health_checked_at",
    ]
    list_filter = ["kind", "enabled", "draining", "health_state"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "uuid",
        "health_state",
        "health_message",
        "health_checked_at",
        "vram_total_mb",
        "socket_connected",
        "object_info_fetched_at",
        "api_key_status",
        "created_at",
    ]
    actions = ["check_health", "refresh_object_info", "drain", "undrain"]
    list_display_links = ["name"]

    def save_model(self, request: HttpRequest, obj: Backend, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        services.backend_set_api_key(
            backend=obj,
            api_key=form.cleaned_data.get("api_key", ""),
            clear=form.cleaned_data.get("clear_api_key", False),
        )

    @admin.display(description="API key")
    def api_key_status(self, backend: Backend) -> str:
        return api_key_state(backend)

    @admin.display(description="State")
    def state_shown(self, backend: Backend) -> str:
        return BackendState(backend.state).label

    def get_queryset(self, request: HttpRequest) -> QuerySet[Backend]:
        return backends_with_load()  # one query for the list, not one per backend

    @admin.display(description="In flight", ordering="in_flight")
    def in_flight(self, backend: Backend) -> int:
        return backend.in_flight  # type: ignore[attr-defined]

    @admin.action(description="Drain: finish queued renders, take nothing new")
    def drain(self, request: HttpRequest, queryset: QuerySet[Backend]) -> None:
        for backend in queryset:
            services.backend_set_draining(backend=backend, draining=True)
        self.message_user(request, f"{queryset.count()} backend(s) draining.")

    @admin.action(description="Undrain: take new renders again")
    def undrain(self, request: HttpRequest, queryset: QuerySet[Backend]) -> None:
        for backend in queryset:
            services.backend_set_draining(backend=backend, draining=False)
        self.message_user(request, f"{queryset.count()} backend(s) taking renders.")

    @admin.action(description="Check health now")
    def check_health(self, request: HttpRequest, queryset: QuerySet[Backend]) -> None:
        for backend in queryset:
            result = services.backend_check_health(backend=backend)
            level = messages.SUCCESS if result.reachable else messages.ERROR
            self.message_user(request, f"{backend.name}: {result.message}", level)

    @admin.action(description="Refresh node catalogue (/object_info)")
    def refresh_object_info(self, request: HttpRequest, queryset: QuerySet[Backend]) -> None:
        for backend in queryset:
            try:
                info = services.backend_object_info(backend=backend, max_age=0)
            except ProviderError as exc:
                self.message_user(request, f"{backend.name}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{backend.name}: {len(info)} node types", messages.SUCCESS)


@admin.register(QueuePolicy)
class QueuePolicyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "max_wait_s",
        "poll_interval_s",
        "max_poll_attempts",
        "post_execution_timeout_s",
        "retry_budget",
        "is_default",
    ]
    search_fields = ["name"]


@admin.register(WorkflowTemplate)
class WorkflowTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "version", "enabled", "source_file", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "slug"]
    # A render records the template's version and hash; the graph and bindings change only by
    # importing a new version (services.workflow_template_import), never in place.
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled"]}),
        (
            "Workflow",
            {
                "description": "What renders record. To change the graph or its bindings, "
                "use “Import a new version”: it is checked and gets a new version and hash.",
                "fields": [
                    "slug",
                    "version",
                    "content_sha256",
                    "source_file",
                    "bindings_shown",
                    "graph_shown",
                ],
            },
        ),
        (None, {"fields": ["uuid", "updated_at"]}),
    ]
    readonly_fields = [
        "uuid",
        "slug",
        "version",
        "content_sha256",
        "source_file",
        "bindings_shown",
        "graph_shown",
        "updated_at",
    ]

    @admin.display(description="Bindings")
    def bindings_shown(self, template: WorkflowTemplate) -> str:
        return format_html("<pre>{}</pre>", json.dumps(template.bindings, indent=2))

    @admin.display(description="Graph")
    def graph_shown(self, template: WorkflowTemplate) -> str:
        return format_html("<pre>{}</pre>", json.dumps(template.graph, indent=2))

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return redirect("admin:generation_workflowtemplate_import")  # a template starts as an import

    def save_model(self, request: HttpRequest, obj: WorkflowTemplate, form: Any, change: bool) -> None:
        labels = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in services.TEMPLATE_LABEL_FIELDS
        }
        services.workflow_template_update(template=obj, **labels)

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="generation_workflowtemplate_import",
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        source = self._import_source(request)
        initial: dict[str, str] = {}
        if source is not None:
            initial = {
                "name": source.name,
                "slug": source.slug,
                "description": source.description,
                "workflow_json": json.dumps(source.graph, indent=2),
                "bindings_json": json.dumps(source.bindings, indent=2),
            }
        form = WorkflowImportForm(request.POST or None, request.FILES or None, initial=initial)
        error = ""
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                template = services.workflow_template_import(
                    name=data["name"],
                    slug=data["slug"],
                    description=data["description"],
                    api_json=data["workflow_json"],
                    bindings_json=data["bindings_json"],
                )
            except TemplateError as exc:
                error = str(exc)
            else:
                bound = ", ".join(sorted(template.bindings))
                self.message_user(request, f"Imported {template.name} v{template.version}; bound: {bound}.")
                return redirect("admin:generation_workflowtemplate_change", template.pk)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "error": error,
            "source": source,
            "title": f"Import a new version of {source}" if source is not None else "Import a workflow",
        }
        return TemplateResponse(
            request, "admin/generation/workflowtemplate/import.html", context, status=400 if error else 200
        )

    def _import_source(self, request: HttpRequest) -> WorkflowTemplate | None:
        """The template whose graph and bindings the import page starts from (?template=<uuid>)."""
        try:
            return WorkflowTemplate.objects.filter(uuid=request.GET.get("template", "")).first()
        except ValidationError:
            return None


class AttemptInline(admin.TabularInline):
    model = Attempt
    fields = readonly_fields = (
        "number",
        "backend",
        "remote_handle",
        "state",
        "error_code",
        "error_message",
        "submitted_at",
        "finished_at",
    )
    extra = 0
    can_delete = False
    show_change_link = True


class JobEventInline(admin.TabularInline):
    model = JobEvent
    fields = readonly_fields = ("at", "from_state", "to_state", "message")
    extra = 0
    can_delete = False


class ArtifactInline(admin.TabularInline):
    model = Artifact
    fields = readonly_fields = (
        "preview",
        "kind",
        "content_type",
        "width",
        "height",
        "duration_s",
        "frame_count",
        "size_bytes",
        "sha256",
    )
    extra = 0
    can_delete = False

    @admin.display(description="Output")
    def preview(self, artifact: Artifact) -> str:
        url = reverse("briefs:artifact", args=[artifact.uuid])
        # Shown by what it is: a clip or a sound in an <img> would show as a broken picture.
        if artifact.kind == ArtifactKind.VIDEO:
            return format_html(
                '<video src="{}" style="max-height:80px" controls muted preload="metadata"></video>', url
            )
        if artifact.kind == ArtifactKind.AUDIO:
            return format_html('<audio src="{}" controls preload="metadata"></audio>', url)
        return format_html('<a href="{}"><img src="{}" style="max-height:80px"></a>', url, url)


@admin.register(RenderJob)
class RenderJobAdmin(admin.ModelAdmin):
    list_display = [
        "uuid",
        "brief",
        "scene",
        "state",
        "error_code",
        "backend",
        "priority",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state", "error_code", "backend", "priority", "template"]
    search_fields = ["uuid", "scene__title", "brief__title", "error_message"]
    date_hierarchy = "created_at"
    list_select_related = ["brief", "scene", "backend"]
    readonly_fields = [f.name for f in RenderJob._meta.fields]
    inlines = [AttemptInline, ArtifactInline, JobEventInline]
    actions = ["cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Cancel selected renders")
    def cancel(self, request: HttpRequest, queryset: QuerySet[RenderJob]) -> None:
        cancelled = sum(services.render_job_cancel(job=job) for job in queryset)
        self.message_user(request, f"{cancelled} render(s) cancelled.")


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ["uuid", "job", "number", "backend", "state", "error_code", "submitted_at", "finished_at"]
    list_filter = ["state", "error_code", "backend"]
    search_fields = ["uuid", "remote_handle", "error_message"]
    readonly_fields = [f.name for f in Attempt._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = [
        "uuid",
        "job",
        "kind",
        "content_type",
        "width",
        "height",
        "duration_s",
        "size_bytes",
        "created_at",
    ]
    list_filter = ["kind", "content_type"]
    search_fields = ["uuid", "sha256", "storage_name"]
    readonly_fields = [f.name for f in Artifact._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Deliverable)
class DeliverableAdmin(admin.ModelAdmin):
    """Read only: deliverables are built from the editor or the API, never edited by hand."""

    list_display = ["uuid", "brief", "kind", "state", "progress", "size_bytes", "created_at", "finished_at"]
    list_filter = ["kind", "state"]
    search_fields = ["uuid", "brief__title", "error"]
    list_select_related = ["brief"]
    readonly_fields = [f.name for f in Deliverable._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting the row here would leave its file behind in storage.
        return False


@admin.register(RenderBatch)
class RenderBatchAdmin(admin.ModelAdmin):
    list_display = ["uuid", "brief", "created_by", "created_at"]
    search_fields = ["uuid", "brief__title"]
    readonly_fields = ["uuid", "brief", "created_by", "created_at"]
