import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models import Q

from generation.backend_config import url_problem, validate_backend_url, validate_key_variable
from generation.providers.base import ErrorCode


class BackendKind(models.TextChoices):
    COMFYUI = "comfyui", "ComfyUI"
    RUNPOD = "runpod", "RunPod serverless"


class HealthState(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"


class BackendState(models.TextChoices):
    """What dispatch sees: health, unless staff disabled or drained the backend."""

    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"
    DRAINING = "draining", "Draining"
    DISABLED = "disabled", "Disabled"
    UNKNOWN = "unknown", "Unknown"


class QueuePolicy(models.Model):
    """A named set of the five waiting knobs; the one in force is copied onto each job and attempt."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    max_wait_s = models.FloatField(default=600, help_text="Seconds a render may take before it times out.")
    poll_interval_s = models.FloatField(default=2, help_text="Seconds between /history checks.")
    max_poll_attempts = models.PositiveIntegerField(default=0, help_text="0: no limit besides the max wait.")
    post_execution_timeout_s = models.FloatField(
        default=30, help_text="Seconds to wait for outputs after the server reports success."
    )
    retry_budget = models.PositiveSmallIntegerField(default=1, help_text="Further attempts after the first.")
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "queue policies"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_policy"
            ),
            models.CheckConstraint(condition=Q(max_wait_s__gt=0), name="policy_max_wait_positive"),
            models.CheckConstraint(condition=Q(poll_interval_s__gt=0), name="policy_poll_interval_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Backend(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=BackendKind.choices, default=BackendKind.COMFYUI)
    base_url = models.URLField(
        help_text="Where the server answers, e.g. http://gpu-01:8188", validators=[validate_backend_url]
    )
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="Used when a render names no backend.")
    capacity = models.PositiveSmallIntegerField(default=1, help_text="Renders it runs at once.")
    queue_depth = models.PositiveSmallIntegerField(
        default=1, help_text="Renders kept waiting in its own queue, so the GPU never waits for the studio."
    )
    draining = models.BooleanField(default=False, help_text="Finish what it has; take nothing new.")
    vram_total_mb = models.PositiveIntegerField(null=True, blank=True, editable=False)
    socket_connected = models.BooleanField(
        default=False, editable=False, help_text="Whether the render watcher's live socket to it is open."
    )
    health_state = models.CharField(max_length=16, choices=HealthState.choices, default=HealthState.UNKNOWN)
    health_message = models.CharField(max_length=500, blank=True)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    # The server's /object_info, kept so that workflows are checked before submit
    # and dispatch can prefer backends that have a workflow's models.
    object_info = models.JSONField(null=True, blank=True, editable=False)
    object_info_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)
    # RunPod serverless: base_url is the API base (https://api.runpod.ai/v2) and this names the endpoint.
    endpoint_id = models.CharField(max_length=100, blank=True, help_text="RunPod endpoint id.")
    # Fernet token (generation.api_keys); the plain key is never stored, shown or returned.
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_key_variable],
        help_text="Name of an environment variable holding the API key; used instead of a stored key. "
        "Only names BACKEND_KEY_VARIABLES allows (RUNPOD_* by default).",
    )
    price_per_second = models.DecimalField(
        max_digits=12,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="What the endpoint costs per second of execution, for cost reports.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_backend"
            ),
            models.CheckConstraint(condition=Q(kind__in=BackendKind.values), name="backend_kind_valid"),
            models.CheckConstraint(
                condition=~Q(kind="runpod") | ~Q(endpoint_id=""), name="runpod_backend_has_endpoint"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # The field's validator holds every backend to the common URL rules; a kind may add more
        # (a RunPod endpoint: https, on the public internet or loopback).
        if self.base_url and url_problem(self.base_url) is None:
            problem = url_problem(self.base_url, kind=self.kind)
            if problem is not None:
                raise ValidationError({"base_url": f"This URL is refused: {problem}."})

    @property
    def state(self) -> str:
        if not self.enabled:
            return BackendState.DISABLED
        if self.draining:
            return BackendState.DRAINING
        return self.health_state

    @property
    def slots(self) -> int:
        """Renders it may hold at once: running ones plus those waiting in its queue."""
        return self.capacity + self.queue_depth

    @property
    def watch_client_id(self) -> str:
        """The ComfyUI client id of every prompt sent here: the watcher's socket gets their messages."""
        return f"storycore-{self.uuid}"


class WorkflowTemplate(models.Model):
    """A ComfyUI API-format workflow and where scene values go in it, loaded from workflows/."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    graph = models.JSONField(help_text="ComfyUI API-format workflow.")
    bindings = models.JSONField(help_text="Scene parameter -> node inputs it is written to.")
    parameters = models.JSONField(
        default=list,
        blank=True,
        help_text="The typed values a scene may set (workflow_parameters.Parameter.as_json), in form order.",
    )
    source_file = models.CharField(max_length=300, blank=True)
    content_sha256 = models.CharField(max_length=64)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class WorkflowTemplateVersion(models.Model):
    """Every graph a template has had, kept so that a job renders the version it recorded even
    when a newer one is imported while it waits."""

    template = models.ForeignKey(WorkflowTemplate, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    graph = models.JSONField()
    bindings = models.JSONField()
    parameters = models.JSONField(default=list, blank=True)
    content_sha256 = models.CharField(max_length=64)
    # Where it came from: a file under workflows/ (its name), or "" for an import.
    source_file = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["template", "version"], name="one_row_per_template_version")
        ]

    def __str__(self) -> str:
        return f"{self.template.slug} v{self.version}"


class JobState(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued"
    DISPATCHED = "dispatched", "Dispatched"
    RUNNING = "running", "Running"
    FETCHING = "fetching", "Fetching outputs"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST})
# Out on a backend: dispatched, rendering, or having its outputs fetched.
IN_FLIGHT_STATES = frozenset({JobState.DISPATCHED, JobState.RUNNING, JobState.FETCHING})

ERROR_CODE_CHOICES = [(code.value, code.value.replace("_", " ")) for code in ErrorCode]


class Priority(models.IntegerChoices):
    INTERACTIVE = 10, "Interactive"
    BATCH = 20, "Batch"


class RenderBatch(models.Model):
    """Renders asked for together (a brief's "Render all", an API batch)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    brief = models.ForeignKey("briefs.Brief", on_delete=models.CASCADE, related_name="batches")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    policy = models.JSONField(default=dict, help_text="The queue policy in force, as it was when submitted.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "render batches"

    def __str__(self) -> str:
        return f"Batch {self.uuid} of {self.brief}"


class RenderJob(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    brief = models.ForeignKey("briefs.Brief", on_delete=models.CASCADE, related_name="render_jobs")
    scene = models.ForeignKey("briefs.Scene", on_delete=models.CASCADE, related_name="render_jobs")
    batch = models.ForeignKey(
        RenderBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    template = models.ForeignKey(WorkflowTemplate, on_delete=models.PROTECT, related_name="render_jobs")
    template_version = models.PositiveIntegerField()
    template_sha256 = models.CharField(max_length=64)
    scene_version = models.PositiveIntegerField()
    params = models.JSONField(help_text="Scene values bound into the workflow, as rendered.")
    backend = models.ForeignKey(
        Backend, on_delete=models.PROTECT, null=True, blank=True, related_name="render_jobs"
    )
    # Set when the person asked for one backend; dispatch then uses no other.
    requested_backend = models.ForeignKey(
        Backend, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.INTERACTIVE)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    error_code = models.CharField(max_length=32, choices=ERROR_CODE_CHOICES, blank=True)
    error_message = models.TextField(blank=True)
    progress_value = models.PositiveIntegerField(default=0)
    progress_max = models.PositiveIntegerField(default=0)
    policy = models.JSONField(default=dict, help_text="The queue policy in force, as it was when submitted.")
    # Not dispatched before this (a rate-limited backend asked to wait).
    not_before = models.DateTimeField(null=True, blank=True)
    # Whoever moved the job into dispatched/fetching owns it until then; the reconciler takes over after.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=JobState.values), name="render_job_state_valid"),
            models.CheckConstraint(
                condition=~Q(state__in=[JobState.FAILED, JobState.LOST]) | ~Q(error_code=""),
                name="failed_job_has_error_code",
            ),
        ]
        indexes = [
            # The dispatcher and the reconciler only ever look at unfinished jobs.
            models.Index(
                fields=["state", "priority", "created_at"],
                condition=Q(state__in=["queued", "dispatched", "running", "fetching"]),
                name="render_job_active_idx",
            ),
            models.Index(fields=["scene", "-created_at"], name="render_job_scene_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"Render of {self.scene_id} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def progress_percent(self) -> int:
        if self.state == JobState.SUCCEEDED:
            return 100
        if not self.progress_max:
            return 0
        return min(100, round(100 * self.progress_value / self.progress_max))


class AttemptState(models.TextChoices):
    SUBMITTING = "submitting", "Submitting"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost"


class Attempt(models.Model):
    """One try of a job on one backend. Its uuid is the prompt_id sent to ComfyUI,
    so a restarted worker can find it on the backend before submitting again."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    backend = models.ForeignKey(Backend, on_delete=models.PROTECT, related_name="attempts")
    remote_handle = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=AttemptState.choices, default=AttemptState.SUBMITTING)
    error_code = models.CharField(max_length=32, choices=ERROR_CODE_CHOICES, blank=True)
    error_message = models.TextField(blank=True)
    error_detail = models.JSONField(default=dict, blank=True)
    policy = models.JSONField(default=dict, blank=True, help_text="The queue policy this attempt ran under.")
    telemetry = models.JSONField(default=dict, blank=True)
    # Files the backend's messages said the render wrote (ComfyUI's `executed`), kept so that a
    # backend that restarted and forgot the render is asked for them before it runs again.
    reported_outputs = models.JSONField(default=list, blank=True, editable=False)
    # The GPU as the probes saw it before the render; the telemetry record is written at the end.
    gpu_before = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    execution_started_at = models.DateTimeField(null=True, blank=True)
    success_detected_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="attempt_number_unique"),
            models.UniqueConstraint(
                fields=["backend", "remote_handle"],
                condition=~Q(remote_handle=""),
                name="remote_handle_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of job {self.job_id}"


class ArtifactKind(models.TextChoices):
    IMAGE = "image", "Still image"
    ANIMATED = "animated", "Animated image"
    VIDEO = "video", "Video"
    AUDIO = "audio", "Audio"


class Artifact(models.Model):
    """One checked output of a render; `kind` says how a card shows it."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="artifacts")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="artifacts")
    storage_name = models.CharField(max_length=300, unique=True)
    content_type = models.CharField(max_length=100)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=ArtifactKind.choices, default=ArtifactKind.IMAGE)
    # Seconds a clip, animation or sound plays (None for a still), and frames a clip or animation has.
    duration_s = models.FloatField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(null=True, blank=True)
    node_id = models.CharField(max_length=50, blank=True)
    remote_filename = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "created_at"]

    def __str__(self) -> str:
        return self.storage_name


class JobEvent(models.Model):
    """Append-only timeline of a job: each state change is a row."""

    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state or '-'} -> {self.to_state}"


class DeliverableKind(models.TextChoices):
    ZIP = "zip", "Finals (zip)"
    CONTACT_PNG = "contact_png", "Contact sheet (PNG)"
    CONTACT_PDF = "contact_pdf", "Contact sheet (PDF)"
    ANIMATIC = "animatic", "Animatic (MP4)"
    SHOTLIST = "shotlist", "Shot list (CSV)"


class DeliverableState(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Building"
    SUCCEEDED = "succeeded", "Ready"
    FAILED = "failed", "Failed"


DELIVERABLE_OPEN_STATES = frozenset({DeliverableState.QUEUED, DeliverableState.RUNNING})


def deliverables_storage() -> Storage:
    return storages["deliverables"]


class Deliverable(models.Model):
    """A file made from a brief's finals (zip, contact sheet, animatic, shot list) by a Celery task.

    Its file is written under a name of its own and the row says succeeded only once the file is
    whole; the brief's previous deliverable of the same kind is removed in that same step.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    brief = models.ForeignKey("briefs.Brief", on_delete=models.CASCADE, related_name="deliverables")
    kind = models.CharField(max_length=16, choices=DeliverableKind.choices)
    state = models.CharField(max_length=12, choices=DeliverableState.choices, default=DeliverableState.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    # {"missing": "latest" | "stop", "titles": bool}
    options = models.JSONField(default=dict, blank=True)
    file_name = models.CharField(max_length=300, blank=True, help_text="Name in the deliverables storage.")
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    # What the build reported on the way (scenes with no final that used their newest take).
    notes = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched with each progress step: a running build that stops touching it has lost its worker.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=DeliverableState.values), name="deliverable_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=DeliverableKind.values), name="deliverable_kind_valid"
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="deliverable_progress_percent"),
            models.CheckConstraint(
                condition=~Q(state=DeliverableState.SUCCEEDED) | ~Q(file_name=""),
                name="succeeded_deliverable_has_file",
            ),
            models.CheckConstraint(
                condition=~Q(state=DeliverableState.FAILED) | ~Q(error=""),
                name="failed_deliverable_has_error",
            ),
            # One build of a kind at a time per brief.
            models.UniqueConstraint(
                fields=["brief", "kind"],
                condition=Q(state__in=["queued", "running"]),
                name="one_open_deliverable_per_kind",
            ),
        ]
        indexes = [
            models.Index(
                fields=["state", "updated_at"],
                condition=Q(state__in=["queued", "running"]),
                name="deliverable_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.brief_id} ({self.state})"
