from django import forms


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
