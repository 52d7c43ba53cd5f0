"""``python -m services.monitor``: folds the event stream into PostgreSQL."""

from services.monitor.dlq import parse_record
from services.monitor.handler import build_handler
from services.monitor.settings import MonitorSettings
from shared.contract.events import EVENT_TYPES
from shared.contract.topics import MONITOR
from shared.pipeline.service import main

if __name__ == "__main__":
    main(MONITOR, MonitorSettings, build_handler, accept=EVENT_TYPES, parse=parse_record)
