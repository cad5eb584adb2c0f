"""REST API for briefs and scenes: input serializer -> service -> output serializer."""

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from briefs import services
from briefs.models import (
    AspectRatio,
    Brief,
    CameraMove,
    Character,
    OutlineRequest,
    Scene,
    ShotType,
    Team,
    Transition,
)
from briefs.selectors import briefs_visible_to, composed_for, teams_of


class CharacterSerializer(serializers.ModelSerializer):
    class Meta:
        model = Character
        fields = ["uuid", "name", "description", "look", "prompt_words"]
        read_only_fields = ["uuid"]


@extend_schema_field(OpenApiTypes.STR)
class EnabledTemplateField(serializers.SlugRelatedField):
    """A workflow template by slug, among those in use."""

    default_error_messages = {
        "does_not_exist": "No workflow template in use has the slug {value}.",
        "invalid": "Give a workflow template's slug.",
    }

    def get_queryset(self) -> QuerySet[Any]:
        return Scene._meta.get_field("template").related_model._default_manager.filter(enabled=True)  # type: ignore[union-attr]


class SceneInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    action = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
    prompt = serializers.CharField()
    negative_prompt = serializers.CharField(required=False, allow_blank=True, default="")
    characters = serializers.ListField(
        child=serializers.CharField(max_length=120),
        required=False,
        default=list,
        help_text="Names of the story bible's characters in the shot.",
    )
    shot_type = serializers.ChoiceField(choices=ShotType.choices, required=False, default="")
    camera_move = serializers.ChoiceField(choices=CameraMove.choices, required=False, default="")
    lens = serializers.CharField(required=False, allow_blank=True, default="", max_length=60)
    lighting = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    mood = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    duration_s = serializers.DecimalField(
        max_digits=6, decimal_places=2, min_value=Decimal("0.1"), max_value=Decimal("600"), required=False
    )
    transition = serializers.ChoiceField(choices=Transition.choices, required=False, default=Transition.CUT)
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2**53 - 1, default=None
    )
    position = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)
    template = EnabledTemplateField(
        slug_field="slug",
        required=False,
        allow_null=True,
        default=None,
        help_text="A workflow template's slug; null renders with the brief's (else the studio default).",
    )
    params = serializers.DictField(
        required=False,
        default=dict,
        help_text='Values for the template\'s parameters by name, e.g. {"steps": 30}; the rest follow '
        "its defaults. Checked against the template: a wrong one is a 400 naming it.",
    )


class CallersTeamField(serializers.SlugRelatedField):
    """A team by uuid, looked up among the caller's teams only: another team reads as unknown."""

    default_error_messages = {
        "does_not_exist": "Not one of your teams: {slug_name}={value}.",
        "invalid": "Give a team's uuid.",
    }

    def get_queryset(self) -> QuerySet[Team]:
        return teams_of(self.context["request"].user)


class BriefInputSerializer(serializers.Serializer):
    team = CallersTeamField(
        slug_field="uuid",
        required=False,
        help_text="One of your teams (uuid); your current team when left out.",
    )
    title = serializers.CharField(max_length=200)
    idea = serializers.CharField(required=False, allow_blank=True, default="")
    logline = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    # DRF fields have a `style` attribute; a serializer field of that name is still fine at run time.
    style = serializers.CharField(  # type: ignore[assignment]
        required=False, allow_blank=True, default="", max_length=2000
    )
    palette = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    negative_style = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    setting = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    aspect_ratio = serializers.ChoiceField(
        choices=AspectRatio.choices, required=False, default=AspectRatio.WIDE
    )
    target_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=36000)
    characters = CharacterSerializer(many=True, required=False, default=list)
    scenes = SceneInputSerializer(many=True, required=False, default=list)

    def validate(self, data: dict) -> dict:
        names = [c["name"].strip().lower() for c in data.get("characters", [])]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise serializers.ValidationError({"characters": [f"Each character once: {', '.join(doubles)}."]})
        for index, scene in enumerate(data.get("scenes", [])):
            unknown = [n for n in scene.get("characters", []) if n.strip().lower() not in names]
            if unknown:
                raise serializers.ValidationError(
                    {
                        "scenes": {
                            str(index): {"characters": [f"Not in the story bible: {', '.join(unknown)}."]}
                        }
                    }
                )
        return data


class ComposedPromptSerializer(serializers.Serializer):
    prompt = serializers.CharField(help_text="What a render of the scene sends now.")
    negative_prompt = serializers.CharField()


class SceneOutputSerializer(serializers.ModelSerializer):
    characters = serializers.SlugRelatedField[Character](slug_field="name", many=True, read_only=True)
    template = serializers.SlugRelatedField[Any](
        slug_field="slug", read_only=True, help_text="The scene's own workflow; null: the brief's."
    )
    params = serializers.DictField(
        read_only=True,
        help_text="The values the scene sets for its template's parameters (the rest: defaults).",
    )
    composed = serializers.SerializerMethodField()

    class Meta:
        model = Scene
        fields = [
            "uuid",
            "position",
            *(name for name in services.SCENE_FIELDS if name != "input_image"),
            "version",
            "composed",
            "updated_at",
        ]

    @extend_schema_field(ComposedPromptSerializer)
    def get_composed(self, scene: Scene) -> dict[str, str]:
        composed = composed_for(scene)
        return {"prompt": composed.prompt, "negative_prompt": composed.negative_prompt}


class BriefOutputSerializer(serializers.ModelSerializer):
    team = serializers.UUIDField(source="team.uuid", read_only=True)
    characters = CharacterSerializer(many=True, read_only=True)
    scenes = SceneOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Brief
        fields = [
            "uuid",
            "team",
            "title",
            "idea",
            "logline",
            "style",
            "palette",
            "negative_style",
            "setting",
            "aspect_ratio",
            "target_seconds",
            "bible_version",
            "characters",
            "created_at",
            "updated_at",
            "scenes",
        ]


class BriefListCreateApi(generics.ListAPIView):
    serializer_class = BriefOutputSerializer

    def get_queryset(self) -> QuerySet[Brief]:
        return (
            briefs_visible_to(self.request.user)
            .select_related("team")
            .prefetch_related("scenes__characters", "characters")
            .order_by("-updated_at")
        )

    @extend_schema(request=BriefInputSerializer, responses={201: BriefOutputSerializer})
    def post(self, request: Request) -> Response:
        incoming = BriefInputSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        brief = services.brief_create(user=request.user, scenes=[dict(s) for s in data.pop("scenes")], **data)
        return Response(BriefOutputSerializer(brief).data, status=status.HTTP_201_CREATED)


class BriefDetailApi(generics.RetrieveAPIView):
    serializer_class = BriefOutputSerializer
    lookup_field = "uuid"
    lookup_url_kwarg = "brief_uuid"

    def get_queryset(self) -> QuerySet[Brief]:
        return (
            briefs_visible_to(self.request.user)
            .select_related("team")
            .prefetch_related("scenes__characters", "characters")
        )


class SceneCreateApi(generics.GenericAPIView):
    serializer_class = SceneOutputSerializer

    @extend_schema(request=SceneInputSerializer, responses={201: SceneOutputSerializer})
    def post(self, request: Request, brief_uuid: str) -> Response:
        brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
        incoming = SceneInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            scene = services.scene_create(brief=brief, **incoming.validated_data)
        except services.CharacterRefused as exc:
            raise serializers.ValidationError({"characters": [str(exc)]}) from None
        return Response(SceneOutputSerializer(scene).data, status=status.HTTP_201_CREATED)


class RefineInputSerializer(serializers.Serializer):
    note = serializers.CharField(
        max_length=services.NOTE_MAX_CHARS,
        allow_blank=True,
        help_text="What to change, e.g. 'make scene 3 a night shot', 'closer, handheld', 'make it 5 seconds'.",
        error_messages={
            "required": "Write a note first: what to change, e.g. 'make scene 3 a night shot'.",
            "max_length": "The note is longer than {max_length} characters.",
        },
    )
    scene = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The one scene to rewrite (uuid, a scene of this brief); left out or null rewrites the whole outline.",
    )


class OutlineRequestSerializer(serializers.ModelSerializer):
    # A serializer field named like Field's `label` attribute is still fine at run time.
    label = serializers.CharField(source="get_state_display", read_only=True)  # type: ignore[assignment]
    scene = serializers.UUIDField(source="scene.uuid", read_only=True, allow_null=True, default=None)
    summary = serializers.SerializerMethodField(help_text="What a finished refine changed, one line each.")
    status_url = serializers.SerializerMethodField(help_text="Where to ask how it stands (this object).")

    class Meta:
        model = OutlineRequest
        fields = [
            "uuid",
            "kind",
            "state",
            "label",
            "scene",
            "note",
            "expander",
            "error",
            "summary",
            "created_at",
            "finished_at",
            "status_url",
        ]

    def get_summary(self, outline: OutlineRequest) -> list[str]:
        return outline.summary.splitlines()

    def get_status_url(self, outline: OutlineRequest) -> str:
        return reverse("api:outline-detail", kwargs={"request_uuid": outline.uuid})


class BriefRefineApi(generics.GenericAPIView):
    """Rewrite one scene, or the whole outline, from a note; a worker does it, and
    GET /api/v1/outlines/<uuid>/ says how it stands and, when done, what changed."""

    serializer_class = OutlineRequestSerializer

    @extend_schema(
        request=RefineInputSerializer,
        responses={
            202: OutlineRequestSerializer,
            400: OpenApiResponse(description="The note or the scene is refused; the body names the field."),
            409: OpenApiResponse(description="Another outline request of the brief is queued or running."),
        },
    )
    def post(self, request: Request, brief_uuid: str) -> Response:
        brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
        incoming = RefineInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        scene = None
        if incoming.validated_data["scene"] is not None:
            scene = brief.scenes.filter(uuid=incoming.validated_data["scene"]).first()
            if scene is None:
                raise serializers.ValidationError({"scene": ["Not a scene of this brief."]})
        try:
            outline = services.outline_refine_start(
                brief=brief,
                user=request.user if isinstance(request.user, User) else None,
                note=incoming.validated_data["note"],
                scene=scene,
            )
        except services.OutlineRefused as exc:
            body = {exc.field or "non_field_errors": [str(exc)]}
            code = (
                status.HTTP_409_CONFLICT
                if isinstance(exc, services.OutlineBusy)
                else status.HTTP_400_BAD_REQUEST
            )
            return Response(body, status=code)
        return Response(OutlineRequestSerializer(outline).data, status=status.HTTP_202_ACCEPTED)


class OutlineRequestDetailApi(generics.RetrieveAPIView):
    """How an outline request (an expansion or a refine) stands."""

    serializer_class = OutlineRequestSerializer
    lookup_field = "uuid"
    lookup_url_kwarg = "request_uuid"

    def get_queryset(self) -> QuerySet[OutlineRequest]:
        return OutlineRequest.objects.filter(brief__in=briefs_visible_to(self.request.user)).select_related(
            "scene"
        )
