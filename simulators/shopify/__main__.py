"""``python -m simulators.shopify [--host H] [--port N]``."""

from simulators.common import main
from simulators.shopify import create_app

main(create_app, description="Shopify Admin GraphQL API simulator", port=8191)
