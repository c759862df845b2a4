"""What an agent, queue, PBX name and dialled number may look like: each rule once.

The config validator, the HTTP validation, the OpenAPI document and the engine all read
these; a rule changed here changes everywhere. Names are deliberately narrower than
Asterisk's: one token of ``A-Za-z0-9_.-`` can go into an AMI header, a URL path segment
and a log line without escaping. ``.`` and ``..`` alone are refused: as a path segment
(``SIP/..``) they mean something else.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "AGENT_MAX",
    "AGENT_PATTERN",
    "NUMBER_PATTERN",
    "PBX_PATTERN",
    "QUEUE_MAX",
    "QUEUE_PATTERN",
    "VARIABLE_PATTERN",
    "is_agent",
    "is_number",
    "is_pbx",
    "is_queue",
    "is_variable",
]

AGENT_MAX: Final = 32
QUEUE_MAX: Final = 64
NUMBER_MAX: Final = 32

#: JSON-Schema/``re`` patterns, anchored (OpenAPI's ``pattern`` is a search).
AGENT_PATTERN: Final = rf"^(?!\.{{1,2}}$)[A-Za-z0-9_.-]{{1,{AGENT_MAX}}}$"
QUEUE_PATTERN: Final = rf"^(?!\.{{1,2}}$)[A-Za-z0-9_.-]{{1,{QUEUE_MAX}}}$"
PBX_PATTERN: Final = AGENT_PATTERN
#: What a phone can dial: digits, ``*`` and ``#``; or ``+`` first, then a country code
#: (E.164: never 0). A ``+`` further in (``++900``, ``0+0900``, ``+0900``) dials nothing
#: on purpose, but a dialplan that strips it would dial what ``[originate].deny`` was
#: written to refuse.
NUMBER_PATTERN: Final = rf"^(?:\+[1-9][0-9*#]{{0,{NUMBER_MAX - 2}}}|[0-9*#]{{1,{NUMBER_MAX}}})$"

#: A channel variable's name as the dialplan spells one (``Variable: NAME=value``).
VARIABLE_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

AGENT_HINT: Final = f"1 to {AGENT_MAX} letters, digits, '_', '.' or '-' (e.g. 1001)"
QUEUE_HINT: Final = f"1 to {QUEUE_MAX} letters, digits, '_', '.' or '-' (e.g. sales)"
NUMBER_HINT: Final = (
    f"1 to {NUMBER_MAX} digits, '*' or '#', or '+' and a country code (e.g. 0911234567, +385911234567)"
)

_AGENT = re.compile(AGENT_PATTERN)
_QUEUE = re.compile(QUEUE_PATTERN)
_NUMBER = re.compile(NUMBER_PATTERN)
_VARIABLE = re.compile(VARIABLE_PATTERN)


def is_agent(value: object) -> bool:
    """An agent is named by its extension."""
    return isinstance(value, str) and _AGENT.fullmatch(value) is not None


def is_pbx(value: object) -> bool:
    """A PBX is named in config with the agents' alphabet."""
    return is_agent(value)


def is_queue(value: object) -> bool:
    """A queue name as configured in queues.conf, restricted to one safe token."""
    return isinstance(value, str) and _QUEUE.fullmatch(value) is not None


def is_number(value: object) -> bool:
    return isinstance(value, str) and _NUMBER.fullmatch(value) is not None


def is_variable(value: object) -> bool:
    """A channel variable name: no ``=`` or ``,`` (Asterisk splits ``Variable`` on
    commas, so one name could set several variables)."""
    return isinstance(value, str) and _VARIABLE.fullmatch(value) is not None
