"""Agents, stream tokens, numbered per-agent event logs and grace periods.

See :mod:`pbxis.hub.hub` for the semantics every transport relies on and
:mod:`pbxis.hub.store` for the persistence interface (:class:`MemoryStore` in memory).
"""

from .hub import CHUNK, Hub, Subscription
from .log import EventLog, LogEntry
from .memory import MemoryLog, MemoryStore
from .registration import Registration, RegistrationEnded, TooManyClients
from .store import HubStore, QueueState, RegistrationLog, SnapshotSpan, StaleFence

__all__ = [
    "CHUNK",
    "EventLog",
    "Hub",
    "HubStore",
    "LogEntry",
    "MemoryLog",
    "MemoryStore",
    "QueueState",
    "Registration",
    "RegistrationEnded",
    "RegistrationLog",
    "SnapshotSpan",
    "StaleFence",
    "Subscription",
    "TooManyClients",
]
