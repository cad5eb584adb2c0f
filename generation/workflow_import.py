"""Turning a workflow exported with ComfyUI's "Save (API)" into a template document. Pure Python, no Django.

`detect_bindings` finds where the common scene parameters go by following the
graph's links the way the data flows; `template_document` wraps a graph and its
bindings into the file format of `workflows/*.json` and checks it with the same
rules `workflow_binding.load_template_file` applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .workflow_binding import KNOWN_PARAMETERS, TemplateError, is_link, parse_bindings, parse_graph

Graph = dict[str, Any]
Bindings = dict[str, list[dict[str, str]]]

SAMPLER_VALUES = {
    "KSampler": {"seed": "seed", "steps": "steps", "cfg": "cfg", "denoise": "denoise"},
    "KSamplerAdvanced": {"seed": "noise_seed", "steps": "steps", "cfg": "cfg"},
}
# Nodes that set the output size. SVD's conditioning node makes its latent itself.
SIZE_NODES = ("EmptyLatentImage", "EmptySD3LatentImage", "SVD_img2vid_Conditioning")
SAVE_NODES = (
    "SaveImage",
    "SaveAnimatedWEBP",
    "SaveAnimatedPNG",
    "SaveVideo",
    "SaveWEBM",
    "SaveAudio",
    "SaveAudioMP3",
    "SaveAudioOpus",
)
# The prompt inputs of the text encoders (CLIPTextEncode, ...SDXL, ...SD3, ...Flux).
TEXT_INPUTS = ("text", "text_g", "text_l", "clip_l", "clip_g", "t5xxl", "prompt")
IMAGE_LOADERS = ("LoadImage",)
# A prompt may pass through these on its way to the sampler (ControlNetApplyAdvanced, ConditioningSetArea...).
_CONDITIONING_INPUTS = ("conditioning", "conditioning_to", "conditioning_1", "cond")
# How far a LoadImage output is followed through image operations (scale, crop, invert...).
_MAX_IMAGE_HOPS = 4


def _literal(node: dict[str, Any], name: str) -> bool:
    inputs = node.get("inputs", {})
    return name in inputs and not isinstance(inputs[name], list)


def _ordered(graph: Graph) -> Iterator[tuple[str, dict[str, Any]]]:
    # Numeric ids in number order, so detected targets come out in the order people read the graph.
    def key(node_id: str) -> tuple[int, int | str]:
        return (0, int(node_id)) if node_id.isdigit() else (1, node_id)

    for node_id in sorted(graph, key=key):
        yield node_id, graph[node_id]


def _consumers(graph: Graph, source_id: str, slot: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(node id, input name, node) for every input linked to output `slot` of `source_id`."""
    for node_id, node in _ordered(graph):
        for name, value in node.get("inputs", {}).items():
            if is_link(value) and value[0] == source_id and value[1] == slot:
                yield node_id, name, node


def _text_encoders(graph: Graph, link: Any, side: str, seen: set[str]) -> list[str]:
    """Ids of the text encoders whose conditioning reaches a sampler's `side` input through `link`."""
    if not is_link(link) or link[0] in seen or link[0] not in graph:
        return []
    seen.add(link[0])
    node = graph[link[0]]
    inputs = node.get("inputs", {})
    if "TextEncode" in str(node.get("class_type", "")):
        return [link[0]]
    # ControlNetApplyAdvanced and friends carry positive and negative side by side; keep to our side.
    if side in inputs:
        return _text_encoders(graph, inputs[side], side, seen)
    found: list[str] = []
    for name in _CONDITIONING_INPUTS:
        if name in inputs:
            found += _text_encoders(graph, inputs[name], side, seen)
    return found


def _prompt_targets(graph: Graph) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    encoders: dict[str, list[str]] = {"positive": [], "negative": []}
    for _node_id, node in _ordered(graph):
        for side in ("positive", "negative"):
            link = node.get("inputs", {}).get(side)
            for encoder in _text_encoders(graph, link, side, set()):
                if encoder not in encoders[side]:
                    encoders[side].append(encoder)
    # One encoder feeding both sides is the prompt; writing the negative there would overwrite it.
    encoders["negative"] = [e for e in encoders["negative"] if e not in encoders["positive"]]

    def targets(ids: list[str]) -> list[dict[str, str]]:
        return [
            {"node": node_id, "input": name}
            for node_id in ids
            for name in TEXT_INPUTS
            if _literal(graph[node_id], name) and isinstance(graph[node_id]["inputs"][name], str)
        ]

    return targets(encoders["positive"]), targets(encoders["negative"])


def _image_role(graph: Graph, node_id: str, hops: int = 0) -> str | None:
    """What the IMAGE output of `node_id` is used as, looking through plain image operations."""
    roles: list[str] = []
    for consumer_id, input_name, consumer in _consumers(graph, node_id, 0):
        class_type = str(consumer.get("class_type", ""))
        if class_type.startswith("VAEEncode") or input_name == "init_image":
            roles.append("init_image")
        elif class_type.startswith("ControlNetApply"):
            roles.append("control_image")
        elif "IPAdapter" in class_type or class_type.startswith("CLIPVision"):
            roles.append("reference_image")
        elif class_type in SAVE_NODES:
            # Saved without sampling (an upscale): the image is what the render works on.
            roles.append("init_image")
        elif hops < _MAX_IMAGE_HOPS and (class_type.startswith("Image") or "Upscale" in class_type):
            role = _image_role(graph, consumer_id, hops + 1)
            if role is not None:
                roles.append(role)
    for role in ("init_image", "control_image", "reference_image"):
        if role in roles:
            return role
    return None


def detect_bindings(graph: Graph) -> Bindings:
    """Where prompt, seed, size, image and filename_prefix go in an API-format graph.

    Only inputs that hold a value are bound; an input fed by a link is left to the graph.
    """
    found: dict[str, list[dict[str, str]]] = {name: [] for name in KNOWN_PARAMETERS}
    found["prompt"], found["negative_prompt"] = _prompt_targets(graph)
    for node_id, node in _ordered(graph):
        class_type = node.get("class_type")
        for parameter, input_name in SAMPLER_VALUES.get(str(class_type), {}).items():
            if _literal(node, input_name):
                found[parameter].append({"node": node_id, "input": input_name})
        if class_type in SIZE_NODES:
            for parameter in ("width", "height"):
                if _literal(node, parameter):
                    found[parameter].append({"node": node_id, "input": parameter})
        if class_type in SAVE_NODES and _literal(node, "filename_prefix"):
            found["filename_prefix"].append({"node": node_id, "input": "filename_prefix"})
        if class_type in IMAGE_LOADERS and _literal(node, "image"):
            role = _image_role(graph, node_id)
            if role is not None:
                found[role].append({"node": node_id, "input": "image"})
    return {name: targets for name, targets in found.items() if targets}


def _refuse_other_formats(graph: Any, where: str) -> None:
    if isinstance(graph, dict) and isinstance(graph.get("nodes"), list) and "links" in graph:
        raise TemplateError(
            f"{where}: this is a UI workflow; use Save (API) in ComfyUI (enable the dev mode options "
            "in older versions) and import that file"
        )
    if isinstance(graph, dict) and "workflow" in graph and "bindings" in graph:
        raise TemplateError(f"{where}: this is already a template document, not an exported workflow")


def _check_links(graph: Graph, where: str) -> None:
    for node_id, node in graph.items():
        for name, value in node.get("inputs", {}).items():
            if is_link(value) and value[0] not in graph:
                raise TemplateError(
                    f"{where}: input {name!r} of node {node_id!r} ({node['class_type']}) links to node "
                    f"{value[0]!r}, which is not in the workflow"
                )


def template_document(
    *,
    name: str,
    description: str,
    graph: dict[str, Any],
    bindings: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The template file document for `graph`: detected bindings unless `bindings` is given, checked.

    `parameters` are declarations (a new version's, carried from the one before); those of names
    the bindings no longer have are left out.
    """
    where = name.strip() or "workflow"
    if not name.strip():
        raise TemplateError("a template needs a name")
    _refuse_other_formats(graph, where)
    parse_graph(graph, where=where)
    _check_links(graph, where)
    if bindings is None:
        bindings = detect_bindings(graph)
        if "filename_prefix" not in bindings:
            raise TemplateError(
                f"{where}: no save node with a filename_prefix value (one of {', '.join(SAVE_NODES)}); "
                "every render must write its output through one"
            )
    declared = {k: v for k, v in (parameters or {}).items() if isinstance(bindings, dict) and k in bindings}
    parse_bindings(bindings, graph, where=where, declared=declared)
    return {
        "name": name.strip(),
        "description": description,
        "version": 1,
        "bindings": bindings,
        "parameters": declared,
        "workflow": graph,
    }
