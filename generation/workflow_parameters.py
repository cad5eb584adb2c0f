"""The typed parameters a workflow template lets a scene set. Pure Python, no Django.

A template file may declare them beside its bindings::

    "parameters": {
        "steps": {"type": "int", "label": "Steps", "min": 1, "max": 60, "default": 20},
        "sampler_name": {"type": "choice", "choices": ["euler", "dpmpp_2m"], "default": "euler"}
    }

A bound input without a declaration takes its type from the node's input spec in a ComfyUI
/object_info (INT/FLOAT with min/max/step, a COMBO's options), else from the value in the graph,
so files written before declarations existed keep working. The prompt, the seed and the file
prefix belong to the scene and the studio, and images to the scene's and the brief's uploads:
the parameter form never sets them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

SCENE_OWNED = ("prompt", "negative_prompt", "seed", "filename_prefix")
IMAGE_ROLES = ("init_image", "control_image", "reference_image")
TYPES = ("int", "float", "choice", "text", "image")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TEXT_MAX = 2000
_KEYS = frozenset({"type", "label", "help", "default", "min", "max", "step", "choices"})
# Bound (node id, input name) pairs per parameter, in binding order.
Bound = Mapping[str, Sequence[tuple[str, str]]]


class TemplateError(ValueError):
    """A workflow template file or binding that cannot be used; the message says where."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    label: str
    help: str = ""
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)

    @property
    def settable(self) -> bool:
        """Whether a scene sets it through the parameter form (images come from uploads)."""
        return self.type != "image"

    def allowed(self) -> str:
        """The values it takes, in words, for error messages and help."""
        if self.type == "choice":
            return "one of " + ", ".join(self.choices)
        if self.type in ("int", "float"):
            kind = "a whole number" if self.type == "int" else "a number"
            if self.min is not None and self.max is not None:
                span = f"{kind} from {_show(self.min)} to {_show(self.max)}"
            elif self.min is not None:
                span = f"{kind} of at least {_show(self.min)}"
            elif self.max is not None:
                span = f"{kind} of at most {_show(self.max)}"
            else:
                span = kind
            if self.type == "int" and self.step not in (None, 1):
                span += f" in steps of {_show(self.step)}"
            return span
        if self.type == "text":
            return f"text of at most {TEXT_MAX} characters"
        return "an uploaded image"

    def check(self, value: Any) -> Any:
        """`value` as stored and sent, or ValueError saying what is allowed."""
        if self.type == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{self.name} must be {self.allowed()} (got {value!r})")
            self._in_range(value)
            if self.step not in (None, 1) and (value - (self.min or 0)) % int(self.step or 1):
                raise ValueError(f"{self.name} must be {self.allowed()} (got {value})")
            return value
        if self.type == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{self.name} must be {self.allowed()} (got {value!r})")
            self._in_range(value)
            return float(value)
        if self.type == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.name} must be {self.allowed()} (got {value!r})")
            return value
        if self.type == "text":
            if not isinstance(value, str) or len(value) > TEXT_MAX:
                raise ValueError(f"{self.name} must be {self.allowed()}")
            return value
        raise ValueError(f"{self.name} is set by uploading an image, not as a value")

    def _in_range(self, value: float) -> None:
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ValueError(f"{self.name} must be {self.allowed()} (got {_show(value)})")

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type, "label": self.label, "help": self.help}
        data["default"] = self.default
        if self.type in ("int", "float"):
            data.update(min=self.min, max=self.max, step=self.step)
        if self.type == "choice":
            data["choices"] = list(self.choices)
        return data


def _show(number: float | None) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def parameters_from_json(raw: Any) -> list[Parameter]:
    """Parameters as stored on a template (a list, so the form keeps their order); [] for none."""
    if not isinstance(raw, list):
        return []
    return [
        Parameter(
            name=item["name"],
            type=item["type"],
            label=item.get("label") or item["name"],
            help=item.get("help") or "",
            default=item.get("default"),
            min=item.get("min"),
            max=item.get("max"),
            step=item.get("step"),
            choices=tuple(item.get("choices") or ()),
        )
        for item in raw
    ]


def check_values(
    parameters: Sequence[Parameter], values: Mapping[str, Any], *, template: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values a scene may store for these parameters, and an error per parameter that is wrong.

    A value equal to the default is not kept: the scene then follows the template's default.
    """
    by_name = {p.name: p for p in parameters if p.settable}
    kept: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in values.items():
        parameter = by_name.get(name)
        if parameter is None:
            takes = ", ".join(by_name) or "no parameters"
            errors[name] = f"the workflow {template} has no parameter {name!r} (it takes: {takes})"
            continue
        if value is None or value == "":
            continue
        try:
            checked = parameter.check(value)
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        if checked != parameter.default:
            kept[name] = checked
    return kept, errors


def values_to_send(parameters: Sequence[Parameter], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Every settable parameter's value for a render: the scene's own over the template's defaults."""
    return {p.name: stored.get(p.name, p.default) for p in parameters if p.settable}


# -- reading declarations ------------------------------------------------------------------
def parse_parameters(
    raw: Any, bound: Bound, graph: Mapping[str, Any], *, object_info: Mapping[str, Any] | None, where: str
) -> list[Parameter]:
    """The typed parameters of a template: its declarations, and a derived type for every other
    bound input that is not the scene's own. Bound parameters come first, in binding order."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: 'parameters' must be an object of name -> declaration")
    for name in raw:
        if name not in bound:
            raise TemplateError(
                f"{where}: parameter {name!r} is declared but not bound; add it to 'bindings' "
                "with the node input it sets"
            )
        if name in SCENE_OWNED:
            raise TemplateError(
                f"{where}: parameter {name!r} belongs to the scene (prompt, seed) or the studio "
                "(filename_prefix); leave it out of 'parameters'"
            )
    parameters = []
    for name, targets in bound.items():
        if name in SCENE_OWNED:
            continue
        node_id, input_name = targets[0]
        current = graph[node_id]["inputs"][input_name]
        spec = _input_spec(object_info, str(graph[node_id].get("class_type")), input_name)
        if name in raw:
            parameter = _declared(name, raw[name], current, spec, where=f"{where}: parameter {name!r}")
        elif name in IMAGE_ROLES:
            parameter = Parameter(name=name, type="image", label=_label(name), help=_IMAGE_HELP[name])
        else:
            parameter = _derived(name, current, spec, where=f"{where}: parameter {name!r}")
        parameters.append(parameter)
    return parameters


_IMAGE_HELP = {
    "init_image": "The image the render starts from.",
    "control_image": "The image whose shape (pose, depth, lines) the render follows.",
    "reference_image": "The character reference the render keeps faces and costumes close to.",
}


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _input_spec(object_info: Mapping[str, Any] | None, class_type: str, input_name: str) -> list[Any] | None:
    """The node input's spec in /object_info, e.g. ["INT", {"min": 1, "max": 10000}], if known."""
    node = (object_info or {}).get(class_type)
    if not isinstance(node, dict):
        return None
    for group in ("required", "optional"):
        spec = (node.get("input") or {}).get(group, {}).get(input_name)
        if isinstance(spec, list) and spec:
            return spec
    return None


def _spec_type(spec: list[Any] | None) -> tuple[str | None, dict[str, Any], list[str]]:
    """(our type, the spec's options, a combo's choices) from either of ComfyUI's spellings."""
    if spec is None:
        return None, {}, []
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    kind = spec[0]
    if isinstance(kind, list):
        return "choice", options, [str(c) for c in kind]
    if kind == "COMBO" and isinstance(options.get("options"), list):
        return "choice", options, [str(c) for c in options["options"]]
    return {"INT": "int", "FLOAT": "float", "STRING": "text", "BOOLEAN": None}.get(str(kind)), options, []


def _value_type(value: Any) -> str:
    return "int" if isinstance(value, int) else "float" if isinstance(value, float) else "text"


def _derived(name: str, current: Any, spec: list[Any] | None, *, where: str) -> Parameter:
    kind, options, choices = _spec_type(spec)
    if kind is None:
        # A node the catalogue does not know: the type of the value the graph holds, with no range.
        if isinstance(current, bool):
            raise TemplateError(f"{where}: on/off inputs cannot be scene parameters")
        kind = _value_type(current)
    label = _label(name)
    help_text = str(options.get("tooltip") or "")
    if kind == "choice":
        if current not in choices:
            # A catalogue from another server (a model file it lacks): the graph's value stays allowed.
            choices = [str(current), *choices]
        return _made(Parameter(name, "choice", label, help_text, current, choices=tuple(choices)), where)
    if kind in ("int", "float"):
        return _made(
            Parameter(
                name,
                kind,
                label,
                help_text,
                current,
                min=options.get("min"),
                max=options.get("max"),
                step=options.get("step") if kind == "float" else options.get("step", 1),
            ),
            where,
        )
    return _made(Parameter(name, "text", label, help_text, current), where)


def _declared(name: str, raw: Any, current: Any, spec: list[Any] | None, *, where: str) -> Parameter:
    if not isinstance(raw, dict):
        raise TemplateError(f'{where}: a declaration is an object such as {{"type": "int", "min": 1}}')
    unknown = set(raw) - _KEYS
    if unknown:
        raise TemplateError(
            f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(_KEYS))})"
        )
    if not NAME.match(name):
        raise TemplateError(f"{where}: names are lowercase letters, digits and _ (at most 40)")
    derived_kind, options, spec_choices = _spec_type(spec)
    kind = raw.get("type", "image" if name in IMAGE_ROLES else derived_kind or _value_type(current))
    if kind != derived_kind:
        # Declared as another type than the node's (an int fps for a FLOAT input): its range is not ours.
        options = {}
    if kind not in TYPES:
        raise TemplateError(f"{where}: 'type' must be one of {', '.join(TYPES)}")
    if (kind == "image") != (name in IMAGE_ROLES):
        raise TemplateError(
            f"{where}: only {', '.join(IMAGE_ROLES)} are images, and they are always of type image"
        )
    for key in ("label", "help"):
        if key in raw and not isinstance(raw[key], str):
            raise TemplateError(f"{where}: {key!r} must be text")
    label = raw.get("label") or _label(name)
    help_text = raw.get("help", str(options.get("tooltip") or ""))
    if kind == "image":
        return Parameter(name, "image", label, help_text or _IMAGE_HELP[name])
    default = raw.get("default", current)
    if kind in ("int", "float"):
        bounds = {}
        for key in ("min", "max", "step"):
            value = raw.get(key, options.get(key))
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise TemplateError(f"{where}: {key!r} must be a number")
            if kind == "int" and value is not None and not float(value).is_integer():
                raise TemplateError(f"{where}: {key!r} of an int parameter must be a whole number")
            bounds[key] = int(value) if kind == "int" and value is not None else value
        low, high = bounds["min"], bounds["max"]
        if low is not None and high is not None and low > high:
            raise TemplateError(f"{where}: 'min' ({low}) is above 'max' ({high})")
        # A declaration may narrow what the node takes, never widen it: ComfyUI would refuse the value.
        for key, limit in (("min", options.get("min")), ("max", options.get("max"))):
            value = bounds[key]
            if value is not None and limit is not None and (value < limit if key == "min" else value > limit):
                raise TemplateError(
                    f"{where}: {key!r} {value} is outside what {name}'s node input accepts ({limit})"
                )
        if bounds["step"] is not None and bounds["step"] <= 0:
            raise TemplateError(f"{where}: 'step' must be above 0")
        step = bounds["step"] if kind == "float" else bounds["step"] or 1
        return _made(Parameter(name, kind, label, help_text, default, low, high, step), where)
    if kind == "choice":
        choices = raw.get("choices", spec_choices)
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise TemplateError(f"{where}: 'choices' must be a non-empty list of text")
        if spec_choices:
            foreign = [c for c in choices if c not in spec_choices]
            if foreign:
                raise TemplateError(f"{where}: the node input does not accept {', '.join(foreign)}")
        return _made(Parameter(name, "choice", label, help_text, default, choices=tuple(choices)), where)
    return _made(Parameter(name, "text", label, help_text, default), where)


def _made(parameter: Parameter, where: str) -> Parameter:
    """The parameter, once its default is one of its own values (6.0 for an int is 6)."""
    try:
        return replace(parameter, default=parameter.check(parameter.default))
    except ValueError as exc:
        raise TemplateError(f"{where}: the default is not allowed: {exc}") from None
