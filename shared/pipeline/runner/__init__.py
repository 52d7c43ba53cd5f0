"""The shared Kafka runner: everything a stage service does besides its handler.

- :mod:`.model`: what a handler sees (``Output``, ``MessageContext``, ``Handler``) and the
  runner's settings;
- :mod:`.core`: ``StageRunner``, the loop: poll, start work, handle, produce, retry or
  dead-letter, drain;
- :mod:`.intake`: buffers per band, per-band slots, backpressure and delayed partitions;
- :mod:`.consumer`: the consumer's configuration and the calls queued for its poll thread;
- :mod:`.offsets`: the partitions owned and which of their offsets may be committed;
- :mod:`.failures`: where a failed message goes (``FailureRouter``: a delay topic or the DLQ),
  backoff, and the ``pod.*`` failure headers;
- :mod:`.headers`: the names of the ``pod.*`` headers, defined once;
- :mod:`.heartbeat`: the counters and the heartbeat an instance sends;
- :mod:`.producer`: the idempotent producer and acked sends (also the API's and the
  publisher watcher's).
"""

from shared.pipeline.runner.core import (
    StageRunner,
    install_signal_handlers,
    parse_message,
)
from shared.pipeline.runner.failures import header_int, message_headers
from shared.pipeline.runner.heartbeat import RunnerStats, heartbeat_event
from shared.pipeline.runner.intake import Intake
from shared.pipeline.runner.model import Handler, MessageContext, Output, RunnerSettings
from shared.pipeline.runner.offsets import OffsetTracker, OwnedPartitions
from shared.pipeline.runner.producer import (
    BrokerUnavailable,
    EventProducer,
    close_producer,
    make_producer,
    produce_async,
)

__all__ = [
    "BrokerUnavailable",
    "EventProducer",
    "Handler",
    "Intake",
    "MessageContext",
    "OffsetTracker",
    "Output",
    "OwnedPartitions",
    "RunnerSettings",
    "RunnerStats",
    "StageRunner",
    "close_producer",
    "header_int",
    "heartbeat_event",
    "install_signal_handlers",
    "make_producer",
    "message_headers",
    "parse_message",
    "produce_async",
]
