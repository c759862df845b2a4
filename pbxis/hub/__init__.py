"""Agents, stream tokens, numbered per-agent event logs and grace periods.

See :mod:`pbxis.hub.hub` for the semantics every transport relies on.
"""

from .hub import CHUNK, Hub, Registration, RegistrationEnded, Subscription
from .log import EventLog, LogEntry

__all__ = [
    "CHUNK",
    "EventLog",
    "Hub",
    "LogEntry",
    "Registration",
    "RegistrationEnded",
    "Subscription",
]
