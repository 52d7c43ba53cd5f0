"""``python -m services.publisher``: the publisher of one sales channel (``CHANNEL``, printify
by default), its own consumer group of products.created."""

import os

from services.publisher.handler import accepts, build_handler
from services.publisher.settings import PublisherSettings
from shared.contract.topics import DEFAULT_CHANNEL, PUBLISHERS
from shared.pipeline.service import main

if __name__ == "__main__":
    channel = os.environ.get("CHANNEL", DEFAULT_CHANNEL).strip().lower() or DEFAULT_CHANNEL
    if channel not in PUBLISHERS:
        raise SystemExit(f"CHANNEL: unknown channel {channel!r} (have: {', '.join(PUBLISHERS)})")
    main(PUBLISHERS[channel], PublisherSettings, build_handler, accept=accepts(channel))
