"""A ComfyUI simulator: a real HTTP + websocket server speaking ComfyUI's own API.

Clients written against it work unchanged against a real ComfyUI:

- ``POST /prompt`` validates an API-format workflow and queues it (``{prompt_id, number,
  node_errors}``, or 400 ``{error, node_errors}`` exactly as ComfyUI reports a bad graph);
- ``GET /object_info[/{node_class}]``: ComfyUI's own description of the nodes the simulator
  knows, extracted from its source (simulators/contracts/comfyui/object_info.json, by
  ``extract.py`` there), dropdowns in both of ComfyUI's forms (V1 ``[[...], {...}]``, V3
  ``["COMBO", {"options": [...]}]``), models folders filled with this server's models:
  ``SIM_COMFYUI_CHECKPOINTS`` and ``SIM_COMFYUI_UPSCALE_MODELS`` (comma-separated) replace the
  default ones. Required inputs and dropdown values are checked from the same description. A
  V3 dropdown's value is checked when its node runs (``SIM_COMFYUI_COMBO_CHECK=execution``,
  ComfyUI 0.3.64: a missing upscale model fails every prompt with ``FileNotFoundError``) or
  at ``/prompt`` (``prompt``, a later ComfyUI: 400 ``value_not_in_list``);
- ``GET /history[/{prompt_id}]``, ``GET /view``, ``GET/POST /queue``, ``POST /interrupt``,
  ``GET /system_stats``;
- ``/ws?clientId=...`` streams ``status``, ``execution_start``, ``execution_cached``,
  ``executing``, ``progress``, ``executed``, ``execution_success`` / ``execution_error`` to the
  client that submitted the prompt.

Prompts run in ComfyUI's queue order on ``SIM_COMFYUI_WORKERS`` simulated GPUs (default 1, as a
real ComfyUI process runs one prompt at a time): lowest ``number`` first, where ``number`` counts
up per prompt, ``front: true`` makes it negative (ahead of everything queued normally; a later
front prompt goes before an earlier one, as in ComfyUI) and a client may send its own
``number``. Each takes
``SIM_COMFYUI_RENDER_MS`` (default 0), spread over the sampler's steps as progress events, and
"renders" a real PNG whose content is a pure function of positive prompt, seed, size and batch
index. ``SIM_COMFYUI_EXEC_FAILURE_RATE`` (default 0) makes a share of prompts fail in the
sampler as a CUDA out-of-memory would. Only the newest ``SIM_COMFYUI_HISTORY_MAX`` (default
10000) prompts are remembered; images are kept as their recipe and re-rendered on demand, so
memory stays small however many prompts run.

ComfyUI has no login of its own; one reached over a network sits behind a proxy that asks for
one. ``SIM_COMFYUI_BASIC_AUTH=user:password`` plays that proxy (nginx's ``auth_basic``): every
request, the websocket's included, needs those credentials as Basic auth, else 401 (the
websocket handshake is refused).

A render's pace: ``SIM_COMFYUI_RENDER_MS`` for the whole sampler run, flat; or, when that is 0,
``SIM_COMFYUI_STEP_MS`` a sampler step at 1024x1024, scaled with the latent's pixels (and batch)
as a GPU's time is, plus ``SIM_COMFYUI_UPSCALE_MS`` for each model upscale (both 0 unless
``SIM_PROFILE=realistic``: 120 ms and 1.5 s, :mod:`simulators.common.profile`).

Simulator-only endpoints: ``GET /_sim/books`` (counts) and ``GET/POST /_sim/comfyui`` (read or
change ``render_ms`` / ``step_ms`` / ``upscale_ms`` / ``exec_failure_rate`` / ``combo_check`` at
run time), besides ``/_sim/config`` from :func:`simulators.common.install_faults` and
``/_sim/requests`` (each request and each execution's interval, :mod:`simulators.common`).

The package is laid out like the API: ``app`` (wiring), ``settings`` (the knobs), ``catalog``
(the nodes and models), ``validation`` (``/prompt``'s checks), ``graph`` (reading a graph),
``render`` (the images), ``state`` (queue, history, GPUs), ``auth`` (the proxy's login) and
one ``routes_*`` module per area.
"""

from simulators.comfyui.app import create_app
from simulators.comfyui.catalog import (
    CHECKPOINTS,
    COMBO_CHECKS,
    CONTRACT_PATH,
    LATENT_SOURCES,
    OBJECT_INFO,
    SAMPLER_SEED_INPUT,
    TEXT_INPUTS,
    UPSCALE_MODELS,
)
from simulators.comfyui.render import render_png
from simulators.comfyui.state import ComfyConfig
from simulators.comfyui.validation import validate_prompt

__all__ = [
    "CHECKPOINTS",
    "COMBO_CHECKS",
    "CONTRACT_PATH",
    "LATENT_SOURCES",
    "OBJECT_INFO",
    "SAMPLER_SEED_INPUT",
    "TEXT_INPUTS",
    "UPSCALE_MODELS",
    "ComfyConfig",
    "create_app",
    "render_png",
    "validate_prompt",
]
