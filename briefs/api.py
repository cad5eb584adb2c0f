"""REST API for briefs and scenes: input serializer -> service -> output serializer."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from briefs import services
from briefs.models import Brief, Scene, Team
from briefs.selectors import briefs_visible_to, teams_of


class SceneInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    prompt = serializers.CharField()
    negative_prompt = serializers.CharField(required=False, allow_blank=True, default="")
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2**53 - 1, default=None
    )
    position = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)


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
    # DRF fields have a `style` attribute; a serializer field of that name is still fine at run time.
    style = serializers.CharField(required=False, allow_blank=True, default="")  # type: ignore[assignment]
    characters = serializers.CharField(required=False, allow_blank=True, default="")
    scenes = SceneInputSerializer(many=True, required=False, default=list)


class SceneOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Scene
        fields = ["uuid", "position", "title", "prompt", "negative_prompt", "seed", "version", "updated_at"]


class BriefOutputSerializer(serializers.ModelSerializer):
    team = serializers.UUIDField(source="team.uuid", read_only=True)
    scenes = SceneOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Brief
        fields = [
            "uuid",
            "team",
            "title",
            "idea",
            "style",
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
            .prefetch_related("scenes")
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
        return briefs_visible_to(self.request.user).select_related("team").prefetch_related("scenes")


class SceneCreateApi(generics.GenericAPIView):
    serializer_class = SceneOutputSerializer

    @extend_schema(request=SceneInputSerializer, responses={201: SceneOutputSerializer})
    def post(self, request: Request, brief_uuid: str) -> Response:
        brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
        incoming = SceneInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        scene = services.scene_create(brief=brief, **incoming.validated_data)
        return Response(SceneOutputSerializer(scene).data, status=status.HTTP_201_CREATED)
