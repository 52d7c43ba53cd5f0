"""``python -m simulators.meta [--host H] [--port N]``."""

from simulators.common import main
from simulators.meta import create_app

main(create_app, description="Meta Graph API (Commerce catalog) simulator", port=8194)
