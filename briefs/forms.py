from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Q
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from briefs import services
from briefs.models import AspectRatio, Brief, Character, Scene
from briefs.selectors import template_in_effect
from generation import services as render_services
from generation.artifact_check import inspect_image
from generation.models import WorkflowTemplate
from generation.providers.base import ProviderError
from generation.workflow_parameters import Parameter, parameters_from_json

PARAM_PREFIX = "param_"


def checked_image(upload: Any, *, label: str) -> Any:
    """An uploaded image after a full decode within the size limits; other values pass through."""
    if not isinstance(upload, UploadedFile):
        return upload  # unchanged (the stored file) or cleared (False)
    limit = settings.INPUT_IMAGE_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise forms.ValidationError(
            f"That image is {upload.size // 1024} KB; the limit is {limit // 1024} KB."
        )
    try:
        inspect_image(upload, max_pixels=settings.ARTIFACT_MAX_PIXELS, label=label)
    except ProviderError as exc:
        raise forms.ValidationError(f"That file cannot be used: {exc.message}.") from None
    upload.seek(0)
    return upload


class BriefForm(forms.ModelForm):
    template = forms.ModelChoiceField(
        queryset=WorkflowTemplate.objects.filter(enabled=True),
        required=False,
        empty_label="Studio default",
        label="Workflow",
        help_text="How this brief's scenes are rendered.",
    )

    class Meta:
        model = Brief
        fields = [
            "title",
            "idea",
            "logline",
            "style",
            "palette",
            "negative_style",
            "setting",
            "aspect_ratio",
            "target_seconds",
            "reference_image",
            "template",
        ]
        widgets = {
            "idea": forms.Textarea(attrs={"rows": 3}),
            "style": forms.Textarea(attrs={"rows": 2}),
            "negative_style": forms.Textarea(attrs={"rows": 1}),
            "setting": forms.Textarea(attrs={"rows": 2}),
        }
        labels = {"negative_style": "Never show", "style": "Style notes"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _optional_with_default(self, "aspect_ratio")

    def clean_aspect_ratio(self) -> str:
        return str(_kept_or_default(self, "aspect_ratio"))

    def clean_reference_image(self) -> Any:
        return checked_image(self.cleaned_data.get("reference_image"), label="the character reference")


def _optional_with_default(form: forms.ModelForm, name: str) -> None:
    """A field whose model has a default: left out of a POST, it keeps what is stored (or the default)."""
    if name in form.fields:
        form.fields[name].required = False


def _kept_or_default(form: forms.ModelForm, name: str) -> Any:
    value = form.cleaned_data.get(name)
    if value in (None, ""):
        stored = getattr(form.instance, name, None)
        return stored if stored not in (None, "") else form.instance._meta.get_field(name).get_default()
    return value


class CharacterForm(forms.ModelForm):
    class Meta:
        model = Character
        fields = ["name", "description", "look", "prompt_words", "reference_image"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "look": forms.Textarea(attrs={"rows": 2}),
        }
        error_messages = {"name": {"required": "Give the character a name."}}

    def __init__(self, *args: Any, brief: Brief, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.brief = brief

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = self.brief.characters.filter(name__iexact=name)
        if self.instance.pk is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"This brief already has a character named {name}.")
        return name

    def clean_reference_image(self) -> Any:
        return checked_image(self.cleaned_data.get("reference_image"), label="the character's reference")


def parameter_field(parameter: Parameter, *, initial: Any) -> forms.Field:
    """The form field of a template parameter: a number input with the template's range, a select
    for choices. The range is checked by the services (one message for every door); the browser
    gets it as attributes."""
    attrs: dict[str, Any] = {"class": f"scene-param scene-param-{parameter.type}"}
    help_text = " ".join(
        part
        for part in (parameter.help, f"Takes {parameter.allowed()}; default {parameter.default}.")
        if part
    )
    common: dict[str, Any] = {
        "label": parameter.label,
        "required": False,
        "initial": initial,
        "help_text": help_text,
    }
    if parameter.type in ("int", "float"):
        for key in ("min", "max", "step"):
            value = getattr(parameter, key)
            if value is not None:
                attrs[key] = value
        if parameter.type == "float" and "step" not in attrs:
            attrs["step"] = "any"
        field_class = forms.IntegerField if parameter.type == "int" else forms.FloatField
        return field_class(widget=forms.NumberInput(attrs=attrs), **common)
    if parameter.type == "choice":
        return forms.ChoiceField(
            choices=[(c, c) for c in parameter.choices], widget=forms.Select(attrs=attrs), **common
        )
    return forms.CharField(widget=forms.TextInput(attrs=attrs), **common)


class SceneForm(forms.ModelForm):
    """A scene in the editor, with a field per parameter of its template (`param_<name>`), folded
    into `params` by clean(). The fields are those of the template the scene has now: a change of
    template keeps the values that fit the new one and drops the others (`dropped_params`)."""

    # The admin edits `params` as JSON instead; the editor as one field per parameter.
    parameter_fields = True

    class Meta:
        model = Scene
        fields = [name for name in services.SCENE_FIELDS if name != "params"]
        error_messages = {
            "prompt": {"required": "Describe what the frame shows; a scene needs a prompt to render."},
            "title": {"required": "Give the scene a short title."},
        }
        widgets = {
            "action": forms.Textarea(attrs={"rows": 2}),
            "prompt": forms.Textarea(attrs={"rows": 3}),
            "negative_prompt": forms.Textarea(attrs={"rows": 1}),
            "characters": forms.CheckboxSelectMultiple,
        }
        labels = {"duration_s": "Duration (s)", "characters": "Who is in the shot", "template": "Workflow"}
        help_texts = {
            "characters": "Their words from the story bible go into the prompt.",
            "template": "How this scene is rendered; its parameters change with it (save to see them).",
        }

    def __init__(self, *args: Any, brief: Brief | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if brief is None and self.instance.brief_id is not None:
            brief = self.instance.brief
        self.brief = brief
        self.dropped_params: dict[str, str] = {}
        self.parameters: list[Parameter] = []
        for name in ("duration_s", "transition"):
            _optional_with_default(self, name)
        if "characters" in self.fields:
            field = self.fields["characters"]
            assert isinstance(field, forms.ModelMultipleChoiceField)
            field.queryset = brief.characters.all() if brief is not None else Character.objects.none()
        # What a scene without its own template renders with: looked up once per form.
        fallback = template_in_effect(brief=brief, template=None) if brief is not None else None
        if "template" in self.fields:
            field = self.fields["template"]
            assert isinstance(field, forms.ModelChoiceField)
            # A scene keeps the template it has even once that is taken out of use for new choices.
            field.queryset = WorkflowTemplate.objects.filter(
                Q(enabled=True) | Q(pk=self.instance.template_id)
            )
            field.empty_label = f"Brief's workflow ({fallback.name})" if fallback else "Brief's workflow"
        if brief is not None:
            stored = self.instance.template if self.instance.template_id is not None else None
            self._add_parameter_fields(stored or fallback)

    def _add_parameter_fields(self, effective: WorkflowTemplate | None) -> None:
        if effective is None:
            return
        self.parameters = parameters_from_json(effective.parameters)
        values = self.instance.params or {}
        for parameter in self.parameters:
            if parameter.type == "image":
                if parameter.name != "reference_image" and "input_image" in self.fields:
                    # The scene's one upload is what this template uses it for.
                    self.fields["input_image"].label = parameter.label
                    self.fields["input_image"].help_text = f"{parameter.help} ({effective.name})"
            elif self.parameter_fields:
                self.fields[PARAM_PREFIX + parameter.name] = parameter_field(
                    parameter, initial=values.get(parameter.name, parameter.default)
                )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.brief is None and isinstance(cleaned.get("brief"), Brief):
            self.brief = cleaned["brief"]  # a new scene in the admin names its brief in the form
        if self.brief is None:
            return cleaned
        submitted, where = self._submitted_params(cleaned)
        if submitted is None:
            return cleaned
        template = cleaned.get("template") if "template" in self.fields else self.instance.template
        if (template.pk if template else None) != self.instance.template_id:
            cleaned["params"], self.dropped_params = services.scene_params_fitted(
                brief=self.brief, template=template, params=submitted
            )
            return cleaned
        try:
            cleaned["params"] = services.scene_params_checked(
                brief=self.brief, template=template, params=submitted
            )
        except services.SceneParamsRefused as exc:
            for name, message in exc.errors.items():
                field = where(name)
                self.add_error(field if field in self.fields else None, message)
        return cleaned

    def dropped_note(self) -> str:
        """What the user is told when a change of workflow left values behind ("" when none)."""
        if not self.dropped_params:
            return ""
        reasons = "; ".join(self.dropped_params.values())
        return f"Dropped with the change of workflow: {', '.join(sorted(self.dropped_params))} ({reasons})."

    def _submitted_params(self, cleaned: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
        """The parameter values posted (None: this form edits none), and where each one's error goes."""
        if "params" in self.fields:
            return cleaned.get("params") or {}, lambda name: "params"
        names = [p.name for p in self.parameters if PARAM_PREFIX + p.name in self.fields]
        if not names:
            return None, None
        submitted: dict[str, Any] = {}
        for name in names:
            key = PARAM_PREFIX + name
            value = cleaned.pop(key, None)
            if self.is_bound and self.add_prefix(key) not in self.data:
                # Not in the POST (a form that shows only some fields): what is stored stays.
                value = (self.instance.params or {}).get(name)
            if value is not None and value != "":
                submitted[name] = value
        return submitted, lambda name: PARAM_PREFIX + name

    def clean_transition(self) -> str:
        return str(_kept_or_default(self, "transition"))

    def clean_duration_s(self) -> Any:
        duration = _kept_or_default(self, "duration_s")
        if duration is not None and not 0 < duration <= 600:
            raise forms.ValidationError("A shot holds between 0.1 and 600 seconds.")
        return duration

    def clean_prompt(self) -> str:
        prompt = self.cleaned_data["prompt"].strip()
        if not prompt:
            raise forms.ValidationError("Describe what the frame shows; a scene needs a prompt to render.")
        return prompt

    def clean_seed(self) -> int | None:
        seed = self.cleaned_data.get("seed")
        if seed is not None and seed >= 2**53:
            raise forms.ValidationError("Seed must be below 2^53 so that every backend can read it.")
        return seed

    def clean_input_image(self) -> Any:
        return checked_image(self.cleaned_data.get("input_image"), label="the input image")


class SceneAdminForm(SceneForm):
    """A scene in the admin: the editor's rules, and saved through the same services.

    A new scene may ask for a position (empty: after the last one); an existing one keeps its
    brief and position, which only the services renumber.
    """

    parameter_fields = False

    class Meta(SceneForm.Meta):
        fields = ["brief", "position", *SceneForm.Meta.fields, "params"]
        help_texts = {
            **SceneForm.Meta.help_texts,
            "params": 'Values for the workflow\'s parameters, e.g. {"steps": 30}; the rest follow its defaults.',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "params" in self.fields:
            self.fields["params"].required = False
        if "position" in self.fields:
            self.fields["position"].required = False
            self.fields["position"].help_text = "Order within the brief; empty: after the last scene."
        if self.instance.pk is not None:
            for name in ("brief", "position"):
                if name in self.fields:
                    self.fields[name].disabled = True

    def clean_position(self) -> int | None:
        position = self.cleaned_data.get("position")
        if position is not None and position < 1:
            raise forms.ValidationError("Positions start at 1.")
        return position

    def create_scene(self, *, brief: Brief) -> Scene:
        values = {
            name: self.cleaned_data[name] for name in services.SCENE_FIELDS if name in self.cleaned_data
        }
        scene = services.scene_create(brief=brief, position=self.cleaned_data.get("position"), **values)
        self._become(scene)
        return scene

    def update_scene(self) -> tuple[Scene, int]:
        """Save what changed; returns the scene as stored and the version it had before.
        The version goes up when anything a render uses changed."""
        # The form has written its values onto its instance already: the service compares
        # them with the row as stored.
        stored = Scene.objects.get(pk=self.instance.pk)
        changed = {
            name: self.cleaned_data[name] for name in self.changed_data if name in services.SCENE_FIELDS
        }
        before = stored.version
        scene = services.scene_update(scene=stored, **changed)
        self._become(scene)
        return scene, before

    def _become(self, scene: Scene) -> None:
        """Make the admin's object the row the service wrote, so that the admin logs and shows it."""
        for field in Scene._meta.concrete_fields:
            setattr(self.instance, field.attname, getattr(scene, field.attname))
        self.instance._state.adding = False
        self.instance._state.db = scene._state.db


class SceneAdminFormSet(BaseInlineFormSet):
    """A brief's scenes in the admin, added, changed and deleted through `briefs.services`."""

    request: HttpRequest | None = None  # set per request by the inline, to tell staff the new versions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notes: list[str] = []

    def save(self, commit: bool = True) -> list[Any]:
        if not commit:
            raise ValueError("scenes are saved through briefs.services; commit=False cannot be honoured")
        saved = super().save(commit=True)
        if self.notes and self.request is not None:
            messages.info(self.request, f"Scenes saved: {'; '.join(self.notes)}.")
        return saved

    def save_new(self, form: Any, commit: bool = True) -> Scene:
        scene = form.create_scene(brief=self.instance)
        self.notes.append(f"scene {scene.position} added")
        return scene

    def save_existing(self, form: Any, obj: Any, commit: bool = True) -> Scene:
        scene, before = form.update_scene()
        self.notes.append(version_note(scene, before))
        return scene

    def delete_existing(self, obj: Any, commit: bool = True) -> None:
        # Like the editor's delete: restorable for a while, its unfinished renders cancelled.
        render_services.scene_delete_with_renders(scene=obj)
        self.notes.append(f"“{obj.title}” deleted")


def version_note(scene: Scene, before: int) -> str:
    if scene.version == before:
        return f"scene {scene.position} unchanged, still version {before}"
    return f"scene {scene.position} is now version {scene.version}"


class IdeaForm(forms.Form):
    """A new brief from an idea: the expander writes its logline, story bible and scenes."""

    idea = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "A lighthouse keeper's last night…"}),
        max_length=4000,
        help_text="A few sentences: what happens, to whom, where.",
        error_messages={"required": "Write the idea first: a few sentences of what happens, and to whom."},
    )
    title = forms.CharField(
        max_length=200, required=False, help_text="Left empty: from the idea's first words."
    )
    aspect_ratio = forms.ChoiceField(choices=AspectRatio.choices, initial=AspectRatio.WIDE, required=False)
    target_seconds = forms.IntegerField(
        min_value=5,
        max_value=480,
        required=False,
        label="Target length (s)",
        help_text="How long the storyboard should run; shots are timed to fit.",
    )
    # A plain file field: checked_image decodes it within the studio's size and pixel limits,
    # where forms.ImageField would decode it before any limit applies.
    reference_image = forms.FileField(
        required=False,
        label="Reference image",
        help_text="Optional: a character reference for workflows that keep characters consistent.",
        widget=forms.FileInput(attrs={"accept": "image/*"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # It shares a page and field names with the empty-brief form: its own element ids.
        kwargs.setdefault("auto_id", "idea_%s")
        super().__init__(*args, **kwargs)

    def clean_aspect_ratio(self) -> str:
        return self.cleaned_data.get("aspect_ratio") or AspectRatio.WIDE

    def clean_reference_image(self) -> Any:
        return checked_image(self.cleaned_data.get("reference_image"), label="the reference image") or None

    def clean_idea(self) -> str:
        idea = self.cleaned_data["idea"].strip()
        if not idea:
            raise forms.ValidationError("Write the idea first: a few sentences of what happens, and to whom.")
        return idea
