import uuid

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models


def inputs_storage() -> Storage:
    return storages["inputs"]


class Team(models.Model):
    """Who owns briefs: a brief is seen by its team's members (and staff), nobody else."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    # A user's own team, made the first time they need one; its owner is always a member.
    # Kept (as an ordinary team) when the user is deleted: its briefs stay owned.
    personal_for = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="personal_team",
        help_text="Set on a user's personal team; empty on shared teams.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UserPreference(models.Model):
    """Per-user choices that outlive a session; today the team new briefs go to."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    current_team = models.ForeignKey(
        Team,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Where the user's new briefs go; empty (or a team they left) falls back to their first team.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Preferences of {self.user}"


class AspectRatio(models.TextChoices):
    WIDE = "16:9", "16:9 (widescreen)"
    TALL = "9:16", "9:16 (vertical)"
    SQUARE = "1:1", "1:1 (square)"
    CLASSIC = "4:3", "4:3"
    SCOPE = "2.39:1", "2.39:1 (scope)"


class ShotType(models.TextChoices):
    NONE = "", "—"
    ESTABLISHING = "establishing", "Establishing"
    AERIAL = "aerial", "Aerial"
    EXTREME_WIDE = "extreme-wide", "Extreme wide"
    WIDE = "wide", "Wide"
    FULL = "full", "Full"
    MEDIUM = "medium", "Medium"
    MEDIUM_CLOSE_UP = "medium-close-up", "Medium close-up"
    CLOSE_UP = "close-up", "Close-up"
    EXTREME_CLOSE_UP = "extreme-close-up", "Extreme close-up"
    OVER_THE_SHOULDER = "over-the-shoulder", "Over the shoulder"
    POINT_OF_VIEW = "point-of-view", "Point of view"
    INSERT = "insert", "Insert"
    TWO_SHOT = "two-shot", "Two-shot"


class CameraMove(models.TextChoices):
    NONE = "", "—"
    STATIC = "static", "Static"
    PAN = "pan", "Pan"
    TILT = "tilt", "Tilt"
    DOLLY_IN = "dolly-in", "Dolly in"
    DOLLY_OUT = "dolly-out", "Dolly out"
    TRACKING = "tracking", "Tracking"
    CRANE = "crane", "Crane"
    HANDHELD = "handheld", "Handheld"
    ZOOM = "zoom", "Zoom"
    ORBIT = "orbit", "Orbit"


class Transition(models.TextChoices):
    CUT = "cut", "Cut"
    FADE = "fade", "Fade"
    DISSOLVE = "dissolve", "Dissolve"


class Brief(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="briefs")
    title = models.CharField(max_length=200)
    idea = models.TextField(blank=True, help_text="The story idea in a few sentences.")
    logline = models.CharField(max_length=300, blank=True, help_text="The story in one sentence.")
    # The story bible: its cast is `characters` (Character rows); these are its style and world.
    style = models.TextField(
        blank=True, max_length=2000, help_text="Style notes added to every scene's prompt."
    )
    palette = models.CharField(max_length=300, blank=True, help_text="Colours, e.g. 'teal and amber'.")
    negative_style = models.TextField(
        blank=True, max_length=2000, help_text="What no frame should show; added to every negative prompt."
    )
    setting = models.TextField(blank=True, max_length=2000, help_text="Where and when the story takes place.")
    aspect_ratio = models.CharField(max_length=8, choices=AspectRatio.choices, default=AspectRatio.WIDE)
    target_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long the finished storyboard should run."
    )
    # Bumped on every change to the story bible (style, palette, setting, characters), so that a take
    # can say which bible it was rendered with and be marked stale when it moves on.
    bible_version = models.PositiveIntegerField(default=1, editable=False)
    reference_image = models.ImageField(
        storage=inputs_storage,
        upload_to="references/",
        blank=True,
        help_text="Character reference for workflows that keep characters consistent (IP-Adapter).",
    )
    template = models.ForeignKey(
        "generation.WorkflowTemplate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Workflow used to render this brief's scenes; empty uses the studio's default.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Live events are numbered per brief so that a browser can see a gap and resync.
    event_seq = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title


class OutlineState(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Writing the outline"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


class OutlineKind(models.TextChoices):
    EXPAND = "expand", "Outline from the idea"
    REFINE = "refine", "Rewrite from a note"


class OutlineRequest(models.Model):
    """One expansion of a brief's idea into a logline, a story bible and scenes, or one rewrite of
    its outline (one scene, or all of it) from a writer's note, run by a Celery task.

    The brief changes only when it succeeds, all at once; a failure leaves it as it was and says why.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="outline_requests")
    kind = models.CharField(max_length=8, choices=OutlineKind.choices, default=OutlineKind.EXPAND)
    idea = models.TextField(max_length=4000, blank=True)
    note = models.TextField(max_length=1000, blank=True, help_text="What a refine asks to change.")
    # The one scene a refine rewrites; none rewrites the whole outline. A refine of a scene goes
    # with the scene: without it the request would read as one for the whole outline.
    scene = models.ForeignKey(
        "Scene", on_delete=models.CASCADE, null=True, blank=True, related_name="outline_requests"
    )
    # What a refine changed, one line per change, for the page.
    summary = models.TextField(blank=True)
    state = models.CharField(max_length=12, choices=OutlineState.choices, default=OutlineState.QUEUED)
    # Which expander did the work: "built-in", or the model behind the configured endpoint.
    expander = models.CharField(max_length=120, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=OutlineState.values), name="outline_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=OutlineKind.values), name="outline_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(kind=OutlineKind.EXPAND, scene__isnull=True, note="")
                | (models.Q(kind=OutlineKind.REFINE) & ~models.Q(note="")),
                name="outline_refine_has_a_note",
            ),
        ]

    def __str__(self) -> str:
        what = "Outline" if self.kind == OutlineKind.EXPAND else "Refine"
        return f"{what} of {self.brief} ({self.state})"


class Character(models.Model):
    """Someone in the story bible: the same words describe them in every shot they appear in."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="characters")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000, help_text="Who they are, for the writers.")
    look = models.TextField(blank=True, max_length=1000, help_text="How they look: face, hair, clothes.")
    prompt_words = models.CharField(
        max_length=500,
        blank=True,
        help_text="Words that must appear whenever they are in a shot (a costume, a LoRA token).",
    )
    reference_image = models.ImageField(storage=inputs_storage, upload_to="characters/", blank=True)
    position = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["brief", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["brief", "name"], name="one_character_name_per_brief")]

    def __str__(self) -> str:
        return self.name


class LiveSceneManager(models.Manager["Scene"]):
    def get_queryset(self) -> models.QuerySet["Scene"]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class AnySceneManager(models.Manager["Scene"]):
    """Deleted scenes too: for restoring and purging them."""


class Scene(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="scenes")
    position = models.PositiveIntegerField(help_text="Order within the brief, from 1.")
    title = models.CharField(max_length=200)
    action = models.TextField(blank=True, max_length=4000, help_text="What happens, for the writers.")
    prompt = models.TextField(help_text="What the frame shows.")
    negative_prompt = models.TextField(blank=True)
    characters = models.ManyToManyField(Character, related_name="scenes", blank=True)
    # The shot enhancers: composed into the prompt the same way for every shot.
    shot_type = models.CharField(max_length=24, choices=ShotType.choices, blank=True)
    camera_move = models.CharField(max_length=24, choices=CameraMove.choices, blank=True)
    lens = models.CharField(max_length=60, blank=True, help_text="e.g. 35mm, anamorphic")
    lighting = models.CharField(max_length=200, blank=True, help_text="e.g. golden hour, neon rim light")
    mood = models.CharField(max_length=200, blank=True)
    duration_s = models.DecimalField(
        max_digits=6, decimal_places=2, default=3, help_text="How long the shot holds, in seconds."
    )
    transition = models.CharField(
        max_length=12, choices=Transition.choices, default=Transition.CUT, help_text="Into the next scene."
    )
    seed = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Fixed seed; empty picks a new one for every render."
    )
    input_image = models.ImageField(
        storage=inputs_storage,
        upload_to="scenes/",
        blank=True,
        help_text="Image the workflow starts from or follows (img2img, ControlNet, upscale, video).",
    )
    template = models.ForeignKey(
        "generation.WorkflowTemplate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Workflow for this scene; empty uses the brief's (else the studio's default).",
    )
    # {parameter: value} for the scene's template, only the values set: the rest follow the
    # template's defaults. Checked by briefs.services.scene_params_checked.
    params = models.JSONField(default=dict, blank=True)
    # The director's pick among the scene's takes (its successful renders): what deliverables use.
    final = models.ForeignKey(
        "generation.RenderJob",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The take picked as this scene's final; empty: none picked yet.",
    )
    # Bumped on every edit so that a take can name the exact scene text it rendered.
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set when the scene is deleted: it stays (with its renders) for the undo window, at the
    # position it had, then is purged. Only `all_objects` sees it meanwhile.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    # The first manager is the default: brief.scenes, querysets, the admin and the API see
    # only scenes in the brief. A job's `scene` still reaches a deleted one (the base manager).
    objects = LiveSceneManager()
    all_objects = AnySceneManager()

    class Meta:
        ordering = ["brief", "position", "id"]
        indexes = [models.Index(fields=["brief", "position"], name="scene_brief_position_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(duration_s__gt=0, duration_s__lte=600), name="scene_duration_in_range"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"


class InvitationState(models.TextChoices):
    PENDING = "pending", "Waiting for an answer"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    WITHDRAWN = "withdrawn", "Withdrawn"


class TeamInvitation(models.Model):
    """An existing user asked to join a team; they become a member only when they accept."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_invitations"
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=12, choices=InvitationState.choices, default=InvitationState.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=InvitationState.values), name="team_invitation_state_valid"
            ),
            # Answered invitations stay as history; only one may wait per person and team.
            models.UniqueConstraint(
                fields=["team", "user"],
                condition=models.Q(state=InvitationState.PENDING),
                name="one_pending_invitation_per_team_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} to {self.team} ({self.state})"
