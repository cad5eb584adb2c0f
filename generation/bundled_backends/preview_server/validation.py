"""Prompt validation that answers with ComfyUI's error shapes and wording.

This follows execution.validate_prompt / validate_inputs of ComfyUI 0.3.64
closely, including its quirks (see the comments), because clients match on
the `type`, `message` and `details` strings.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from typing import Any

from .nodes import NODE_TYPES, NodeType, lookup
from .settings import PreviewSettings

Error = dict[str, Any]


@dataclasses.dataclass
class ValidationResult:
    ok: bool
    error: Error | None
    good_outputs: list[str]
    node_errors: dict[str, Any]


def full_type_name(exc_type: type[BaseException]) -> str:
    module = exc_type.__module__
    if module == "builtins":
        return exc_type.__qualname__
    return f"{module}.{exc_type.__qualname__}"


def _convert(input_type: Any, value: Any) -> Any:
    if input_type == "INT":
        return int(value)
    if input_type == "FLOAT":
        return float(value)
    if input_type == "STRING":
        return str(value)
    if input_type == "BOOLEAN":
        return bool(value)
    return value


def _accepts(received_type: Any, input_type: Any) -> bool:
    """ComfyUI's validate_node_input: equal, wildcard, or overlapping comma-separated types."""
    if not received_type != input_type:
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {t.strip() for t in received_type.split(",")}
    wanted = {t.strip() for t in input_type.split(",")}
    if "*" in received or "*" in wanted:
        return True
    return bool(received & wanted)


class _Validator:
    def __init__(self, settings: PreviewSettings, prompt: dict[str, Any]) -> None:
        self.settings = settings
        self.prompt = prompt
        # Insertion order matters: node_errors is built by walking this dict.
        self.validated: dict[str, tuple[bool, list[Error], str]] = {}
        self._visiting: set[str] = set()

    def validate_inputs(self, unique_id: str) -> tuple[bool, list[Error], str]:
        if unique_id in self.validated:
            return self.validated[unique_id]
        if unique_id in self._visiting:
            # A cycle; ComfyUI recurses until Python gives up, which is what this reports.
            raise RecursionError("maximum recursion depth exceeded")
        self._visiting.add(unique_id)
        try:
            result = self._validate_node(unique_id)
        finally:
            self._visiting.discard(unique_id)
        self.validated[unique_id] = result
        return result

    def _validate_node(self, unique_id: str) -> tuple[bool, list[Error], str]:
        node = self.prompt[unique_id]
        inputs = node["inputs"]
        node_type = NODE_TYPES[node["class_type"]]
        errors: list[Error] = []
        valid = True

        for name, category in node_type.input_order():
            spec = node_type.input_spec(self.settings, name)
            assert spec is not None
            input_type, extra_info = spec
            info = [input_type, extra_info]
            if name not in inputs:
                if category == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": f"{name}",
                            "extra_info": {"input_name": name},
                        }
                    )
                continue

            value = inputs[name]
            if isinstance(value, list):
                link_ok = self._check_link(unique_id, name, value, input_type, info, errors)
                if link_ok is False:
                    valid = False
                continue
            error = self._check_widget(node_type, inputs, name, value, input_type, extra_info, info)
            if error is not None:
                errors.append(error)

        if node_type.custom_validation is not None and all(
            n in inputs for n in node_type.custom_validation_inputs
        ):
            outcome = node_type.custom_validation(self.settings, inputs)
            if outcome is not True:
                for name in node_type.custom_validation_inputs:
                    details = name if outcome is False else f"{name} - {outcome}"
                    errors.append(
                        {
                            "type": "custom_validation_failed",
                            "message": "Custom validation failed for node",
                            "details": details,
                            "extra_info": {"input_name": name},
                        }
                    )

        if errors or valid is not True:
            return (False, errors, unique_id)
        return (True, [], unique_id)

    def _check_link(
        self,
        unique_id: str,
        name: str,
        value: list[Any],
        input_type: Any,
        info: list[Any],
        errors: list[Error],
    ) -> bool | None:
        if len(value) != 2:
            errors.append(
                {
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": f"{name}",
                    "extra_info": {"input_name": name, "input_config": info, "received_value": value},
                }
            )
            return None
        source_id = value[0]
        # These lookups raise KeyError/IndexError on purpose: ComfyUI reports them as
        # exception_during_validation on the output node, with the exception text as details.
        source_class = self.prompt[source_id]["class_type"]
        received_type = NODE_TYPES[source_class].output_types[value[1]]
        if not _accepts(received_type, input_type):
            errors.append(
                {
                    "type": "return_type_mismatch",
                    "message": "Return type mismatch between linked nodes",
                    "details": f"{name}, received_type({received_type}) mismatch input_type({input_type})",
                    "extra_info": {
                        "input_name": name,
                        "input_config": info,
                        "received_type": received_type,
                        "linked_node": value,
                    },
                }
            )
            return None
        try:
            upstream = self.validate_inputs(source_id)
        except Exception as exc:
            exc_type, _, tb = sys.exc_info()
            assert exc_type is not None
            self.validated[source_id] = (
                False,
                [
                    {
                        "type": "exception_during_inner_validation",
                        "message": "Exception when validating inner node",
                        "details": str(exc),
                        "extra_info": {
                            "input_name": name,
                            "input_config": info,
                            "exception_message": str(exc),
                            "exception_type": full_type_name(exc_type),
                            "traceback": traceback.format_tb(tb),
                            "linked_node": value,
                        },
                    }
                ],
                source_id,
            )
            return False
        return False if upstream[0] is False else True

    def _check_widget(
        self,
        node_type: NodeType,
        inputs: dict[str, Any],
        name: str,
        value: Any,
        input_type: Any,
        extra_info: dict[str, Any],
        info: list[Any],
    ) -> Error | None:
        if isinstance(value, dict) and "__value__" in value:
            value = value["__value__"]
            inputs[name] = value
        try:
            value = _convert(input_type, value)
        except Exception as exc:
            return {
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {input_type} value",
                "details": f"{name}, {value}, {exc}",
                "extra_info": {
                    "input_name": name,
                    "input_config": info,
                    "received_value": value,
                    "exception_message": str(exc),
                },
            }
        # Validation writes the converted value back: /queue and /history echo 8.0 for a posted 8.
        inputs[name] = value
        if name in node_type.custom_validation_inputs:
            return None
        if "min" in extra_info and value < extra_info["min"]:
            return {
                "type": "value_smaller_than_min",
                "message": "Value {} smaller than min of {}".format(value, extra_info["min"]),
                "details": f"{name}",
                "extra_info": {"input_name": name, "input_config": info, "received_value": value},
            }
        if "max" in extra_info and value > extra_info["max"]:
            return {
                "type": "value_bigger_than_max",
                "message": "Value {} bigger than max of {}".format(value, extra_info["max"]),
                "details": f"{name}",
                "extra_info": {"input_name": name, "input_config": info, "received_value": value},
            }
        # Newer-schema nodes declare "COMBO" and keep the names under "options".
        combo_options = extra_info.get("options", []) if input_type == "COMBO" else input_type
        if isinstance(combo_options, list) and value not in combo_options:
            # Long lists (e.g. every model file) are not echoed back.
            if len(combo_options) > 20:
                list_info = f"(list of length {len(combo_options)})"
                input_config = None
            else:
                list_info = str(combo_options)
                input_config = info
            return {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": f"{name}: '{value}' not in {list_info}",
                "extra_info": {"input_name": name, "input_config": input_config, "received_value": value},
            }
        return None


def _invalid_prompt(message: str, node_id: str) -> ValidationResult:
    error = {
        "type": "invalid_prompt",
        "message": message,
        "details": f"Node ID '#{node_id}'",
        "extra_info": {},
    }
    return ValidationResult(False, error, [], {})


def validate_prompt(
    settings: PreviewSettings, prompt: dict[str, Any], partial_targets: list[str] | None
) -> ValidationResult:
    """Validate an API-format prompt; mutates it to hold the converted widget values."""
    outputs: list[str] = []
    for node_id in prompt:
        node = prompt[node_id]
        # `in` on a non-dict node (e.g. a string) is how ComfyUI ends up here too.
        if "class_type" not in node:
            return _invalid_prompt(
                "Cannot execute because a node is missing the class_type property.", node_id
            )
        class_type = node["class_type"]
        node_type = lookup(settings, class_type)
        if node_type is None:
            return _invalid_prompt(f"Cannot execute because node {class_type} does not exist.", node_id)
        if node_type.is_output and (partial_targets is None or node_id in partial_targets):
            outputs.append(node_id)

    if not outputs:
        error = {
            "type": "prompt_no_outputs",
            "message": "Prompt has no outputs",
            "details": "",
            "extra_info": {},
        }
        return ValidationResult(False, error, [], {})

    # ComfyUI walks a set here, so its order is hash-dependent; reverse insertion order
    # reproduces the order seen in the recorded runs.
    outputs.reverse()
    validator = _Validator(settings, prompt)
    good_outputs: list[str] = []
    failed: list[tuple[str, list[Error]]] = []
    node_errors: dict[str, Any] = {}
    for output_id in outputs:
        try:
            valid, reasons, _ = validator.validate_inputs(output_id)
        except Exception as exc:
            exc_type, _, tb = sys.exc_info()
            assert exc_type is not None
            valid = False
            reasons = [
                {
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": str(exc),
                    "extra_info": {
                        "exception_type": full_type_name(exc_type),
                        "traceback": traceback.format_tb(tb),
                    },
                }
            ]
            validator.validated[output_id] = (False, reasons, output_id)

        if valid is True:
            good_outputs.append(output_id)
            continue
        failed.append((output_id, reasons))
        # Like ComfyUI, every failing node seen so far is charged to this output,
        # even one that is not upstream of it.
        for node_id, (node_valid, node_reasons, _) in validator.validated.items():
            if node_valid is True or not node_reasons:
                continue
            if node_id not in node_errors:
                node_errors[node_id] = {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                }
            node_errors[node_id]["dependent_outputs"].append(output_id)

    if not good_outputs:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in failed for e in reasons)
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return ValidationResult(False, error, [], node_errors)
    return ValidationResult(True, None, good_outputs, node_errors)
