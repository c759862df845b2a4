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

# The typed errors are pure (no Twisted): imported at once, every one of them, so the
# list of names is pbxis.errors.__all__ and nowhere else.
from . import errors as _errors
from .errors import *  # noqa: F403

if TYPE_CHECKING:
    from .config import Config, ConfigError
    from .engine import AgentRegistration, CallCenter, Caller, SinkHandle, SupervisorRegistration, connect

_WHERE = {
    "Config": "config",
    "ConfigError": "config",
    "AgentRegistration": "engine",
    "CallCenter": "engine",
    "Caller": "engine",
    "SinkHandle": "engine",
    "SupervisorRegistration": "engine",
    "connect": "engine",
}

__all__ = [
    "AgentRegistration",
    "CallCenter",
    "Caller",
    "Config",
    "ConfigError",
    "SinkHandle",
    "SupervisorRegistration",
    "__version__",
    "connect",
]
__all__ += _errors.__all__


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pbxis' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"pbxis.{module}"), name)
    globals()[name] = value
    return value
