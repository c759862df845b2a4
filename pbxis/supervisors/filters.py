"""What a supervised queue adds to the server-side event filter: its abandons.

Everything else a supervisor's view needs already passes the agents' filter
(:mod:`pbxis.tracker.filters`): the ``QueueMember*`` events of every member,
``QueueCallerJoin``/``Leave``, ``AgentComplete``. Only ``QueueCallerAbandon`` is new, and
it is let through per supervised queue (a header match on ``Queue``), so a PBX whose
other queues abandon callers by the thousand costs a supervisor of ``sales`` nothing.

AMI has no way to remove one filter: a queue's filter is added when its first
supervisor registers and stays until the link's next login, which installs only the
queues supervised then.
"""

from __future__ import annotations

import re
from typing import Final

from ..ami.message import Message

__all__ = [
    "ABANDON_EVENT",
    "advanced_filter",
    "legacy_filter",
    "legacy_passes",
    "legacy_regex",
    "manager_conf_line",
    "passes",
]

ABANDON_EVENT: Final = "QueueCallerAbandon"
_CRITERIA: Final = f"action(include),name({ABANDON_EVENT}),header(Queue),method(exact)"
_ERE_SPECIAL: Final = re.compile(r"([.\[\]\\(){}*+?|^$])")

Headers = tuple[tuple[str, str], ...]


def advanced_filter(queue: str) -> Headers:
    """The Filter action's headers, MatchCriteria form (the same shape the lab's Asterisk
    20 accepted for ``VarSet`` by ``Variable``)."""
    return (("Operation", "Add"), ("MatchCriteria", _CRITERIA), ("Filter", queue))


def legacy_regex(queue: str) -> str:
    """POSIX ERE over the whole event text; ``[[:space:]]`` on both sides of the queue
    name so that ``sales`` matches neither ``presales`` nor ``sales2``."""
    name = _ERE_SPECIAL.sub(r"\\\1", queue)
    return f"^Event: {ABANDON_EVENT}[[:space:]].*[[:space:]]Queue: {name}[[:space:]]"


def legacy_filter(queue: str) -> Headers:
    return (("Operation", "Add"), ("Filter", legacy_regex(queue)))


def manager_conf_line(queue: str) -> str:
    return f"eventfilter({_CRITERIA}) = {queue}"


def passes(message: Message, queues: frozenset[str] | set[str]) -> bool:
    """Would Asterisk deliver this event through the supervised queues' filters?"""
    return message.event == ABANDON_EVENT and message.get("Queue") in queues


def legacy_passes(event_text: str, queue: str) -> bool:
    """The legacy regex evaluated as Asterisk does (tests and the bench)."""
    pattern = legacy_regex(queue).replace("[[:space:]]", r"\s")
    return re.search(pattern, event_text, re.DOTALL) is not None
