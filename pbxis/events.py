"""The digested per-agent event model of the contract (``../shared/api-contract.md``).

The tracker produces :class:`AgentEvent` objects; the hub numbers them (``id``) as it
appends them to an agent's log; transports render :meth:`AgentEvent.to_json`.
Keeping ``id`` out of the event itself is what lets one event be computed once and
replayed to any number of clients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "EVENT_TYPES",
    "EXTENSION_STATUSES",
    "MEMBER_STATUSES",
    "ORIGINATE_FAILURE_REASONS",
    "AgentEvent",
    "QueueEvent",
]

QUEUE_MEMBER_STATUS: Final = "queueMemberStatus"
QUEUE_COUNT: Final = "queueCount"
EXTENSION_STATUS: Final = "extensionStatus"
PHONE_NUMBER: Final = "phoneNumber"
AGENT_COMPLETE: Final = "agentComplete"
ORIGINATE_FAILED: Final = "originateFailed"
TRANSFER_FAILED: Final = "transferFailed"
RECORDING_STATUS: Final = "recordingStatus"
PBX_STATUS: Final = "pbxStatus"
CLOSED: Final = "closed"
RESET: Final = "reset"
# Supervisor streams (pbxis.supervisors): absolute per-queue state.
QUEUE_STATS: Final = "queueStats"
QUEUE_MEMBER: Final = "queueMember"
QUEUE_CALLERS: Final = "queueCallers"

SUPERVISOR_PREFIX: Final = "supervisor:"
"""A supervisor's registration in the hub is keyed ``supervisor:<name>``: the colon is
outside the agent-name alphabet, so a supervisor and an agent of the same name never
share a log, a token or a command right; its events say ``"supervisor": name``."""

EVENT_TYPES: Final = (
    QUEUE_MEMBER_STATUS,
    QUEUE_COUNT,
    EXTENSION_STATUS,
    PHONE_NUMBER,
    AGENT_COMPLETE,
    ORIGINATE_FAILED,
    TRANSFER_FAILED,
    RECORDING_STATUS,
    PBX_STATUS,
    CLOSED,
    RESET,
    QUEUE_STATS,
    QUEUE_MEMBER,
    QUEUE_CALLERS,
)

# Device state codes 0..8 (Asterisk's enum ast_device_state) as the contract spells them.
MEMBER_STATUSES: Final = (
    "unknown",
    "not_inuse",
    "inuse",
    "busy",
    "invalid",
    "unavailable",
    "ringing",
    "ringinuse",
    "onhold",
)
EXTENSION_STATUSES: Final = (
    "unknown",
    "not_inuse",
    "inuse",
    "busy",
    "unavailable",
    "ringing",
    "ringinuse",
    "onhold",
)
ORIGINATE_FAILURE_REASONS: Final = ("busy", "no_answer", "congestion", "failed")
TRANSFER_FAILURE_REASONS: Final = (*ORIGINATE_FAILURE_REASONS, "cancelled")


_NO_DATA: Any = object()


@dataclass(frozen=True, slots=True, init=False)
class AgentEvent:
    """One event for one agent. ``time`` is Unix epoch milliseconds.

    ``data`` holds the type-specific fields of the contract (``queue``, ``status``...).
    """

    agent: str
    type: str
    time: int
    data: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, agent: str, type: str, time: int, data: Mapping[str, Any] = _NO_DATA) -> None:
        # What the dataclass's own __init__ does, through the slots' descriptors: a frozen
        # dataclass sets each field with ``object.__setattr__``, which made an event cost
        # 0.77 us to build (0.45 us so); the tracker builds one per change it emits.
        _set_agent(self, agent)
        _set_type(self, type)
        _set_time(self, time)
        _set_data(self, {} if data is _NO_DATA else data)

    def to_json(self, event_id: int, pbx: str | None = None) -> dict[str, Any]:
        """The contract's JSON object: ``id``, ``type``, ``agent`` (or ``supervisor``),
        ``pbx`` (the log's PBX, given by the hub that numbers it), ``time`` and the fields."""
        agent = self.agent
        if agent.startswith(SUPERVISOR_PREFIX):
            out: dict[str, Any] = {
                "id": event_id,
                "type": self.type,
                "supervisor": agent[len(SUPERVISOR_PREFIX) :],
            }
        else:
            out = {"id": event_id, "type": self.type, "agent": agent}
        if pbx is not None:
            out["pbx"] = pbx
        out["time"] = self.time
        out.update(self.data)
        return out


def _slot(name: str) -> Callable[[AgentEvent, Any], None]:
    """The setter of one of AgentEvent's slots (it bypasses the frozen ``__setattr__``)."""
    setter: Callable[[AgentEvent, Any], None] = AgentEvent.__dict__[name].__set__
    return setter


_set_agent, _set_type, _set_time, _set_data = map(_slot, ("agent", "type", "time", "data"))


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """Absolute state of one queue, the same for every agent registered on it.

    The tracker emits one of these (``queueCount``) instead of one :class:`AgentEvent`
    per watching agent; the hub turns it into each watching agent's ``queueCount`` as
    that agent's stream needs it, latest state winning (see :mod:`pbxis.hub.hub`).
    ``data`` holds the contract's fields (``queue``, ``count``).
    """

    queue: str
    type: str
    time: int
    data: Mapping[str, Any] = field(default_factory=dict)

    def for_agent(self, agent: str) -> AgentEvent:
        """The same state as one agent's event (what a per-agent tracker emitted)."""
        return AgentEvent(agent, self.type, self.time, dict(self.data))
