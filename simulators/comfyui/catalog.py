"""What the simulated ComfyUI knows: the nodes (ComfyUI's ``/object_info``, extracted from its
source), the models in its folders, and the dropdowns both describe."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ComfyUI's /object_info for the nodes the simulator knows, derived from ComfyUI's source by
# simulators/contracts/comfyui/extract.py (its "_source" says which commit): served as is, with
# the models folders it leaves empty filled from this simulator's models.
CONTRACT_PATH = (
    Path(__file__).resolve().parent.parent / "contracts" / "comfyui" / "object_info.json"
)
CONTRACT: dict[str, Any] = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
OBJECT_INFO: dict[str, Any] = CONTRACT["object_info"]
FOLDER_INPUTS: dict[str, dict[str, str]] = CONTRACT["_folder_inputs"]
COMFYUI_VERSION = str(CONTRACT["_source"]["comfyui_version"])
OUTPUT_NODES = frozenset(c for c, info in OBJECT_INFO.items() if info["output_node"])
SAMPLER_SEED_INPUT = {"KSampler": "seed", "KSamplerAdvanced": "noise_seed"}
TEXT_INPUTS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeSDXL": ("text_g", "text_l")}
LATENT_SOURCES = frozenset({"EmptyLatentImage", "EmptySD3LatentImage"})
# ComfyUI allows 16384; the simulator stops lower so one bad request cannot eat gigabytes.
MAX_RESOLUTION = 8192
MAX_BATCH = 16
# Required inputs of the core nodes the simulator knows, as ComfyUI declares them; unknown node
# types are accepted as pass-through nodes so custom workflows still run (real ComfyUI would
# need the custom node).
REQUIRED_INPUTS: dict[str, tuple[str, ...]] = {
    cls: tuple(info["input_order"].get("required", ())) for cls, info in OBJECT_INFO.items()
}
# The upscale models in the simulated server's models/upscale_models folder, with their factor
# (``SIM_COMFYUI_UPSCALE_MODELS``, comma-separated, replaces them; a name's "4x"/"x2" gives
# the factor of one not listed here).
UPSCALE_MODELS = {"4x-UltraSharp.pth": 4, "RealESRGAN_x4plus.pth": 4, "RealESRGAN_x2plus.pth": 2}
# The checkpoints in the simulated server's models/checkpoints folder
# (``SIM_COMFYUI_CHECKPOINTS``, comma-separated, replaces them).
CHECKPOINTS = (
    "sd_xl_base_1.0.safetensors",
    "sd_xl_refiner_1.0.safetensors",
    "v1-5-pruned-emaonly.safetensors",
)
# When a V3 node's dropdown ("COMBO" form) is checked: ComfyUI 0.3.64 (the extract's source)
# checks only V1 lists in /prompt, so a missing upscale model fails when its node runs
# ("execution"); a later ComfyUI's validate_inputs checks both at /prompt ("prompt").
COMBO_CHECKS = ("execution", "prompt")


def upscale_factor(name: str) -> int:
    if name in UPSCALE_MODELS:
        return UPSCALE_MODELS[name]
    found = re.search(r"(\d+)x|x(\d+)", name)
    return int(found.group(1) or found.group(2)) if found else 1


def input_spec(info: dict[str, Any], name: str) -> list[Any] | None:
    inputs = info["input"]
    spec = inputs.get("required", {}).get(name) or inputs.get("optional", {}).get(name)
    return spec if isinstance(spec, list) else None


@dataclass(frozen=True)
class Combo:
    """A dropdown input as the simulated server serves it."""

    options: tuple[Any, ...]
    v3: bool  # written ["COMBO", {"options": [...]}] (a V3 node) rather than [[...], {...}]
    spec: list[Any]  # as validate_inputs reports it: [type or choices, settings]


def combo(class_type: str, name: str, folders: ModelFolders) -> Combo | None:
    """The choices of ``class_type``'s input ``name`` when it is a dropdown."""
    info = OBJECT_INFO.get(class_type)
    spec = input_spec(info, name) if info is not None else None
    if spec is None:
        return None
    folder = FOLDER_INPUTS.get(class_type, {}).get(name)
    if spec[0] == "COMBO":
        options = spec[1].get("options") if len(spec) > 1 else None
        if folder is not None:
            options = folders.files(folder)
        if options is None:
            return None
        return Combo(tuple(options), True, [spec[0], {**spec[1], "options": list(options)}])
    if isinstance(spec[0], list):
        options = folders.files(folder) if folder is not None else tuple(spec[0])
        return Combo(tuple(options), False, [list(options), spec[1] if len(spec) > 1 else {}])
    return None


def missing_model(node: dict[str, Any], folders: ModelFolders) -> tuple[str, str] | None:
    """``(folder, file)`` when ``node`` loads a model its server does not have: what a
    loader's ``folder_paths.get_full_path_or_raise`` fails on when the node runs."""
    inputs = node.get("inputs") or {}
    for name, folder in FOLDER_INPUTS.get(node["class_type"], {}).items():
        value = inputs.get(name)
        if isinstance(value, str) and value not in folders.files(folder):
            return folder, value
    return None


def object_info(folders: ModelFolders) -> dict[str, Any]:
    """``GET /object_info``: the extract, its models folders filled with this server's."""
    info = copy.deepcopy(OBJECT_INFO)
    for cls, inputs in FOLDER_INPUTS.items():
        for name, folder in inputs.items():
            spec = input_spec(info[cls], name)
            if spec is None:
                continue
            if spec[0] == "COMBO":
                spec[1]["options"] = list(folders.files(folder))
            else:
                spec[0] = list(folders.files(folder))
    return info


@dataclass(frozen=True)
class ModelFolders:
    """The files in the simulated server's models folders (sorted, as
    ``folder_paths.get_filename_list`` lists them)."""

    checkpoints: tuple[str, ...] = tuple(sorted(CHECKPOINTS))
    upscale_models: tuple[str, ...] = tuple(sorted(UPSCALE_MODELS))

    @classmethod
    def of(cls, checkpoints: str, upscale_models: str) -> ModelFolders:
        """From comma-separated names; an empty list keeps the defaults."""
        return cls(
            checkpoints=_names(checkpoints) or tuple(sorted(CHECKPOINTS)),
            upscale_models=_names(upscale_models) or tuple(sorted(UPSCALE_MODELS)),
        )

    def files(self, folder: str) -> tuple[str, ...]:
        """The files of one of the models folders."""
        if folder == "checkpoints":
            return self.checkpoints
        if folder == "upscale_models":
            return self.upscale_models
        return ()


def _names(raw: str) -> tuple[str, ...]:
    return tuple(sorted(c.strip() for c in raw.split(",") if c.strip()))
