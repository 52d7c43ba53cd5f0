"""``python -m simulators.printify [--host H] [--port N]``."""

from simulators.common import main
from simulators.printify import create_app

main(create_app, description="Printify API v1 simulator", port=8189)
