"""``python -m simulators.tiktok [--host H] [--port N]``."""

from simulators.common import main
from simulators.tiktok import create_app

main(create_app, description="TikTok Shop Partner API simulator", port=8193)
