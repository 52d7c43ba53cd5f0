"""``python -m simulators.etsy [--host H] [--port N]``."""

from simulators.common import main
from simulators.etsy import create_app

main(create_app, description="Etsy Open API v3 simulator", port=8192)
