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


# Knobs whose higher value asks more of the studio (longer waits, more retries), and the one
# whose lower value does (polling a backend more often). max_poll_attempts 0 means unbounded.
LOOSER_WHEN_HIGHER = ("max_wait_s", "post_execution_timeout_s", "retry_budget", "max_poll_attempts")
LOOSER_WHEN_LOWER = ("poll_interval_s",)


class PolicyOutOfBounds(ValueError):
    """An override that would loosen the policy for someone who may only tighten it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check_within(policy: dict[str, Any], field: str, value: Any) -> None:
    """Only staff may loosen a policy: others may shorten waits and retries, never stretch them."""
    limit = policy[field]
    whose = f"the {policy['name']} policy's own value"
    if field == "max_poll_attempts" and limit == 0:
        return  # the preset is unbounded already
    if field == "max_poll_attempts" and value == 0:
        raise PolicyOutOfBounds(
            field, f"Must be between 1 and {limit} ({whose}); 0 (unbounded) is for staff."
        )
    if field in LOOSER_WHEN_HIGHER and value > limit:
        raise PolicyOutOfBounds(field, f"Must be at most {limit} ({whose}); only staff may raise it.")
    if field in LOOSER_WHEN_LOWER and value < limit:
        raise PolicyOutOfBounds(field, f"Must be at least {limit} ({whose}); only staff may lower it.")


def policy_in_force(
    *, preset: QueuePolicy | None = None, overrides: dict[str, Any] | None = None, bounded: bool = False
) -> dict[str, Any]:
    """The five knobs as a plain dict, ready to be snapshotted on a batch, job and attempt.

    A named preset (or the admin's default preset) replaces the environment's
    values; overrides, already validated by the door, replace single knobs.
    `bounded` (every user but staff) allows only overrides that tighten the
    preset: `PolicyOutOfBounds` names the first knob that would loosen it.
    """
    policy = environment_policy()
    chosen = preset or QueuePolicy.objects.filter(is_default=True).first()
    if chosen is not None:
        policy.update({field: getattr(chosen, field) for field in POLICY_FIELDS})
        policy["name"] = chosen.name
    base = dict(policy)
    for field, value in (overrides or {}).items():
        if field not in POLICY_FIELDS:
            raise ValueError(f"{field!r} is not a queue policy setting")
        if bounded:
            _check_within(base, field, value)
        policy[field] = value
        policy["name"] = f"{policy['name']} (adjusted)"
    return policy
