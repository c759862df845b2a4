"""pbxis: an Asterisk call center on the web, and a library.

The library in five lines (Twisted-native; see README "Use it as a library")::

    center = await pbxis.connect(reactor, "pbxis.toml")
    center.register_agent("1001", ["sales"], listeners=[print])
    await center.queue_action("1001", "sales", "login")
    await center.originate("1001", "0911234567")
    await center.disconnect()

``import pbxis`` itself imports nothing heavy: the names below load on first use, so
``pbxis.ami.parser`` and the simulator stay importable without the engine's stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .config import Config, ConfigError
    from .engine import AgentRegistration, CallCenter, Caller, SinkHandle, SupervisorRegistration, connect
    from .errors import (
        AlreadyLoggedIn,
        CommandError,
        Conflict,
        Forbidden,
        InvalidArgument,
        NotLoggedIn,
        NumberNotAllowed,
        PbxRefused,
        PbxTimeout,
        PbxUnavailable,
        RateLimited,
        UnknownAgent,
        UnknownPbx,
        UnknownQueue,
        UnknownSupervisor,
    )

_WHERE = {
    "Config": "config",
    "ConfigError": "config",
    "AgentRegistration": "engine",
    "CallCenter": "engine",
    "Caller": "engine",
    "SinkHandle": "engine",
    "SupervisorRegistration": "engine",
    "connect": "engine",
    **{
        name: "errors"
        for name in (
            "AlreadyLoggedIn",
            "CommandError",
            "Conflict",
            "Forbidden",
            "InvalidArgument",
            "NotLoggedIn",
            "NumberNotAllowed",
            "PbxRefused",
            "PbxTimeout",
            "PbxUnavailable",
            "RateLimited",
            "UnknownAgent",
            "UnknownPbx",
            "UnknownQueue",
            "UnknownSupervisor",
        )
    },
}

__all__ = [
    "AgentRegistration",
    "AlreadyLoggedIn",
    "CallCenter",
    "Caller",
    "CommandError",
    "Config",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InvalidArgument",
    "NotLoggedIn",
    "NumberNotAllowed",
    "PbxRefused",
    "PbxTimeout",
    "PbxUnavailable",
    "RateLimited",
    "SinkHandle",
    "SupervisorRegistration",
    "UnknownAgent",
    "UnknownPbx",
    "UnknownQueue",
    "UnknownSupervisor",
    "__version__",
    "connect",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pbxis' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"pbxis.{module}"), name)
    globals()[name] = value
    return value
