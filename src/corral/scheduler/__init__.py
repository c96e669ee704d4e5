"""The scheduler: which runners are loaded, who holds them, who waits (see :mod:`.core`)."""

from corral.scheduler.core import Lease, Loaded, Scheduler, State
from corral.scheduler.slots import QueueLimit, QueuePlace, SlotHold, SlotPool
from corral.scheduler.types import ModelRef, Runner, RunnerFactory

__all__ = [
    "Lease",
    "Loaded",
    "ModelRef",
    "QueueLimit",
    "QueuePlace",
    "Runner",
    "RunnerFactory",
    "Scheduler",
    "SlotHold",
    "SlotPool",
    "State",
]
