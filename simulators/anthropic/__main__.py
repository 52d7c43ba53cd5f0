"""``python -m simulators.anthropic [--host H] [--port N]``."""

from simulators.anthropic import create_app
from simulators.common import main

main(create_app, description="Anthropic Messages API simulator", port=8190)
