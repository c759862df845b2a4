"""Supervisors and wallboards: whole queues, live, for team leads.

:mod:`.board` is the pure state machine (AMI events in, supervisor events out);
:mod:`.sync` keeps it in step with Asterisk (filters, loads, counter reads, the
``queueStats`` throttle) on the reactor; registrations, tokens and streams are the
hub's, exactly as for agents, under the key :func:`supervisor_key`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..events import SUPERVISOR_PREFIX
from .board import NO_MEMBER, STATS_INTERVAL_MS, QueueBoard

__all__ = [
    "NO_MEMBER",
    "STATS_INTERVAL_MS",
    "QueueBoard",
    "agents_by_template",
    "is_supervisor_key",
    "supervisor_key",
    "supervisor_name",
]


def agents_by_template(template: str) -> Callable[[str], str | None]:
    """The agent a queue member interface names under the configured interface template
    (``SIP/{agent}``: ``SIP/1001`` -> ``1001``), registered or not; ``None`` otherwise."""
    head, _, tail = template.partition("{agent}")
    pattern = re.compile(re.escape(head) + r"([A-Za-z0-9_.\-]{1,32})" + re.escape(tail))

    def agent_of(interface: str) -> str | None:
        match = pattern.fullmatch(interface)
        return match.group(1) if match else None

    return agent_of


def supervisor_key(name: str) -> str:
    """The hub key of supervisor ``name`` (never a valid agent name)."""
    return SUPERVISOR_PREFIX + name


def supervisor_name(key: str) -> str:
    return key[len(SUPERVISOR_PREFIX) :]


def is_supervisor_key(key: str) -> bool:
    return key.startswith(SUPERVISOR_PREFIX)
