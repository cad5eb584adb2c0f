from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from briefs.api import (
    BriefDetailApi,
    BriefListCreateApi,
    BriefRefineApi,
    OutlineRequestDetailApi,
    SceneCreateApi,
)
from generation.api import (
    ArtifactDownloadApi,
    BackendDrainApi,
    BackendListApi,
    BriefDeliverablesApi,
    BriefJobsApi,
    BriefRenderApi,
    DeliverableDownloadApi,
    JobCancelApi,
    JobDetailApi,
    QueuePolicyListApi,
    SceneRenderApi,
)
from storycore.health import health
from telemetry.api import (
    BatchDetailApi,
    BatchMetadataApi,
    BatchSummaryApi,
    BatchSummaryJsonApi,
    BatchValidateApi,
    BriefBatchesApi,
    ValidationReportListApi,
)
from telemetry.views import metrics

api_v1 = [
    path("briefs/", BriefListCreateApi.as_view(), name="brief-list"),
    path("briefs/<uuid:brief_uuid>/", BriefDetailApi.as_view(), name="brief-detail"),
    path("briefs/<uuid:brief_uuid>/scenes/", SceneCreateApi.as_view(), name="brief-scenes"),
    path("briefs/<uuid:brief_uuid>/refine/", BriefRefineApi.as_view(), name="brief-refine"),
    path("outlines/<uuid:request_uuid>/", OutlineRequestDetailApi.as_view(), name="outline-detail"),
    path("briefs/<uuid:brief_uuid>/renders/", BriefRenderApi.as_view(), name="brief-render"),
    path("briefs/<uuid:brief_uuid>/jobs/", BriefJobsApi.as_view(), name="brief-jobs"),
    path("scenes/<uuid:scene_uuid>/renders/", SceneRenderApi.as_view(), name="scene-render"),
    path("jobs/<uuid:job_uuid>/", JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<uuid:job_uuid>/cancel/", JobCancelApi.as_view(), name="job-cancel"),
    path("artifacts/<uuid:artifact_uuid>/download/", ArtifactDownloadApi.as_view(), name="artifact-download"),
    path("briefs/<uuid:brief_uuid>/deliverables/", BriefDeliverablesApi.as_view(), name="brief-deliverables"),
    path(
        "deliverables/<uuid:deliverable_uuid>/download/",
        DeliverableDownloadApi.as_view(),
        name="deliverable-download",
    ),
    path("backends/", BackendListApi.as_view(), name="backend-list"),
    path("backends/<uuid:backend_uuid>/drain/", BackendDrainApi.as_view(), name="backend-drain"),
    path("queue-policies/", QueuePolicyListApi.as_view(), name="queue-policy-list"),
    path("briefs/<uuid:brief_uuid>/batches/", BriefBatchesApi.as_view(), name="brief-batches"),
    path("batches/<uuid:batch_uuid>/", BatchDetailApi.as_view(), name="batch-detail"),
    path("batches/<uuid:batch_uuid>/summary/", BatchSummaryApi.as_view(), name="batch-summary"),
    path("batches/<uuid:batch_uuid>/summary.json", BatchSummaryJsonApi.as_view(), name="batch-summary-json"),
    path("batches/<uuid:batch_uuid>/metadata/", BatchMetadataApi.as_view(), name="batch-metadata"),
    path("batches/<uuid:batch_uuid>/validate/", BatchValidateApi.as_view(), name="batch-validate"),
    path("validation-reports/", ValidationReportListApi.as_view(), name="validation-report-list"),
]

urlpatterns = [
    path("", include("briefs.urls")),
    path("", include("telemetry.urls")),
    path("", include("generation.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The admin's telemetry pages, before the admin site's own URLs (its catch-all would answer first).
    path("admin/telemetry/", include("telemetry.admin_views")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("health/", health, name="health"),
    path("metrics", metrics, name="metrics"),
]
