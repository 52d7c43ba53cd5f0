"""``python -m services.publisher``: the publisher stage service."""

from services.publisher.handler import build_handler
from services.publisher.settings import PublisherSettings
from shared.events import PrintifyWebhookReceived, ProductCreated
from shared.service import main
from shared.topics import PUBLISHER

if __name__ == "__main__":
    main(
        PUBLISHER,
        PublisherSettings,
        build_handler,
        accept=(ProductCreated, PrintifyWebhookReceived),
    )
