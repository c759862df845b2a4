"""The engine: one :class:`CallCenter` per deployment, the public face of pbxis.

See :mod:`pbxis.engine.center`; the toll-fraud guard is :mod:`pbxis.engine.policy`.
"""

from .center import (
    DEFAULT_PBX,
    AgentRegistration,
    CallCenter,
    Caller,
    EventListener,
    SinkHandle,
    SupervisorRegistration,
    as_config,
    connect,
)

__all__ = [
    "DEFAULT_PBX",
    "AgentRegistration",
    "CallCenter",
    "Caller",
    "EventListener",
    "SinkHandle",
    "SupervisorRegistration",
    "as_config",
    "connect",
]
