"""What every vendor simulator shares: fault injection (:mod:`.faults`), the vendors' pace
(:mod:`.profile`, ``SIM_PROFILE``), the log of when the vendor was busy (:mod:`.requestlog`,
``GET /_sim/requests``), the ``/_sim`` test hooks (:mod:`.control`), the settings base
(:mod:`.settings`) and the one entry point (:mod:`.main`)."""

from simulators.common.control import SimControl, sim_router
from simulators.common.faults import (
    DEFAULT_FAULT_STATUSES,
    FaultBook,
    FaultFactory,
    Knobs,
    SlidingWindowLimiter,
    error_json,
    install_faults,
)
from simulators.common.main import main, serve
from simulators.common.settings import SimSettings

__all__ = [
    "DEFAULT_FAULT_STATUSES",
    "FaultBook",
    "FaultFactory",
    "Knobs",
    "SimControl",
    "SimSettings",
    "SlidingWindowLimiter",
    "error_json",
    "install_faults",
    "main",
    "serve",
    "sim_router",
]
