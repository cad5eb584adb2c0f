"""Scene values into a ComfyUI API-format workflow. Pure Python, no Django.

A template's bindings say where each scene parameter is written:
``{"prompt": [{"node": "6", "input": "text"}], "seed": [{"node": "3", "input": "seed"}]}``.
A binding may also be a single ``{"node", "input"}`` object.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# TemplateError lives with the parameters (the lower module); callers keep importing it from here.
from .workflow_parameters import IMAGE_ROLES, NAME, Parameter, TemplateError, parse_parameters

# The parameters a scene can feed into a workflow. `filename_prefix` carries the
# attempt id: ComfyUI serves an identical prompt from its cache and writes no new
# file, so every attempt must change an input of the save node.
VALUE_PARAMETERS = (
    "prompt",
    "negative_prompt",
    "seed",
    "width",
    "height",
    "steps",
    "cfg",
    "denoise",
    "filename_prefix",
)
# Image parameters name a LoadImage-style input; at render time the image is
# uploaded to the backend and the input is set to the name the server gave it.
IMAGE_PARAMETERS = IMAGE_ROLES
KNOWN_PARAMETERS = VALUE_PARAMETERS + IMAGE_PARAMETERS
REQUIRED_PARAMETERS = ("filename_prefix",)


def is_link(value: Any) -> bool:
    """Whether an input value is a link to another node's output: `["<node id>", <slot>]`."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


@dataclass(frozen=True)
class Target:
    node: str
    input: str


@dataclass(frozen=True)
class TemplateSpec:
    slug: str
    name: str
    description: str
    version: int
    graph: dict[str, Any]
    bindings: dict[str, list[Target]]
    sha256: str
    parameters: tuple[Parameter, ...] = ()

    def bindings_as_json(self) -> dict[str, list[dict[str, str]]]:
        return {
            name: [{"node": t.node, "input": t.input} for t in targets]
            for name, targets in self.bindings.items()
        }

    def parameters_as_json(self) -> list[dict[str, Any]]:
        return [p.as_json() for p in self.parameters]


def parse_bindings(
    raw: Any, graph: dict[str, Any], *, where: str, declared: Any = None
) -> dict[str, list[Target]]:
    """Bindings of the known scene parameters, and of the template's own declared in `declared`."""
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: 'bindings' must be an object of parameter -> targets")
    own = set(declared) if isinstance(declared, dict) else set()
    parsed: dict[str, list[Target]] = {}
    for name, value in raw.items():
        if name not in KNOWN_PARAMETERS and name not in own:
            raise TemplateError(
                f"{where}: binding {name!r} is not a scene parameter (known: {', '.join(KNOWN_PARAMETERS)}); "
                "a template's own parameter needs a declaration under 'parameters'"
            )
        if not NAME.match(name):
            raise TemplateError(f"{where}: binding {name!r}: names are lowercase letters, digits and _")
        items = value if isinstance(value, list) else [value]
        targets = []
        for item in items:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("node"), str)
                or not isinstance(item.get("input"), str)
            ):
                raise TemplateError(f'{where}: binding {name!r} needs {{"node": "<id>", "input": "<name>"}}')
            node = graph.get(item["node"])
            if not isinstance(node, dict):
                raise TemplateError(
                    f"{where}: binding {name!r} points at node {item['node']!r}, which is not in the workflow"
                )
            inputs = node.get("inputs", {})
            if item["input"] not in inputs:
                raise TemplateError(
                    f"{where}: binding {name!r} points at input {item['input']!r} of node {item['node']!r} "
                    f"({node.get('class_type')}), which has no such input"
                )
            if isinstance(inputs[item["input"]], list):
                raise TemplateError(
                    f"{where}: binding {name!r} points at input {item['input']!r} of node {item['node']!r}, "
                    "which is a link to another node, not a value"
                )
            targets.append(Target(node=item["node"], input=item["input"]))
        parsed[name] = targets
    missing = [name for name in REQUIRED_PARAMETERS if name not in parsed]
    if missing:
        raise TemplateError(f"{where}: bindings must include {', '.join(missing)}")
    return parsed


def parse_graph(raw: Any, *, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise TemplateError(f"{where}: 'workflow' must be a non-empty ComfyUI API-format object")
    for node_id, node in raw.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise TemplateError(
                f"{where}: node {node_id!r} has no class_type; export the workflow in API format"
            )
        if not isinstance(node.get("inputs", {}), dict):
            raise TemplateError(f"{where}: node {node_id!r} has inputs that are not an object")
    return raw


def load_template_file(path: Path, *, object_info: dict[str, Any] | None = None) -> TemplateSpec:
    where = path.name
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{where}: cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    return spec_from_document(data, slug=path.stem, where=where, text=text, object_info=object_info)


def spec_from_document(
    data: Any,
    *,
    slug: str,
    where: str,
    text: str | None = None,
    object_info: dict[str, Any] | None = None,
) -> TemplateSpec:
    """A template from its document ({"name", "description", "version", "bindings", "parameters",
    "workflow"}); `object_info` types the bound inputs that have no declaration."""
    if not isinstance(data, dict):
        raise TemplateError(f"{where}: must hold a JSON object")
    graph = parse_graph(data.get("workflow"), where=where)
    version = data.get("version", 1)
    if not isinstance(version, int) or version < 1:
        raise TemplateError(f"{where}: 'version' must be a positive integer")
    canonical = text if text is not None else json.dumps(data, sort_keys=True)
    declared = data.get("parameters")
    bindings = parse_bindings(data.get("bindings"), graph, where=where, declared=declared)
    bound = {name: [(t.node, t.input) for t in targets] for name, targets in bindings.items()}
    return TemplateSpec(
        slug=slug,
        name=str(data.get("name") or slug),
        description=str(data.get("description") or ""),
        version=version,
        graph=graph,
        bindings=bindings,
        sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        parameters=tuple(parse_parameters(declared, bound, graph, object_info=object_info, where=where)),
    )


def bind_workflow(
    graph: dict[str, Any], bindings: dict[str, list[Target]], values: dict[str, Any]
) -> dict[str, Any]:
    """A copy of `graph` with each bound value written to its targets.

    Parameters without a value (None) leave the template's own value in place.
    """
    bound = copy.deepcopy(graph)
    for name, targets in bindings.items():
        value = values.get(name)
        if value is None:
            continue
        for target in targets:
            bound[target.node]["inputs"][target.input] = value
    return bound


def targets_from_json(raw: dict[str, list[dict[str, str]]]) -> dict[str, list[Target]]:
    return {
        name: [Target(node=t["node"], input=t["input"]) for t in targets] for name, targets in raw.items()
    }
