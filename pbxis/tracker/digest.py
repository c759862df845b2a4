"""Digesting live AMI events into tracker state.

:class:`State` holds the model of :mod:`.model` and applies one AMI event at a time. It
does not decide what to emit: :meth:`State.apply` answers which agents may have changed
and which instantaneous events (``agentComplete``, ``originateFailed``) happened; the
:class:`~pbxis.tracker.Tracker` compares views to emit only real changes.

Correlation rules (reference §3): queue member events name the member by ``Interface``
(``Location`` in Asterisk 11 and in QueueStatus items); call events name the agent's
channel (``DestChannel`` of AgentCalled/DialBegin, ``Channel`` of Hangup) whose device
maps to a registered agent; calls are keyed by the agent channel's ``Uniqueid``;
recordings by the caller's ``Uniqueid``. Events about different topics (AgentComplete
versus Hangup) may come in either order, so nothing here depends on that order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ..ami.message import Message
from ..events import AGENT_COMPLETE, ORIGINATE_FAILED
from .channels import AgentDirectory, unescape
from .codes import dial_failure_reason, originate_reason, to_int, truth
from .model import AgentRecord, Call, Member, QueueState

__all__ = ["RECORDING_VARIABLE", "Instant", "State"]

RECORDING_VARIABLE: Final = "MIXMONITOR_FILENAME"
# Correlation tables that Asterisk never tells us to forget (a recording whose call had
# no AgentComplete, an originate whose response never came) are bounded.
_MAX_REMEMBERED: Final = 4096


@dataclass(frozen=True, slots=True)
class Instant:
    """An event that is not state: it happened once (agentComplete, originateFailed)."""

    agent: str
    type: str
    data: dict[str, Any]


class _Bounded(OrderedDict[str, Any]):
    def remember(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _MAX_REMEMBERED:
            self.popitem(last=False)


def _number(value: str | None) -> str | None:
    """Caller ID as the contract wants it: ``None`` for Asterisk's ``<unknown>``/empty."""
    if value is None:
        return None
    value = value.strip()
    return None if value in {"", "<unknown>", "unknown"} else value


def _name(value: str | None) -> str | None:
    return _number(unescape(value))


class State:
    """Raw state of registered agents and tracked queues, updated event by event."""

    def __init__(self, directory: AgentDirectory, hint_context: str) -> None:
        self.directory = directory
        self.hint_context = hint_context
        self.agents: dict[str, AgentRecord] = {}
        self.queues: dict[str, QueueState] = {}
        self.recordings = _Bounded()  # caller Uniqueid -> path
        self.queue_callers = _Bounded()  # caller Uniqueid -> queue
        self.originates = _Bounded()  # ActionID -> (agent, number)
        self._handlers: dict[str, Callable[[Message], tuple[set[str], list[Instant]]]] = {
            "queuememberstatus": self._member,
            "queuememberadded": self._member,
            "queuememberpause": self._member,
            "queuememberpaused": self._member,  # Asterisk 11
            "queuememberpenalty": self._member,
            "queuememberringinuse": self._member,
            "queuememberremoved": self._member_removed,
            "queuecallerjoin": self._caller_count,
            "queuecallerleave": self._caller_count,
            "join": self._caller_count,  # Asterisk 11
            "leave": self._caller_count,
            "extensionstatus": self._extension,
            "agentcalled": self._agent_called,
            "agentconnect": self._agent_connect,
            "agentcomplete": self._agent_complete,
            "dialbegin": self._dial_begin,
            "dialend": self._dial_end,
            "hangup": self._hangup,
            "varset": self._varset,
            "originateresponse": self._originate_response,
        }

    # -- entry point -------------------------------------------------------------------
    def apply(self, message: Message) -> tuple[set[str], list[Instant]]:
        """Apply one asynchronous event; list items (they carry an ActionID) are ignored."""
        name = (message.event or "").lower()
        handler = self._handlers.get(name)
        if handler is None:
            return set(), []
        if message.action_id is not None and name != "originateresponse":
            return set(), []  # a list item of some action, not a live event
        self._note_recording(message)
        return handler(message)

    # -- helpers -----------------------------------------------------------------------
    def agent_of_member(self, message: Message) -> str | None:
        agent = self.directory.by_interface(message.get("Interface") or message.get("Location"))
        return agent if agent in self.agents else None

    def agent_of_channel(self, channel: str | None) -> str | None:
        agent = self.directory.by_channel(channel)
        return agent if agent in self.agents else None

    def tracked(self, queue: str | None) -> QueueState | None:
        return self.queues.get(queue) if queue else None

    def set_member(self, queue: QueueState, agent: str, message: Message) -> None:
        member = queue.members.get(agent) or Member()
        member.status = to_int(message.get("Status"), member.status)
        if "Paused" in message:
            member.paused = truth(message.get("Paused"))
        # PausedReason (13.8+), Reason (QueueMemberPaused of 11, deprecated in 13-17).
        reason = message.get("PausedReason")
        if reason is None:
            reason = message.get("Reason")
        if reason is not None:
            member.reason = reason
        member.membership = message.get("Membership") or member.membership
        member.in_call = truth(message.get("InCall"))
        queue.members[agent] = member

    def _note_recording(self, message: Message) -> None:
        """``ChanVariable: MIXMONITOR_FILENAME=...`` (manager.conf channelvars) on the caller."""
        path = message.channel_variables().get(RECORDING_VARIABLE)
        uid = message.get("Uniqueid")
        if path and uid:
            self.recordings.remember(uid, unescape(path))

    def _start_call(self, agent: str, call: Call) -> set[str]:
        record = self.agents[agent]
        if call.key in record.calls:
            existing = record.calls[call.key]
            existing.stale = False
            return set()
        record.calls[call.key] = call
        return {agent}

    # -- queue members -----------------------------------------------------------------
    def _member(self, message: Message) -> tuple[set[str], list[Instant]]:
        queue = self.tracked(message.get("Queue"))
        agent = self.agent_of_member(message)
        if queue is None or agent is None or message.get("Queue") not in self.agents[agent].queues:
            return set(), []
        self.set_member(queue, agent, message)
        return {agent}, []

    def _member_removed(self, message: Message) -> tuple[set[str], list[Instant]]:
        queue = self.tracked(message.get("Queue"))
        agent = self.agent_of_member(message)
        if queue is None or agent is None:
            return set(), []
        queue.members.pop(agent, None)
        return {agent}, []

    def _caller_count(self, message: Message) -> tuple[set[str], list[Instant]]:
        name = message.get("Queue")
        uid = message.get("Uniqueid")
        if uid and name and (message.event or "").lower() in {"queuecallerjoin", "join"}:
            self.queue_callers.remember(uid, name)
        queue = self.tracked(name)
        if queue is None or "Count" not in message:
            return set(), []
        queue.count = max(0, to_int(message.get("Count")))
        return self.agents_in(name), []

    def agents_in(self, queue: str) -> set[str]:
        return {a for a, r in self.agents.items() if queue in r.queues}

    # -- extension state ---------------------------------------------------------------
    def _extension(self, message: Message) -> tuple[set[str], list[Instant]]:
        agent = message.get("Exten")
        if agent not in self.agents or message.get("Context") != self.hint_context:
            return set(), []
        self.agents[agent].extension = to_int(message.get("Status"), -1)
        return {agent}, []

    # -- calls -------------------------------------------------------------------------
    def _queue_call(self, message: Message) -> tuple[str, Call] | None:
        """The call an Agent* event describes, attributed by Interface then DestChannel."""
        agent = self.agent_of_member(message) or self.agent_of_channel(message.get("DestChannel"))
        key = message.get("DestUniqueid")
        caller = message.get("Uniqueid")
        if agent is None or not key or not caller:
            return None
        call = Call(
            key=key,
            number=_number(message.get("CallerIDNum")),
            name=_name(message.get("CallerIDName")),
            direction="in",
            unique_id=caller,
            queue=message.get("Queue"),
        )
        return agent, call

    def _agent_called(self, message: Message) -> tuple[set[str], list[Instant]]:
        found = self._queue_call(message)
        return (self._start_call(*found), []) if found else (set(), [])

    def _agent_connect(self, message: Message) -> tuple[set[str], list[Instant]]:
        # Normally AgentCalled already started the call; after a rebuild it may not have.
        return self._agent_called(message)

    def _agent_complete(self, message: Message) -> tuple[set[str], list[Instant]]:
        found = self._queue_call(message)
        if found is None:
            return set(), []
        agent, call = found
        recording = self.recordings.pop(call.unique_id, None)
        data = {
            "uniqueId": call.unique_id,
            "queue": call.queue,
            "talkTime": to_int(message.get("TalkTime")),
            "holdTime": to_int(message.get("HoldTime")),
            "recording": recording,
            "reason": (message.get("Reason") or "caller").lower(),
        }
        return set(), [Instant(agent, AGENT_COMPLETE, data)]

    def _dial_begin(self, message: Message) -> tuple[set[str], list[Instant]]:
        changed: set[str] = set()
        dest_agent = self.agent_of_channel(message.get("DestChannel"))
        dest_key = message.get("DestUniqueid")
        caller_channel = message.get("Channel")
        caller_key = message.get("Uniqueid")
        if dest_agent and dest_key:
            if caller_channel is None:
                changed |= self._originate_rings(dest_agent, dest_key)
            elif caller_key:
                call = Call(
                    key=dest_key,
                    number=_number(message.get("CallerIDNum")),
                    name=_name(message.get("CallerIDName")),
                    direction="in",
                    unique_id=caller_key,
                    queue=self.queue_callers.get(caller_key),
                )
                changed |= self._start_call(dest_agent, call)
        src_agent = self.agent_of_channel(caller_channel)
        if src_agent and caller_key:
            # The dialled number is where the agent's channel is in the dialplan; the
            # far end's caller ID is a copy of ours unless it is another agent.
            dialled = _number(message.get("Exten")) or _number(message.get("DestCallerIDNum"))
            name = _name(message.get("DestCallerIDName")) if dest_agent else None
            call = Call(caller_key, dialled, name, "out", caller_key)
            changed |= self._start_call(src_agent, call)
        return changed, []

    def _originate_rings(self, agent: str, key: str) -> set[str]:
        """An Originate rings the agent's phone: the number is the one we were asked to dial."""
        for action_id, (who, number) in self.originates.items():
            if who == agent and not self._bound(agent, action_id):
                call = Call(key, number, None, "out", key, action_id=action_id)
                return self._start_call(agent, call)
        return set()

    def _bound(self, agent: str, action_id: str) -> bool:
        return any(c.action_id == action_id for c in self.agents[agent].calls.values())

    def _dial_end(self, message: Message) -> tuple[set[str], list[Instant]]:
        """The outgoing leg of a click-to-call failed after the agent answered."""
        reason = dial_failure_reason(message.get("DialStatus"))
        agent = self.agent_of_channel(message.get("Channel"))
        key = message.get("Uniqueid")
        if reason is None or agent is None or key is None:
            return set(), []
        call = self.agents[agent].calls.get(key)
        if call is None or call.action_id is None or call.failure_reported:
            return set(), []
        call.failure_reported = True
        data = {"actionId": call.action_id, "number": call.number, "reason": reason}
        return set(), [Instant(agent, ORIGINATE_FAILED, data)]

    def _hangup(self, message: Message) -> tuple[set[str], list[Instant]]:
        key = message.get("Uniqueid")
        if not key:
            return set(), []
        self.queue_callers.pop(key, None)
        # Calls are keyed by the agent's own channel, so its Hangup names the agent.
        agent = self.agent_of_channel(message.get("Channel"))
        if agent and self.agents[agent].calls.pop(key, None) is not None:
            return {agent}, []
        return set(), []

    def _varset(self, message: Message) -> tuple[set[str], list[Instant]]:
        uid = message.get("Uniqueid")
        if message.get("Variable") == RECORDING_VARIABLE and uid:
            path = unescape(message.get("Value"))
            if path:
                self.recordings.remember(uid, path)
        return set(), []

    def _originate_response(self, message: Message) -> tuple[set[str], list[Instant]]:
        action_id = message.action_id
        if action_id is None or action_id not in self.originates:
            return set(), []
        agent, number = self.originates.pop(action_id)
        if agent not in self.agents:
            return set(), []
        if (message.get("Response") or "").lower() == "success":
            key = message.get("Uniqueid")
            if key and key != "<unknown>" and not self._bound(agent, action_id):
                call = Call(key, number, None, "out", key, action_id=action_id)
                return self._start_call(agent, call), []
            return set(), []
        reason = originate_reason(to_int(message.get("Reason"), 0))
        data = {"actionId": action_id, "number": number, "reason": reason}
        return set(), [Instant(agent, ORIGINATE_FAILED, data)]
