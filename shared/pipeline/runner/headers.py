"""The names of the ``pod.*`` Kafka headers, defined once.

The runner writes them on delay-topic copies and dead letters (:mod:`.failures`), the API on
the copies it replays (``services/api/routes/dlq.py``); the monitor reads them
(``services/monitor/dlq.py``) and ``shared/pipeline/asyncapi.py`` documents them. Values are UTF-8
text.
"""

from __future__ import annotations

# Why and where a message failed: on every delay-topic copy and dead letter.
ERROR_CLASS = "pod.error.class"
ERROR_MESSAGE = "pod.error.message"
ERROR_RETRYABLE = "pod.error.retryable"
# The stage input the message was first consumed from, kept on every retry hop.
ORIGINAL_TOPIC = "pod.original.topic"
ORIGINAL_PARTITION = "pod.original.partition"
ORIGINAL_OFFSET = "pod.original.offset"
FIRST_FAILURE_AT = "pod.first.failure.at"
STAGE = "pod.stage"
FAILED_AT = "pod.failed.at"

# The attempt a delay-topic copy is, or the retries a dead letter had.
ATTEMPT = "pod.attempt"
# When a delay-topic copy is due (epoch milliseconds).
RETRY_DUE = "pod.retry.due"
# On a dead letter whose value the broker refused: the size of the value dropped.
VALUE_DROPPED = "pod.value.dropped"

# On a dead letter the API replayed, and the coordinates of the one it copies.
REPLAY = "pod.replay"
REPLAY_OF = "pod.replay.of"
