"""The tracker's state: what Asterisk told us, per registered agent and queue.

State is kept raw (Asterisk's codes); :func:`agent_view` turns it into exactly what an
agent sees, keyed by what can change independently. Emitting "only what changed" is
then a comparison of two views, and a rebuild after an outage is the same comparison
against the view the agent last saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import EXTENSION_STATUS, PHONE_NUMBER, QUEUE_COUNT, QUEUE_MEMBER_STATUS
from .codes import extension_status, member_status

__all__ = ["AgentRecord", "Call", "Member", "QueueState", "View", "ViewKey", "agent_view"]


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
    count: int = 0
    members: dict[str, Member] = field(default_factory=dict)  # by agent


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
    stale: bool = False

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
    agent: str
    queues: tuple[str, ...]
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


def agent_view(record: AgentRecord, queues: dict[str, QueueState]) -> View:
    """Everything an agent sees, in the order a snapshot lists it."""
    view: View = {(EXTENSION_STATUS,): {"status": extension_status(record.extension)}}
    for name in record.queues:
        queue = queues.get(name) or QueueState()
        member = queue.members.get(record.agent)
        view[(QUEUE_MEMBER_STATUS, name)] = {
            "queue": name,
            "loggedIn": member is not None,
            "status": member_status(member.status) if member else "unknown",
            "paused": member.paused if member else False,
            "pausedReason": member.reason if member else "",
        }
    for name in record.queues:
        queue = queues.get(name) or QueueState()
        view[(QUEUE_COUNT, name)] = {"queue": name, "count": queue.count}
    call = record.current_call
    view[(PHONE_NUMBER,)] = call.data() if call else None
    return view
