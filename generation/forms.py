from typing import Any

from django import forms

from generation.api_keys import api_key_state
from generation.backend_config import validate_backend_url
from generation.models import Backend, BackendKind


class WorkflowImportForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=100,
        required=False,
        help_text="Leave empty to derive it from the name; an existing slug gets a new version.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    workflow_file = forms.FileField(
        required=False, help_text='The JSON written by ComfyUI\'s "Save (API)" (or "Export (API)").'
    )
    workflow_json = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}), required=False, help_text="…or paste that JSON here."
    )
    bindings_json = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text='Optional, e.g. {"prompt": [{"node": "6", "input": "text"}]}. Empty: detected automatically.',
    )

    MAX_UPLOAD = 5 * 1024 * 1024

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        upload = cleaned.get("workflow_file")
        if upload is not None:
            if upload.size > self.MAX_UPLOAD:
                raise forms.ValidationError(
                    {"workflow_file": "That file is over 5 MB; an API workflow is far smaller."}
                )
            try:
                cleaned["workflow_json"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError({"workflow_file": "That file is not UTF-8 text."}) from None
        if not (cleaned.get("workflow_json") or "").strip():
            raise forms.ValidationError("Upload the exported workflow or paste its JSON.")
        return cleaned


class BackendForm(forms.ModelForm):
    """The backend form of the admin. The API key field is write-only: it is never filled in,
    and an empty value keeps the stored key."""

    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="API key",
    )
    clear_api_key = forms.BooleanField(required=False, label="Clear the stored API key")
    base_url = forms.URLField(
        assume_scheme="https",
        help_text="Where the server answers, e.g. http://gpu-01:8188; for RunPod the API base, "
        "https://api.runpod.ai/v2",
        # Besides Django's own URL check, so that a refused address says why it is refused.
        validators=[validate_backend_url],
    )

    class Meta:
        model = Backend
        fields = [
            "name",
            "kind",
            "base_url",
            "endpoint_id",
            "api_key_env",
            "description",
            "enabled",
            "is_default",
            "capacity",
            "queue_depth",
            "draining",
            "price_per_second",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        state = api_key_state(self.instance) if self.instance.pk else "no key set"
        self.fields["api_key"].help_text = (
            f"RunPod backends. Now: {state}. Type a key to replace it; leave empty to keep it. "
            "It is stored encrypted and never shown again."
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("kind") == BackendKind.RUNPOD:
            if not cleaned.get("endpoint_id"):
                self.add_error("endpoint_id", "A RunPod backend needs its endpoint id.")
            keeps_key = bool(self.instance.pk and self.instance.api_key_encrypted) and not cleaned.get(
                "clear_api_key"
            )
            if not (cleaned.get("api_key") or cleaned.get("api_key_env") or keeps_key):
                self.add_error(
                    "api_key", "Enter the API key, or name the environment variable that holds it."
                )
        return cleaned
