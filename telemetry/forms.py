"""Filters of the admin's telemetry pages; bad values come back as form errors, never as a 500."""

from __future__ import annotations

from django import forms

from briefs.models import Brief
from generation.models import Backend, WorkflowTemplate
from telemetry.attempt_series import DEFAULT_POINTS, MAX_POINTS
from telemetry.stability import DEFAULT_LAST_RUNS, MAX_LAST_RUNS


class StabilityFilterForm(forms.Form):
    runs = forms.IntegerField(
        label="Last runs", min_value=1, max_value=MAX_LAST_RUNS, required=False, initial=DEFAULT_LAST_RUNS
    )
    brief = forms.ModelChoiceField(
        queryset=Brief.objects.filter(batches__isnull=False).distinct().order_by("title"),
        to_field_name="uuid",
        required=False,
        empty_label="any brief",
    )
    backend = forms.ModelChoiceField(
        queryset=Backend.objects.order_by("name"),
        to_field_name="name",
        required=False,
        empty_label="any backend",
    )
    template = forms.ModelChoiceField(
        queryset=WorkflowTemplate.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="any template",
    )


class ChartWindowForm(forms.Form):
    last = forms.IntegerField(
        label="Last attempts", min_value=1, max_value=MAX_POINTS, required=False, initial=DEFAULT_POINTS
    )
