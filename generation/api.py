"""REST API for renders: submit, follow, cancel, download."""

from django.db.models import QuerySet
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from briefs.selectors import briefs_visible_to, scenes_visible_to
from generation import services
from generation.downloads import artifact_response, deliverable_response
from generation.models import (
    Artifact,
    Backend,
    Deliverable,
    DeliverableKind,
    DeliverableState,
    QueuePolicy,
    RenderJob,
    WorkflowTemplate,
)
from generation.selectors import (
    artifacts_visible_to,
    backends_with_load,
    deliverables_visible_to,
    jobs_visible_to,
)


class PolicyOverridesSerializer(serializers.Serializer):
    max_wait_s = serializers.FloatField(required=False, min_value=1, max_value=7 * 24 * 3600)
    poll_interval_s = serializers.FloatField(required=False, min_value=0.05, max_value=600)
    max_poll_attempts = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000)
    post_execution_timeout_s = serializers.FloatField(required=False, min_value=0.1, max_value=3600)
    retry_budget = serializers.IntegerField(required=False, min_value=0, max_value=10)


class RenderInputSerializer(serializers.Serializer):
    template = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=WorkflowTemplate.objects.filter(enabled=True),
        required=False,
        allow_null=True,
        help_text=(
            "Workflow template slug for every scene rendered; left out, each scene renders with its own "
            "(else its brief's, else the studio's default)."
        ),
    )
    backend = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Backend.objects.filter(enabled=True),
        required=False,
        allow_null=True,
        help_text="Backend name: only this backend renders it. Left out, dispatch chooses.",
    )
    policy = serializers.SlugRelatedField(
        slug_field="name",
        queryset=QueuePolicy.objects.all(),
        required=False,
        allow_null=True,
        source="preset",
        help_text="Queue policy preset by name, e.g. 'Fast iteration'; the studio default when left out.",
    )
    policy_overrides = PolicyOverridesSerializer(
        required=False, help_text="Single knobs that replace the preset's for this render or batch."
    )


class ArtifactOutputSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = [
            "uuid",
            "content_type",
            "kind",
            "size_bytes",
            "sha256",
            "width",
            "height",
            "duration_s",
            "frame_count",
            "created_at",
            "download_url",
        ]

    def get_download_url(self, artifact: Artifact) -> str:
        request = self.context.get("request")
        path = f"/api/v1/artifacts/{artifact.uuid}/download/"
        return request.build_absolute_uri(path) if request else path


class JobOutputSerializer(serializers.ModelSerializer):
    brief = serializers.UUIDField(source="brief.uuid", read_only=True)
    scene = serializers.UUIDField(source="scene.uuid", read_only=True)
    template = serializers.SlugField(source="template.slug", read_only=True)
    backend = serializers.CharField(source="backend.name", read_only=True, default=None)
    progress = serializers.IntegerField(source="progress_percent", read_only=True)
    artifacts = ArtifactOutputSerializer(many=True, read_only=True)

    class Meta:
        model = RenderJob
        fields = [
            "uuid",
            "brief",
            "scene",
            "scene_version",
            "template",
            "template_version",
            "backend",
            "params",
            "policy",
            "state",
            "error_code",
            "error_message",
            "progress",
            "created_at",
            "started_at",
            "finished_at",
            "artifacts",
        ]


def _jobs(queryset: QuerySet[RenderJob]) -> QuerySet[RenderJob]:
    return queryset.select_related("brief", "scene", "template", "backend").prefetch_related("artifacts")


class SceneRenderApi(APIView):
    @extend_schema(request=RenderInputSerializer, responses={202: JobOutputSerializer})
    def post(self, request: Request, scene_uuid: str) -> Response:
        scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
        incoming = RenderInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        # The API queues what it is asked for, as before; asking first is the editor's.
        job = services.render_job_submit(
            scene=scene, user=request.user, again=True, **incoming.validated_data
        )
        job = _jobs(RenderJob.objects.filter(pk=job.pk)).get()
        return Response(
            JobOutputSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )


class BriefRenderApi(APIView):
    @extend_schema(
        request=RenderInputSerializer,
        responses={
            202: inline_serializer(
                "BatchOutput", {"batch": serializers.UUIDField(), "jobs": JobOutputSerializer(many=True)}
            )
        },
    )
    def post(self, request: Request, brief_uuid: str) -> Response:
        brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
        incoming = RenderInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        batch, jobs = services.render_brief_submit(brief=brief, user=request.user, **incoming.validated_data)
        fresh = _jobs(RenderJob.objects.filter(pk__in=[j.pk for j in jobs]).order_by("scene__position"))
        data = {
            "batch": str(batch.uuid),
            "jobs": JobOutputSerializer(fresh, many=True, context={"request": request}).data,
        }
        return Response(data, status=status.HTTP_202_ACCEPTED)


class BriefJobsApi(generics.ListAPIView):
    serializer_class = JobOutputSerializer

    def get_queryset(self) -> QuerySet[RenderJob]:
        brief = get_object_or_404(briefs_visible_to(self.request.user), uuid=self.kwargs["brief_uuid"])
        return _jobs(RenderJob.objects.filter(brief=brief).order_by("-created_at"))


class JobDetailApi(generics.RetrieveAPIView):
    serializer_class = JobOutputSerializer
    lookup_field = "uuid"
    lookup_url_kwarg = "job_uuid"

    def get_queryset(self) -> QuerySet[RenderJob]:
        return _jobs(jobs_visible_to(self.request.user))


class JobCancelApi(APIView):
    @extend_schema(request=None, responses={200: JobOutputSerializer})
    def post(self, request: Request, job_uuid: str) -> Response:
        job = get_object_or_404(jobs_visible_to(request.user), uuid=job_uuid)
        services.render_job_cancel(job=job)
        job = _jobs(RenderJob.objects.filter(pk=job.pk)).get()
        return Response(JobOutputSerializer(job, context={"request": request}).data)


class ArtifactDownloadApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, artifact_uuid: str) -> FileResponse:
        artifact = get_object_or_404(
            artifacts_visible_to(request.user).select_related("job__scene"), uuid=artifact_uuid
        )
        return artifact_response(request, artifact, as_attachment=True)


class DeliverableInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=DeliverableKind.choices)
    missing = serializers.ChoiceField(
        choices=[("stop", "stop"), ("latest", "latest")],
        default="stop",
        help_text="Scenes with no final picked: stop (refuse, naming them) or latest (use each one's newest take).",
    )
    titles = serializers.BooleanField(default=False, help_text="Burn scene titles into the animatic.")


class DeliverableOutputSerializer(serializers.ModelSerializer):
    brief = serializers.UUIDField(source="brief.uuid", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Deliverable
        fields = [
            "uuid",
            "brief",
            "kind",
            "state",
            "progress",
            "options",
            "size_bytes",
            "sha256",
            "notes",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]

    def get_download_url(self, deliverable: Deliverable) -> str | None:
        if deliverable.state != DeliverableState.SUCCEEDED:
            return None
        request = self.context.get("request")
        path = f"/api/v1/deliverables/{deliverable.uuid}/download/"
        return request.build_absolute_uri(path) if request else path


class BriefDeliverablesApi(APIView):
    """A brief's deliverables, newest first; POST builds one (202), refused (400) when the brief
    cannot make it as it stands, 409 while one of that kind is being built."""

    @extend_schema(responses={200: DeliverableOutputSerializer(many=True)})
    def get(self, request: Request, brief_uuid: str) -> Response:
        brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
        rows = Deliverable.objects.filter(brief=brief).select_related("brief").order_by("-created_at", "-id")
        return Response(DeliverableOutputSerializer(rows, many=True, context={"request": request}).data)

    @extend_schema(request=DeliverableInputSerializer, responses={202: DeliverableOutputSerializer})
    def post(self, request: Request, brief_uuid: str) -> Response:
        brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
        incoming = DeliverableInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        deliverable = services.deliverable_request(brief=brief, user=request.user, **incoming.validated_data)
        return Response(
            DeliverableOutputSerializer(deliverable, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )


class DeliverableDownloadApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, deliverable_uuid: str) -> FileResponse:
        deliverable = get_object_or_404(
            deliverables_visible_to(request.user)
            .filter(state=DeliverableState.SUCCEEDED)
            .select_related("brief"),
            uuid=deliverable_uuid,
        )
        return deliverable_response(request, deliverable)


class BackendOutputSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True)
    in_flight = serializers.IntegerField(read_only=True)

    class Meta:
        model = Backend
        fields = [
            "uuid",
            "name",
            "kind",
            "base_url",
            "enabled",
            "draining",
            "state",
            "health_message",
            "health_checked_at",
            "capacity",
            "queue_depth",
            "in_flight",
            "socket_connected",
            "vram_total_mb",
            "endpoint_id",
            "price_per_second",
        ]


class BackendListApi(generics.ListAPIView):
    """Backends and their state (staff only)."""

    serializer_class = BackendOutputSerializer
    permission_classes = [IsAdminUser]

    def get_queryset(self) -> QuerySet[Backend]:
        return backends_with_load().order_by("name")


class DrainInputSerializer(serializers.Serializer):
    drain = serializers.BooleanField(default=True)


class BackendDrainApi(APIView):
    """Drain a backend (finish what it has, take nothing new), or with drain=false feed it again."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=DrainInputSerializer, responses={200: BackendOutputSerializer})
    def post(self, request: Request, backend_uuid: str) -> Response:
        backend = get_object_or_404(Backend, uuid=backend_uuid)
        incoming = DrainInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        services.backend_set_draining(backend=backend, draining=incoming.validated_data["drain"])
        annotated = backends_with_load().get(pk=backend.pk)
        return Response(BackendOutputSerializer(annotated).data)


class QueuePolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = QueuePolicy
        fields = [
            "name",
            "description",
            "max_wait_s",
            "poll_interval_s",
            "max_poll_attempts",
            "post_execution_timeout_s",
            "retry_budget",
            "is_default",
        ]


class QueuePolicyListApi(generics.ListAPIView):
    """Queue policy presets a render or batch may name."""

    serializer_class = QueuePolicySerializer
    queryset = QueuePolicy.objects.order_by("name")
