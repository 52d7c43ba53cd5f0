"""``python -m shared.init``: create the topics and apply the migrations, then exit.

For deployments where the broker and database are given (compose, production); ``make up`` does
the same itself.
"""

from __future__ import annotations

import logging
import sys

from confluent_kafka.admin import AdminClient

from shared.db import migrate
from shared.errors import ConfigError
from shared.logs import setup_logging
from shared.settings import DatabaseSettings, KafkaSettings, load_settings
from shared.topics import ensure_topics, wait_for_broker

logger = logging.getLogger(__name__)


def main() -> int:
    """Topics and migrations; exit 0 when both are in place."""
    setup_logging("init")
    try:
        kafka = load_settings(KafkaSettings)
        db = load_settings(DatabaseSettings)
    except ConfigError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    wait_for_broker(kafka.bootstrap, timeout=120)
    outcome = ensure_topics(
        AdminClient(kafka.client_config()),
        default_partitions=kafka.kafka_partitions,
        replication_factor=kafka.kafka_replication_factor,
    )
    logger.info("topics ready changed=%s", {k: v for k, v in outcome.items() if v != "ok"})
    logger.info("migrations applied names=%s", migrate(db.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
