"""ComfyUI's checks on a submitted graph (``POST /prompt``), reported as ComfyUI reports them."""

from __future__ import annotations

from typing import Any

from simulators.comfyui.catalog import (
    LATENT_SOURCES,
    MAX_RESOLUTION,
    OUTPUT_NODES,
    REQUIRED_INPUTS,
    ModelFolders,
    combo,
)


def is_link(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
    )


def error(type_: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra}


def _graph_error(prompt: object) -> dict[str, Any] | None:
    """What makes ``prompt`` no graph at all, or one with nothing to output."""
    if not isinstance(prompt, dict) or not prompt:
        return error("invalid_prompt", "Prompt must be a non-empty object of nodes")
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            )
    if not any(n["class_type"] in OUTPUT_NODES for n in prompt.values()):
        return error("prompt_no_outputs", "Prompt has no outputs")
    return None


def _missing_inputs(class_type: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        error("required_input_missing", "Required input is missing", name, input_name=name)
        for name in REQUIRED_INPUTS.get(class_type, ())
        if name not in inputs
    ]


def _dangling_links(prompt: dict[str, Any], inputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        error(
            "exception_during_inner_validation",
            "Exception when validating inner node",
            f"{name}: linked node '{value[0]}' does not exist",
            input_name=name,
            exception_type="KeyError",
        )
        for name, value in inputs.items()
        if is_link(value) and str(value[0]) not in prompt
    ]


def _bad_choices(
    class_type: str, inputs: dict[str, Any], folders: ModelFolders, v3_combos_at_prompt: bool
) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for name, value in inputs.items():
        found = combo(class_type, name, folders)
        if found is None or is_link(value) or (found.v3 and not v3_combos_at_prompt):
            continue
        if value not in found.options:
            # As execution.py's validate_inputs words it, long lists (models) summarised.
            listed = len(found.options) > 20
            errors.append(
                error(
                    "value_not_in_list",
                    "Value not in list",
                    f"{name}: '{value}' not in "
                    + (f"(list of length {len(found.options)})" if listed else
                       str(list(found.options))),
                    input_name=name,
                    input_config=None if listed else found.spec,
                    received_value=value,
                )
            )  # fmt: skip
    return errors


def _bad_sizes(class_type: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if class_type == "ImageScale":
        for name in ("width", "height"):
            value = inputs.get(name)
            if not isinstance(value, int) or not 0 <= value <= MAX_RESOLUTION:
                errors.append(
                    error(
                        "invalid_input_type" if not isinstance(value, int) else
                        "value_bigger_than_max",
                        f"Value out of range 0..{MAX_RESOLUTION}",
                        f"{name}: {value}",
                        input_name=name,
                    )
                )  # fmt: skip
    if class_type in LATENT_SOURCES:
        for name in ("width", "height"):
            value = inputs.get(name)
            if isinstance(value, int) and not 16 <= value <= MAX_RESOLUTION:
                errors.append(
                    error(
                        "value_bigger_than_max" if value > 16 else "value_smaller_than_min",
                        f"Value out of range 16..{MAX_RESOLUTION}",
                        f"{name}: {value}",
                        input_name=name,
                    )
                )
    return errors


def _node_errors(
    prompt: dict[str, Any], node: dict[str, Any], folders: ModelFolders, v3_combos: bool
) -> list[dict[str, Any]]:
    inputs = node.get("inputs", {})
    errors: list[dict[str, Any]] = []
    if not isinstance(inputs, dict):
        errors.append(error("invalid_input_type", "Node inputs must be an object"))
        inputs = {}
    class_type = node["class_type"]
    return (
        errors
        + _missing_inputs(class_type, inputs)
        + _dangling_links(prompt, inputs)
        + _bad_choices(class_type, inputs, folders, v3_combos)
        + _bad_sizes(class_type, inputs)
    )


def validate_prompt(
    prompt: object,
    *,
    v3_combos_at_prompt: bool = False,
    folders: ModelFolders | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """ComfyUI's checks on a submitted graph: ``(error or None, node_errors)``. A V3 node's
    dropdown is checked here only with ``v3_combos_at_prompt`` (see COMBO_CHECKS)."""
    problem = _graph_error(prompt)
    if problem is not None or not isinstance(prompt, dict):
        return problem, {}
    folders = folders or ModelFolders()
    node_errors: dict[str, Any] = {}
    for node_id, node in prompt.items():
        errors = _node_errors(prompt, node, folders, v3_combos_at_prompt)
        if errors:
            node_errors[str(node_id)] = {
                "errors": errors,
                "dependent_outputs": [
                    k for k, n in prompt.items() if n["class_type"] in OUTPUT_NODES
                ],
                "class_type": node["class_type"],
            }
    if node_errors:
        return error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation"
        ), node_errors
    return None, {}
