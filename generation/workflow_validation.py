"""A workflow checked against a backend's /object_info before it is submitted. Pure Python.

Catches what ComfyUI would reject, with messages that name the node, its class
and the input, and sorts the problems by what can be done about them: a node
type the server lacks (missing_node), a model file it lacks (missing_model,
another backend may have it), or a workflow that is wrong anywhere
(workflow_rejected).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from generation.providers.base import ErrorCode, ProviderError
from generation.workflow_binding import is_link

# Inputs whose allowed values are model files present on one server but maybe not another.
MODEL_INPUTS = frozenset(
    {
        "ckpt_name", "lora_name", "vae_name", "unet_name", "clip_name", "clip_name1", "clip_name2",
        "control_net_name", "upscale_model_name", "model_name", "style_model_name", "gligen_name",
        "ipadapter_file", "clip_vision", "preset",
    }
)  # fmt: skip
SEVERITY = {ErrorCode.MISSING_NODE: 0, ErrorCode.MISSING_MODEL: 1, ErrorCode.WORKFLOW_REJECTED: 2}


@dataclass(frozen=True)
class Problem:
    code: ErrorCode
    node_id: str
    class_type: str
    input_name: str
    message: str
    value: Any = None

    def describe(self) -> str:
        where = f"node {self.node_id} ({self.class_type})"
        if self.input_name:
            where += f" input {self.input_name}"
        return f"{where}: {self.message}"


def _options(spec: list[Any]) -> list[Any] | None:
    """The allowed values of an enum input, in either of ComfyUI's two spellings."""
    kind = spec[0] if spec else None
    if isinstance(kind, list):
        return kind
    if (
        kind == "COMBO"
        and len(spec) > 1
        and isinstance(spec[1], dict)
        and isinstance(spec[1].get("options"), list)
    ):
        return spec[1]["options"]
    return None


def _check_number(kind: str, value: Any, options: dict[str, Any]) -> str | None:
    try:
        number = int(value) if kind == "INT" else float(value)
    except (TypeError, ValueError):
        return f"{value!r} is not a{'n integer' if kind == 'INT' else ' number'}"
    if kind == "FLOAT" and not math.isfinite(number):
        return f"{value!r} is not a finite number"
    if "min" in options and number < options["min"]:
        return f"{number} is below the minimum of {options['min']}"
    if "max" in options and number > options["max"]:
        return f"{number} is above the maximum of {options['max']}"
    return None


def find_problems(
    graph: dict[str, Any], object_info: dict[str, Any], *, ignore: frozenset[tuple[str, str]] = frozenset()
) -> list[Problem]:
    """Every problem ComfyUI would find; `ignore` names (node, input) pairs filled in at submit (uploads)."""
    problems: list[Problem] = []
    for node_id, node in graph.items():
        class_type = str(node.get("class_type", ""))
        info = object_info.get(class_type)
        if not isinstance(info, dict):
            problems.append(
                Problem(
                    ErrorCode.MISSING_NODE,
                    node_id,
                    class_type,
                    "",
                    "this node type is not installed on the server",
                )
            )
            continue
        inputs = node.get("inputs") or {}
        declared = info.get("input") or {}
        required = declared.get("required") or {}
        optional = declared.get("optional") or {}
        for name in required:
            if name not in inputs:
                problems.append(
                    Problem(
                        ErrorCode.WORKFLOW_REJECTED,
                        node_id,
                        class_type,
                        name,
                        "this required input is missing",
                    )
                )
        for name, value in inputs.items():
            spec = required.get(name) or optional.get(name)
            if spec is None or (node_id, name) in ignore:
                continue  # ComfyUI ignores inputs it does not declare
            problem = _check_input(graph, object_info, node_id, class_type, name, value, spec)
            if problem is not None:
                problems.append(problem)
    return sorted(problems, key=lambda p: (SEVERITY[p.code], p.node_id, p.input_name))


def _check_input(
    graph: dict[str, Any],
    object_info: dict[str, Any],
    node_id: str,
    class_type: str,
    name: str,
    value: Any,
    spec: list[Any],
) -> Problem | None:
    def problem(code: ErrorCode, message: str) -> Problem:
        return Problem(code, node_id, class_type, name, message, value)

    if is_link(value):
        source = graph.get(value[0])
        if source is None:
            return problem(
                ErrorCode.WORKFLOW_REJECTED, f"links to node {value[0]}, which is not in the workflow"
            )
        outputs = (object_info.get(str(source.get("class_type"))) or {}).get("output")
        if isinstance(outputs, list) and not 0 <= value[1] < len(outputs):
            return problem(
                ErrorCode.WORKFLOW_REJECTED,
                f"links to output {value[1]} of node {value[0]}, which has {len(outputs)} output(s)",
            )
        return None
    options = _options(spec)
    if options is not None:
        if value in options:
            return None
        if name in MODEL_INPUTS:
            return problem(ErrorCode.MISSING_MODEL, f"the server has no {value!r}")
        shown = ", ".join(map(repr, options[:8])) + (", …" if len(options) > 8 else "")
        return problem(ErrorCode.WORKFLOW_REJECTED, f"{value!r} is not one of {shown}")
    kind = spec[0] if spec else None
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if kind in ("INT", "FLOAT"):
        message = _check_number(kind, value, extra)
        return problem(ErrorCode.WORKFLOW_REJECTED, message) if message else None
    return None


def validate_workflow(
    graph: dict[str, Any], object_info: dict[str, Any], *, ignore: frozenset[tuple[str, str]] = frozenset()
) -> None:
    """Raise one ProviderError for every problem found, with the gravest code."""
    problems = find_problems(graph, object_info, ignore=ignore)
    if not problems:
        return
    codes = {problem.code for problem in problems}
    # A missing model sends the render to another backend, which only helps when nothing else is wrong.
    code = (
        ErrorCode.WORKFLOW_REJECTED
        if codes == {ErrorCode.MISSING_MODEL, ErrorCode.WORKFLOW_REJECTED}
        else problems[0].code
    )
    raise ProviderError(
        code,
        "; ".join(p.describe() for p in problems),
        detail={
            "problems": [
                {
                    "code": p.code.value,
                    "node_id": p.node_id,
                    "class_type": p.class_type,
                    "input": p.input_name,
                    "value": p.value if isinstance(p.value, str | int | float) else repr(p.value),
                }
                for p in problems
            ]
        },
    )


def models_used(graph: dict[str, Any]) -> set[tuple[str, str]]:
    """(input name, value) of every model file the workflow names; dispatch prefers backends that have them."""
    return {
        (name, value)
        for node in graph.values()
        for name, value in (node.get("inputs") or {}).items()
        if name in MODEL_INPUTS and isinstance(value, str)
    }


def has_model(object_info: dict[str, Any], input_name: str, value: str) -> bool:
    for info in object_info.values():
        declared = (info or {}).get("input") or {}
        for section in ("required", "optional"):
            spec = (declared.get(section) or {}).get(input_name)
            if spec is not None and value in (_options(spec) or []):
                return True
    return False
