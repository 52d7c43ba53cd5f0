"""Reading a graph: the order its nodes run in, the sampler, and the images each output node
saves (:class:`Recipe`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulators.comfyui.catalog import (
    LATENT_SOURCES,
    MAX_BATCH,
    OUTPUT_NODES,
    SAMPLER_SEED_INPUT,
    TEXT_INPUTS,
    upscale_factor,
)
from simulators.comfyui.render import render_png
from simulators.comfyui.validation import is_link


@dataclass(frozen=True)
class Recipe:
    """Everything that determines one output image."""

    prompt: str
    seed: int
    width: int
    height: int
    index: int = 0
    out_width: int | None = None  # after the upscale nodes; None = as sampled
    out_height: int | None = None

    def render(self) -> bytes:
        """The PNG this recipe makes (:func:`render_png`)."""
        return render_png(
            self.prompt, self.seed, self.width, self.height, self.index,
            self.out_width, self.out_height,
        )  # fmt: skip


@dataclass
class Plan:
    """What executing a graph means to the simulator."""

    order: list[str]
    sampler: str | None
    steps: int
    recipes: dict[str, list[Recipe]]  # output node id -> images it saves
    prefixes: dict[str, str]
    # Latent pixels the sampler denoises at each step (width x height x batch).
    pixels: int = 512 * 512


def _upstream(prompt: dict[str, Any], node_id: str) -> list[str]:
    inputs = prompt[node_id].get("inputs", {})
    return [str(v[0]) for v in inputs.values() if is_link(v)]


def _follow(prompt: dict[str, Any], link: object, wanted: frozenset[str], via: str) -> str | None:
    """Walk ``link`` upstream through ``via`` inputs until a node of a ``wanted`` class."""
    for _ in range(16):
        if not is_link(link):
            return None
        node_id = str(link[0])  # type: ignore[index]
        node = prompt[node_id]
        if node["class_type"] in wanted:
            return node_id
        link = node.get("inputs", {}).get(via)
    return None


def plan_prompt(prompt: dict[str, Any]) -> Plan:
    """Execution order (dependencies first) and the image recipe of each output node."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for up in _upstream(prompt, node_id):
            visit(up)
        order.append(node_id)

    outputs = sorted((k for k, n in prompt.items() if n["class_type"] in OUTPUT_NODES), key=str)
    for out in outputs:
        visit(str(out))

    samplers = [n for n in order if prompt[n]["class_type"] in SAMPLER_SEED_INPUT]
    sampler = samplers[0] if samplers else None
    text, seed, steps, width, height, batch = "", 0, 1, 512, 512, 1
    if sampler is not None:
        s_inputs = prompt[sampler]["inputs"]
        seed = as_int(s_inputs.get(SAMPLER_SEED_INPUT[prompt[sampler]["class_type"]]), 0)
        steps = max(1, as_int(s_inputs.get("steps"), 1))
        enc = _follow(prompt, s_inputs.get("positive"), frozenset(TEXT_INPUTS), "conditioning")
        if enc is not None:
            cls = prompt[enc]["class_type"]
            text = " ".join(str(prompt[enc]["inputs"].get(k, "")) for k in TEXT_INPUTS[cls]).strip()
        latent = _follow(prompt, s_inputs.get("latent_image"), LATENT_SOURCES, "latent_image")
        if latent is not None:
            l_inputs = prompt[latent]["inputs"]
            width = as_int(l_inputs.get("width"), 512)
            height = as_int(l_inputs.get("height"), 512)
            batch = min(MAX_BATCH, max(1, as_int(l_inputs.get("batch_size"), 1)))
    recipes = {}
    for out in outputs:
        out_w, out_h = _scaled_size(prompt, out, width, height)
        recipes[out] = [Recipe(text, seed, width, height, i, out_w, out_h) for i in range(batch)]
    prefixes = {
        out: str(prompt[out].get("inputs", {}).get("filename_prefix", "ComfyUI")) for out in outputs
    }
    return Plan(order, sampler, steps, recipes, prefixes, width * height * batch)


def _scaled_size(prompt: dict[str, Any], output: str, width: int, height: int) -> tuple[int, int]:
    """The size of the images ``output`` saves: the sampled size through every upscale and
    scale node between the decoder and the output."""
    chain: list[str] = []
    link = prompt[output].get("inputs", {}).get("images")
    for _ in range(16):
        if not is_link(link):
            break
        node_id = str(link[0])
        if prompt[node_id]["class_type"] not in (
            "ImageUpscaleWithModel", "ImageScale", "ImageScaleBy"
        ):  # fmt: skip
            break
        chain.append(node_id)
        link = prompt[node_id].get("inputs", {}).get("image")
    for node_id in reversed(chain):  # from the decoder towards the output
        node = prompt[node_id]
        inputs = node.get("inputs", {})
        if node["class_type"] == "ImageUpscaleWithModel":
            loader = inputs.get("upscale_model")
            name = prompt[str(loader[0])]["inputs"].get("model_name") if is_link(loader) else None
            factor = upscale_factor(str(name))
            width, height = width * factor, height * factor
        elif node["class_type"] == "ImageScaleBy":
            by = float(inputs.get("scale_by", 1) or 1)
            width, height = max(1, round(width * by)), max(1, round(height * by))
        else:  # ImageScale: 0 keeps the aspect ratio
            w, h = as_int(inputs.get("width"), 0), as_int(inputs.get("height"), 0)
            if w and h:
                width, height = w, h
            elif w:
                width, height = w, max(1, round(height * w / width))
            elif h:
                width, height = max(1, round(width * h / height)), h
    return width, height


def as_int(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return default
