"""The queue policy in force: environment defaults, a preset from the admin, per-batch overrides."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from generation.models import QueuePolicy

POLICY_FIELDS = (
    "max_wait_s",
    "poll_interval_s",
    "max_poll_attempts",
    "post_execution_timeout_s",
    "retry_budget",
)


def environment_policy() -> dict[str, Any]:
    return {
        "name": "environment defaults",
        "max_wait_s": settings.RENDER_MAX_WAIT,
        "poll_interval_s": settings.RENDER_POLL_INTERVAL,
        "max_poll_attempts": settings.RENDER_MAX_POLL_ATTEMPTS,
        "post_execution_timeout_s": settings.RENDER_POST_EXECUTION_TIMEOUT,
        "retry_budget": settings.RENDER_RETRY_BUDGET,
    }


def policy_in_force(
    *, preset: QueuePolicy | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The five knobs as a plain dict, ready to be snapshotted on a batch, job and attempt.

    A named preset (or the admin's default preset) replaces the environment's
    values; overrides, already validated by the door, replace single knobs.
    """
    policy = environment_policy()
    chosen = preset or QueuePolicy.objects.filter(is_default=True).first()
    if chosen is not None:
        policy.update({field: getattr(chosen, field) for field in POLICY_FIELDS})
        policy["name"] = chosen.name
    for field, value in (overrides or {}).items():
        if field not in POLICY_FIELDS:
            raise ValueError(f"{field!r} is not a queue policy setting")
        policy[field] = value
        policy["name"] = f"{policy['name']} (adjusted)"
    return policy
