"""The tracker's state: what Asterisk told us, per registered agent and queue.

State is kept raw (Asterisk's codes); :func:`agent_view` turns it into exactly what an
agent sees, keyed by what can change independently. Emitting "only what changed" is
then a comparison of two views, and a rebuild after an outage is the same comparison
against the view the agent last saw.

A live event changes one entry of a few agents' views, so :func:`view_entry` computes
a single entry: the cost of an event is then that of the entries it touched, not of
the agents' whole views.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ..events import EXTENSION_STATUS, PHONE_NUMBER, QUEUE_COUNT, QUEUE_MEMBER_STATUS
from .codes import extension_status, member_status

__all__ = [
    "EXTENSION_KEY",
    "PHONE_KEY",
    "AgentRecord",
    "Call",
    "Member",
    "QueueState",
    "View",
    "ViewKey",
    "agent_view",
    "count_entry",
    "count_key",
    "member_key",
    "view_entry",
]


@dataclass(slots=True)
class Member:
    """One registered agent's membership in one queue (present = logged in)."""

    status: int = 0
    paused: bool = False
    reason: str = ""
    membership: str = "dynamic"
    in_call: bool = False


@dataclass(slots=True)
class QueueState:
    """A tracked queue: callers waiting, and the registered agents who watch it.

    ``watchers`` (registered agents with this queue, logged in or not) is the index
    that makes a caller joining cost the queue's agents, not every registered agent;
    the queue is tracked while it has watchers.
    """

    count: int = 0
    members: dict[str, Member] = field(default_factory=dict)  # logged in, by agent
    watchers: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Call:
    """A call on an agent's phone, keyed by the agent's channel Uniqueid.

    ``unique_id`` is what the contract reports: the caller's Uniqueid for queue and
    inbound calls (AgentComplete carries the same one), the agent channel's own for
    calls the agent places.
    """

    key: str
    number: str | None
    name: str | None
    direction: str
    unique_id: str
    queue: str | None = None
    action_id: str | None = None
    failure_reported: bool = False
    #: why the agent's phone did not take an originated call (DialEnd/Hangup of its leg)
    failure: str | None = None
    #: an ``originateFailed`` held back until the leg says why (Reason 0 on Asterisk 21+)
    pending_failure: dict[str, Any] | None = None
    stale: bool = False
    #: the agent's own channel name and the far end's (call control acts on them)
    channel: str | None = None
    peer: str | None = None
    #: the far end's Uniqueid (the caller's for queue calls: where MixMonitor runs)
    peer_id: str | None = None
    recording_paused: bool = False

    def data(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "direction": self.direction,
            "uniqueId": self.unique_id,
            "queue": self.queue,
        }


@dataclass(slots=True)
class AgentRecord:
    """A registered agent. ``order`` is its rank in registration order: events that
    change several agents at once are emitted in that order."""

    agent: str
    queues: tuple[str, ...]
    order: int = 0
    extension: int | None = None
    calls: dict[str, Call] = field(default_factory=dict)
    seen: dict[ViewKey, dict[str, Any] | None] = field(default_factory=dict)
    pbx_down: bool = False

    @property
    def current_call(self) -> Call | None:
        """The newest call on the phone (dicts keep insertion order)."""
        if not self.calls:
            return None
        return next(reversed(self.calls.values()))


ViewKey = tuple[str, ...]
View = dict[ViewKey, "dict[str, Any] | None"]

EXTENSION_KEY: Final[ViewKey] = (EXTENSION_STATUS,)
PHONE_KEY: Final[ViewKey] = (PHONE_NUMBER,)


def member_key(queue: str) -> ViewKey:
    return (QUEUE_MEMBER_STATUS, queue)


def count_key(queue: str) -> ViewKey:
    return (QUEUE_COUNT, queue)


def agent_view(record: AgentRecord, queues: dict[str, QueueState]) -> View:
    """Everything an agent sees, in the order a snapshot lists it."""
    view: View = {EXTENSION_KEY: _extension(record, EXTENSION_KEY, queues)}
    for name in record.queues:
        key = member_key(name)
        view[key] = _member(record, key, queues)
    for name in record.queues:
        key = count_key(name)
        view[key] = _count(record, key, queues)
    view[PHONE_KEY] = _phone(record, PHONE_KEY, queues)
    return view


def view_entry(record: AgentRecord, key: ViewKey, queues: dict[str, QueueState]) -> dict[str, Any] | None:
    """``agent_view(record, queues)[key]`` without building the rest of the view."""
    return _ENTRIES[key[0]](record, key, queues)


def _extension(record: AgentRecord, key: ViewKey, queues: dict[str, QueueState]) -> dict[str, Any]:
    return {"status": extension_status(record.extension)}


def _member(record: AgentRecord, key: ViewKey, queues: dict[str, QueueState]) -> dict[str, Any]:
    name = key[1]
    queue = queues.get(name)
    member = queue.members.get(record.agent) if queue else None
    if member is None:
        return {"queue": name, "loggedIn": False, "status": "unknown", "paused": False, "pausedReason": ""}
    return {
        "queue": name,
        "loggedIn": True,
        "status": member_status(member.status),
        "paused": member.paused,
        "pausedReason": member.reason,
    }


def _count(record: AgentRecord, key: ViewKey, queues: dict[str, QueueState]) -> dict[str, Any]:
    return count_entry(key[1], queues)


def count_entry(name: str, queues: dict[str, QueueState]) -> dict[str, Any]:
    """The ``queueCount`` entry: the same for every agent watching queue ``name``."""
    queue = queues.get(name)
    return {"queue": name, "count": queue.count if queue else 0}


def _phone(record: AgentRecord, key: ViewKey, queues: dict[str, QueueState]) -> dict[str, Any] | None:
    call = record.current_call
    return call.data() if call else None


_ENTRIES: Final[dict[str, Callable[[AgentRecord, ViewKey, dict[str, QueueState]], dict[str, Any] | None]]] = {
    EXTENSION_STATUS: _extension,
    QUEUE_MEMBER_STATUS: _member,
    QUEUE_COUNT: _count,
    PHONE_NUMBER: _phone,
}
