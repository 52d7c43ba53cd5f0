"""``python -m simulators.comfyui [--host H] [--port N]``."""

from simulators.comfyui import create_app
from simulators.common import main

main(create_app, description="A ComfyUI simulator", port=8188)
