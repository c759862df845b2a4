"""From channel names to devices to agents, without guessing.

Asterisk names a channel ``<device>-<8 hex digits>`` (``SIP/1001-0000000a``,
``PJSIP/1001-0000002a``) and a Local channel ``Local/<exten>@<ctx>-<8 hex>;1`` / ``;2``.
The *device* is the name without that suffix; a queue member *interface* is a device
with, for Local members, dial options after a slash (``Local/1001@agents/n``).

An agent owns exactly one interface, built from the configured template
(``SIP/{agent}``), so the reverse map interface -> agent and device -> agent is exact.
A channel whose device is not a registered agent's belongs to nobody: we never read
digits out of a channel name.
"""

from __future__ import annotations

import re

__all__ = ["AgentDirectory", "device_of_channel", "device_of_interface", "unescape"]

_SUFFIX = re.compile(r"-[0-9a-fA-F]{8}(?:;\d)?$")
_LOCAL_HALF = re.compile(r";\d$")


_HEX = frozenset("0123456789abcdefABCDEF")


def device_of_channel(channel: str) -> str:
    """``SIP/1001-0000000a`` -> ``SIP/1001``; ``Local/1001@ctx-00000001;2`` -> ``Local/1001@ctx``.

    The two shapes Asterisk writes are told by a few index tests (every Hangup and
    DialBegin asks, mostly for channels that are nobody's); anything else takes the
    patterns, which define the answer."""
    if len(channel) > 9:
        if channel[-9] == "-" and _HEX.issuperset(channel[-8:]):
            return channel[:-9]
        if channel[-2] == ";" and channel[-11:-10] == "-" and channel[-1].isdecimal():
            if _HEX.issuperset(channel[-10:-2]):
                return channel[:-11]
    stripped = _SUFFIX.sub("", channel)
    if stripped == channel:
        stripped = _LOCAL_HALF.sub("", channel)
    return stripped


def device_of_interface(interface: str) -> str:
    """The device an interface dials: Local options (``/n``) are not part of it."""
    if interface[:6].lower() == "local/":
        head, _, _options = interface[6:].partition("/")
        return interface[:6] + head
    return interface


_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def unescape(value: str | None) -> str | None:
    """Undo Asterisk's C escaping of caller names and VarSet values (``O\\'Brien``)."""
    if value is None or "\\" not in value:
        return value
    return _ESCAPED.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), value)


class AgentDirectory:
    """Registered agents by interface and by device, built from one template."""

    def __init__(self, template: str) -> None:
        if template.count("{agent}") != 1:
            raise ValueError(f"interface template must contain {{agent}} once: {template!r}")
        self.template = template
        self._by_interface: dict[str, str] = {}
        self._by_device: dict[str, str] = {}

    def interface_of(self, agent: str) -> str:
        return self.template.replace("{agent}", agent)

    def add(self, agent: str) -> None:
        interface = self.interface_of(agent)
        self._by_interface[interface] = agent
        self._by_device[device_of_interface(interface)] = agent

    def remove(self, agent: str) -> None:
        interface = self.interface_of(agent)
        self._by_interface.pop(interface, None)
        self._by_device.pop(device_of_interface(interface), None)

    def by_interface(self, interface: str | None) -> str | None:
        """The agent a member ``Interface``/``Location`` belongs to (exact match)."""
        if not interface:
            return None
        return self._by_interface.get(interface)

    def by_channel(self, channel: str | None) -> str | None:
        """The agent whose device a channel is on, or ``None``."""
        if not channel:
            return None
        return self._by_device.get(device_of_channel(channel))
