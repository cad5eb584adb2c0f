from django import forms

from briefs.models import Brief, Scene


class BriefForm(forms.ModelForm):
    class Meta:
        model = Brief
        fields = ["title", "idea", "style", "characters"]
        widgets = {
            "idea": forms.Textarea(attrs={"rows": 3}),
            "style": forms.Textarea(attrs={"rows": 2}),
            "characters": forms.Textarea(attrs={"rows": 2}),
        }


class SceneForm(forms.ModelForm):
    class Meta:
        model = Scene
        fields = ["title", "prompt", "negative_prompt", "seed"]
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
