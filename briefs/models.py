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


class Brief(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="briefs")
    title = models.CharField(max_length=200)
    idea = models.TextField(blank=True, help_text="The story idea in a few sentences.")
    style = models.TextField(blank=True, help_text="Visual style added to every scene's prompt.")
    characters = models.TextField(blank=True, help_text="Who appears in the story, one per line.")
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


class Scene(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="scenes")
    position = models.PositiveIntegerField(help_text="Order within the brief, from 1.")
    title = models.CharField(max_length=200)
    prompt = models.TextField(help_text="What the frame shows.")
    negative_prompt = models.TextField(blank=True)
    seed = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Fixed seed; empty picks a new one for every render."
    )
    input_image = models.ImageField(
        storage=inputs_storage,
        upload_to="scenes/",
        blank=True,
        help_text="Image the workflow starts from or follows (img2img, ControlNet, upscale, video).",
    )
    # Bumped on every edit so that a take can name the exact scene text it rendered.
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["brief", "position", "id"]
        indexes = [models.Index(fields=["brief", "position"], name="scene_brief_position_idx")]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"
