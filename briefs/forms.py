from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from briefs.models import Brief, Scene
from generation.artifact_check import inspect_image
from generation.models import WorkflowTemplate
from generation.providers.base import ProviderError


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
        fields = ["title", "idea", "style", "characters", "reference_image", "template"]
        widgets = {
            "idea": forms.Textarea(attrs={"rows": 3}),
            "style": forms.Textarea(attrs={"rows": 2}),
            "characters": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_reference_image(self) -> Any:
        return checked_image(self.cleaned_data.get("reference_image"), label="the character reference")


class SceneForm(forms.ModelForm):
    class Meta:
        model = Scene
        fields = ["title", "prompt", "negative_prompt", "seed", "input_image"]
        error_messages = {
            "prompt": {"required": "Describe what the frame shows; a scene needs a prompt to render."},
            "title": {"required": "Give the scene a short title."},
        }
        widgets = {
            "prompt": forms.Textarea(attrs={"rows": 3}),
            "negative_prompt": forms.Textarea(attrs={"rows": 1}),
        }

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
