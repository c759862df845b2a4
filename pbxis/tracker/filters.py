"""The server-side event filter: exactly the events the tracker digests.

One source, three renderings: Filter actions in the advanced ``MatchCriteria`` form
(Asterisk 18.26/20.11/21.6/22.1+), in the legacy regex form (older releases), and
manager.conf ``eventfilter`` lines for the README. Spellings follow what the lab's
Asterisk 20 and 22 accepted (captures ``filter_*`` of both sets, answered alike):
``name(X)`` with no ``Filter`` header; ``action(include),name(VarSet),header(Variable),
method(exact)`` with a value; never ``startsWith`` or ``method(none)`` with a value,
never an empty Filter.

Capability probe. On releases before advanced filters ``MatchCriteria`` is ignored, and
a ``name(X)`` filter without value would be an *empty regex* that matches everything.
So the first action sent is :data:`PROBE`: on new releases an exclude filter that can
never match (harmless); on old ones its value is not a valid regex and Asterisk answers
``Filter did not compile``, which selects the legacy form.

Filters apply to asynchronous events only; responses, list items and the login-time
FullyBooted always get through.
"""

from __future__ import annotations

import re
from typing import Final

from ..ami.message import Message
from .digest import RECORDING_VARIABLE

__all__ = [
    "EVENT_NAMES",
    "PROBE",
    "advanced_filters",
    "legacy_filters",
    "manager_conf_lines",
    "passes",
]

Headers = tuple[tuple[str, str], ...]

EVENT_NAMES: Final = (
    "QueueMemberStatus",
    "QueueMemberAdded",
    "QueueMemberRemoved",
    "QueueMemberPause",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "AgentCalled",
    "AgentConnect",
    "AgentComplete",
    "ExtensionStatus",
    "DialBegin",
    "DialEnd",
    "AttendedTransfer",
    "Hangup",
    "OriginateResponse",
    "FullyBooted",
    "Shutdown",
)
"""Events passed whole. VarSet passes only for :data:`RECORDING_VARIABLE`.

BlindTransfer is left out on purpose: the transferee's own channel then dials the new
agent, and that DialBegin already carries everything the tracker shows (see
:mod:`.digest`), so the event would only add traffic on the link."""

PROBE: Final[Headers] = (
    ("Operation", "Add"),
    ("MatchCriteria", "action(exclude),name(PbxisProbe),header(Probe),method(exact)"),
    ("Filter", "[probe"),
)

_VARSET_CRITERIA: Final = "action(include),name(VarSet),header(Variable),method(exact)"


def advanced_filters() -> list[Headers]:
    """Filter action headers, MatchCriteria form (send after :data:`PROBE` succeeded)."""
    out: list[Headers] = [(("Operation", "Add"), ("MatchCriteria", f"name({name})")) for name in EVENT_NAMES]
    out.append(
        (
            ("Operation", "Add"),
            ("MatchCriteria", _VARSET_CRITERIA),
            ("Filter", RECORDING_VARIABLE),
        )
    )
    return out


# POSIX ERE, run over the whole event text ("Event: X\r\nPrivilege: ..."): ``^`` is the
# start of the event, [[:space:]] ends the name (so Hangup does not match HangupRequest),
# and ``.`` crosses lines.
LEGACY_EVENTS_REGEX: Final = "^Event: (" + "|".join(EVENT_NAMES) + ")[[:space:]]"
LEGACY_VARSET_REGEX: Final = f"^Event: VarSet[[:space:]].*Variable: {RECORDING_VARIABLE}[[:space:]]"


def legacy_filters() -> list[Headers]:
    """Filter action headers, legacy regex form: the only form before 18.26/20.11/21.6/22.1,
    still accepted after (22.10.1 in ``captures-pjsip22/filter_legacy_regex``)."""
    return [
        (("Operation", "Add"), ("Filter", LEGACY_EVENTS_REGEX)),
        (("Operation", "Add"), ("Filter", LEGACY_VARSET_REGEX)),
    ]


def manager_conf_lines(*, advanced: bool = True) -> list[str]:
    """``eventfilter`` lines for the pbxis user in manager.conf (same filters)."""
    if not advanced:
        return [f"eventfilter = {LEGACY_EVENTS_REGEX}", f"eventfilter = {LEGACY_VARSET_REGEX}"]
    lines = [f"eventfilter(name({name})) =" for name in EVENT_NAMES]
    lines.append(f"eventfilter({_VARSET_CRITERIA}) = {RECORDING_VARIABLE}")
    return lines


_NAMES: Final = frozenset(EVENT_NAMES)


def passes(message: Message) -> bool:
    """Would Asterisk deliver this asynchronous event through our filter set?"""
    name = message.event
    if name in _NAMES:
        return True
    return name == "VarSet" and RECORDING_VARIABLE in message.get_all("Variable")


def legacy_passes(event_text: str) -> bool:
    """The legacy regexes, evaluated the way Asterisk does (for tests and the bench)."""
    return any(re.search(_python_regex(r), event_text, re.DOTALL) for r in _LEGACY)


_LEGACY: Final = (LEGACY_EVENTS_REGEX, LEGACY_VARSET_REGEX)


def _python_regex(posix: str) -> str:
    return posix.replace("[[:space:]]", r"\s")
