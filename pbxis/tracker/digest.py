"""Digesting live AMI events into tracker state.

:class:`State` holds the model of :mod:`.model` and applies one AMI event at a time. It
does not decide what to emit: :meth:`State.apply` answers which entry of which agents'
views may have changed and which instantaneous events (``agentComplete``,
``originateFailed``) happened; the :class:`~pbxis.tracker.Tracker` compares that entry
with what each agent saw to emit only real changes.

Cost. Most events that reach us concern channels and members that are no registered
agent's: they cost the handler's dict lookup and one or two look-ups that find no
agent. An event for registered agents costs the agents it names (a queue's watchers for
a caller count), never a walk over every registered agent.

Correlation rules (reference §3): queue member events name the member by ``Interface``
(``Location`` in Asterisk 11 and in QueueStatus items); call events name the agent's
channel (``DestChannel`` of AgentCalled/DialBegin, ``Channel`` of Hangup) whose device
maps to a registered agent; calls are keyed by the agent channel's ``Uniqueid``;
recordings by the caller's ``Uniqueid``. Events about different topics (AgentComplete
versus Hangup) may come in either order, so nothing here depends on that order.

Asterisk 22 with PJSIP (``shared/ami/captures-pjsip22``) tells the same story with two
twists handled here: an ``AgentComplete`` that lost the race with the caller's hangup
(seen on 20 too) has no ``Channel``/``Uniqueid``/``CallerID*``, so the agent (Interface)
and its leg (``DestUniqueid``) find the call we saw ring, live or just ended; and an
Originate the phone refused with 486 gets ``OriginateResponse Reason: 0`` (not 5), busy
being only in the leg's ``DialEnd DialStatus: BUSY`` / ``Hangup Cause: 17``, which may
come after the response: that ``originateFailed`` waits for the leg to say why.

Transfers (Asterisk 12+). An attended transfer keeps the target's and the transferee's
channels and merges or links their bridges, so ``AttendedTransfer`` is the only event
that says who now talks to whom: each of the two that is a registered agent's call
takes the other's caller ID from the event's channel snapshots. A blind transfer needs
no event of its own: the transferee's channel itself goes to the dialplan and dials the
new agent, which the DialBegin path already attributes (number, caller, queue).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, ItemsView, Iterator, Sequence, ValuesView
from dataclasses import dataclass
from typing import Any, Final

from ..ami.message import Message
from ..events import AGENT_COMPLETE, ORIGINATE_FAILED, QUEUE_MEMBER_STATUS, TRANSFER_FAILED
from .channels import AgentDirectory, unescape
from .codes import dial_failure_reason, hangup_failure_reason, originate_reason, to_int, truth
from .model import (
    EXTENSION_KEY,
    PHONE_KEY,
    AgentRecord,
    Call,
    Member,
    QueueState,
    ViewKey,
    count_key,
    member_key,
)

__all__ = ["NOTHING", "RECORDING_VARIABLE", "Instant", "Outcome", "State"]

RECORDING_VARIABLE: Final = "MIXMONITOR_FILENAME"
# Correlation tables that Asterisk never tells us to forget (a recording whose call had
# no AgentComplete, an originate whose response never came) are bounded.
_MAX_REMEMBERED: Final = 4096
_MAX_SPELLINGS: Final = 1024
_NORMAL_CLEARING: Final = 16


@dataclass(frozen=True, slots=True)
class Instant:
    """An event that is not state: it happened once (agentComplete, originateFailed)."""

    agent: str
    type: str
    data: dict[str, Any]


Outcome = tuple[ViewKey, Collection[str], Sequence[Instant]]
"""What one event did: the view entry it may have changed, the agents whose entry it
is, and the instants. One entry suffices: every event concerns one topic."""

NOTHING: Final[Outcome] = ((), (), ())

_LIST_ITEM_OR_VARIABLES: Final = ("ActionID", "ChanVariable")
_MEMBER_FIELDS: Final = ("Status", "Paused", "PausedReason", "Membership", "InCall")
_EXTENSION_FIELDS: Final = ("Context", "Status")
_DIAL_FIELDS: Final = ("Channel", "Uniqueid", "DestChannel", "DestUniqueid")
_HANGUP_FIELDS: Final = ("Uniqueid", "Channel")
_QUEUE_CALL_FIELDS: Final = ("DestUniqueid", "Uniqueid", "CallerIDNum", "CallerIDName", "Queue", "Channel")

_TRANSFER_SIDES: Final = (
    ("Transferee", "TransferTarget", "SecondTransferer"),
    ("TransferTarget", "Transferee", "OrigTransferer"),
)
"""AttendedTransfer channel snapshot prefixes: (this side, the party it now talks to,
the transferer leg that talked to that party)."""


class _Bounded:
    """A map that forgets its oldest entries past ``_MAX_REMEMBERED`` (a dict inside,
    not a dict subclass: mypyc compiles classes, not subclasses of built-in maps)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}

    def remember(self, key: str, value: Any) -> None:
        items = self._items
        items.pop(key, None)  # re-remembered: now the newest
        items[key] = value
        while len(items) > _MAX_REMEMBERED:
            del items[next(iter(items))]

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def pop(self, key: str, default: Any = None) -> Any:
        return self._items.pop(key, default)

    def items(self) -> ItemsView[str, Any]:
        return self._items.items()

    def values(self) -> ValuesView[Any]:
        return self._items.values()

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __delitem__(self, key: str) -> None:
        del self._items[key]


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
        # Queue calls whose agent leg hung up, by that leg's Uniqueid: an AgentComplete
        # that lost the race with both channels still names the call by DestUniqueid.
        self.ended_calls = _Bounded()
        # ActionID -> failure reason, for an originated leg that hung up before its
        # OriginateResponse arrived (the leg's call is gone by then).
        self.originate_failures = _Bounded()
        # Transfers pbxis started and may have to report as failed (transferFailed):
        # blind ones by the transferee's Uniqueid (it dials the target itself), attended
        # ones by the prefix of the Local channel Asterisk creates to dial the target.
        self.transfers = _Bounded()  # transferee Uniqueid -> (action id, agent, to)
        self.consults = _Bounded()  # "Local/<to>@<context>-" -> (action id, agent, to)
        # Local channel pairs whose ;2 half dials an agent, by the pair's name without
        # ";n": an attended transfer names its target by the ;1 half (bridge_basic.c).
        self.local_legs = _Bounded()  # "Local/1002@agents-00000003" -> (agent, its leg's Uniqueid)
        # Agents whose state may have changed with no event naming them (a rebuild of
        # other agents reloaded a shared queue's count, a rebuild was given up): their
        # whole view is compared at their next change, not only the entry it touches.
        self.unreported: set[str] = set()
        self._dispatch: dict[str | None, tuple[Callable[[Message], Outcome] | None, bool]] = {}
        self._handlers: dict[str, Callable[[Message], Outcome]] = {
            "queuememberstatus": self._member,
            "queuememberadded": self._member,
            "queuememberpause": self._member,
            "queuememberpaused": self._member,  # Asterisk 11
            "queuememberpenalty": self._member,
            "queuememberringinuse": self._member,
            "queuememberremoved": self._member_removed,
            "queuecallerjoin": self._caller_joined,
            "join": self._caller_joined,  # Asterisk 11
            "queuecallerleave": self._caller_count,
            "leave": self._caller_count,
            "extensionstatus": self._extension,
            "agentcalled": self._agent_called,
            "agentconnect": self._agent_connect,
            "agentcomplete": self._agent_complete,
            "dialbegin": self._dial_begin,
            "dialend": self._dial_end,
            "attendedtransfer": self._attended_transfer,
            "hangup": self._hangup,
            "varset": self._varset,
            "originateresponse": self._originate_response,
        }

    # -- entry point -------------------------------------------------------------------
    def apply(self, message: Message) -> Outcome:
        """Apply one asynchronous event; list items (they carry an ActionID) are ignored."""
        # Dispatch on the name as Asterisk spells it (one dict look-up, no lowering per
        # event); each spelling is resolved once, case-insensitively.
        name = message.event
        found = self._dispatch.get(name)
        if found is None:
            found = self._resolve(name)
        handler, originate = found
        if handler is None:
            return NOTHING
        # A list item of some action (an ActionID) is not a live event. ChanVariable
        # lines come with manager.conf channelvars only, so a look-up rules them out
        # before any scan; events built from a channel pointer spell them
        # ``ChanVariable(<channel>)`` (reference §3.1): of ours only OriginateResponse is.
        # Most events have neither: one call tells.
        if originate:
            self._note_recording(message)
        elif not message.lacks(_LIST_ITEM_OR_VARIABLES):
            if message.get("ActionID") is not None:
                return NOTHING
            if message.get("ChanVariable") is not None:
                self._note_recording(message)
        return handler(message)

    def _resolve(self, name: str | None) -> tuple[Callable[[Message], Outcome] | None, bool]:
        folded = (name or "").lower()
        found = (self._handlers.get(folded), folded == "originateresponse")
        if len(self._dispatch) < _MAX_SPELLINGS:  # event names are a small vocabulary
            self._dispatch[name] = found
        return found

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
        status, paused, reason, membership, in_call = message.values(_MEMBER_FIELDS)
        member.status = to_int(status, member.status)
        if paused is not None:
            member.paused = truth(paused)
        # PausedReason (13.8+), Reason (QueueMemberPaused of 11, deprecated in 13-17).
        if reason is None:
            reason = message.get("Reason")
        if reason is not None:
            member.reason = reason
        member.membership = membership or member.membership
        member.in_call = truth(in_call)
        queue.members[agent] = member

    def _note_recording(self, message: Message) -> None:
        """``ChanVariable: MIXMONITOR_FILENAME=...`` (manager.conf channelvars) on the caller."""
        path = message.channel_variables().get(RECORDING_VARIABLE)
        if not path:
            return  # the common case: no look-up of the Uniqueid
        uid = message.get("Uniqueid")
        if uid:
            self.recordings.remember(uid, unescape(path))

    def _start_call(self, agent: str, call: Call) -> bool:
        """Put ``call`` on ``agent``'s phone; ``False`` if it already was there."""
        calls = self.agents[agent].calls
        existing = calls.get(call.key)
        if existing is not None:
            existing.stale = False
            # A later event may name a channel an earlier one did not (an originated
            # call learns its far end when the agent's channel dials it).
            existing.channel = existing.channel or call.channel
            existing.peer = existing.peer or call.peer
            existing.peer_id = existing.peer_id or call.peer_id
            return False
        calls[call.key] = call
        return True

    # -- queue members -----------------------------------------------------------------
    def _member(self, message: Message) -> Outcome:
        # The most frequent event (one per queue per device state change): the look-ups
        # of ``tracked`` and ``agent_of_member`` are written out here.
        name = message.get("Queue")
        queue = self.queues.get(name) if name else None
        if queue is None:
            return NOTHING
        assert name is not None
        agent = self.directory.by_interface(message.get("Interface") or message.get("Location"))
        record = self.agents.get(agent) if agent is not None else None
        if record is None or name not in record.queues:
            return NOTHING
        assert agent is not None
        self.set_member(queue, agent, message)
        return (QUEUE_MEMBER_STATUS, name), (agent,), ()

    def _member_removed(self, message: Message) -> Outcome:
        name = message.get("Queue")
        queue = self.tracked(name)
        if queue is None:
            return NOTHING
        agent = self.agent_of_member(message)
        if agent is None:
            return NOTHING
        assert name is not None
        queue.members.pop(agent, None)
        return member_key(name), (agent,), ()

    def _caller_joined(self, message: Message) -> Outcome:
        name = message.get("Queue")
        uid = message.get("Uniqueid")
        if uid and name:
            self.queue_callers.remember(uid, name)
        return self._count(name, message)

    def _caller_count(self, message: Message) -> Outcome:
        return self._count(message.get("Queue"), message)

    def _count(self, name: str | None, message: Message) -> Outcome:
        queue = self.queues.get(name) if name else None
        if queue is None:
            return NOTHING
        count = message.get("Count")
        if count is None:
            return NOTHING
        assert name is not None
        queue.count = max(0, to_int(count))
        return count_key(name), queue.watchers, ()

    # -- extension state ---------------------------------------------------------------
    def _extension(self, message: Message) -> Outcome:
        agent = message.get("Exten")
        if agent is None or agent not in self.agents:
            return NOTHING  # an extension no agent has: one look-up
        context, status = message.values(_EXTENSION_FIELDS)
        if context != self.hint_context:
            return NOTHING
        self.agents[agent].extension = to_int(status, -1)
        return EXTENSION_KEY, (agent,), ()

    # -- calls -------------------------------------------------------------------------
    def _queue_call(self, message: Message) -> tuple[str, Call] | None:
        """The call an Agent* event describes, attributed by Interface then DestChannel."""
        agent = self.agent_of_member(message) or self.agent_of_channel(message.get("DestChannel"))
        if agent is None:
            return None
        key, caller, number, name, queue, peer = message.values(_QUEUE_CALL_FIELDS)
        if not key or not caller:
            return None
        call = Call(
            key=key,
            number=_number(number),
            name=_name(name),
            direction="in",
            unique_id=caller,
            queue=queue,
            channel=message.get("DestChannel"),
            peer=peer,
            peer_id=caller,
        )
        return agent, call

    def _agent_called(self, message: Message) -> Outcome:
        found = self._queue_call(message)
        if found is None or not self._start_call(*found):
            return NOTHING
        return PHONE_KEY, (found[0],), ()

    def _agent_connect(self, message: Message) -> Outcome:
        # Normally AgentCalled already started the call; after a rebuild it may not have.
        return self._agent_called(message)

    def _agent_complete(self, message: Message) -> Outcome:
        found = self._queue_call(message) or self._completed_call(message)
        if found is None:
            return NOTHING
        agent, call = found
        # Not forgotten here: MixMonitor runs on the caller, so a call transferred to
        # another agent goes on recording into the same file (the table is bounded;
        # the AgentComplete of a caller already hung up still finds it).
        recording = self.recordings.get(call.unique_id)
        data = {
            "uniqueId": call.unique_id,
            "queue": message.get("Queue") or call.queue,
            "talkTime": to_int(message.get("TalkTime")),
            "holdTime": to_int(message.get("HoldTime")),
            "recording": recording,
            "reason": (message.get("Reason") or "caller").lower(),
        }
        return (), (), (Instant(agent, AGENT_COMPLETE, data),)

    def _completed_call(self, message: Message) -> tuple[str, Call] | None:
        """An AgentComplete without ``Channel``/``Uniqueid``/``CallerID*`` (a race seen on
        Asterisk 20 and 22: the caller's channel was gone when app_queue reported). The
        agent (Interface, else DestChannel) and its leg's ``DestUniqueid`` still name the
        call we saw ring, live or just hung up."""
        agent = self.agent_of_member(message) or self.agent_of_channel(message.get("DestChannel"))
        key = message.get("DestUniqueid")
        if agent is None or not key:
            return None
        call = self.agents[agent].calls.get(key) or self.ended_calls.get(key)
        return (agent, call) if call is not None else None

    def _dial_begin(self, message: Message) -> Outcome:
        changed: list[str] = []
        caller_channel, caller_key, dest_channel, dest_key = message.values(_DIAL_FIELDS)
        dest_agent = self.agent_of_channel(dest_channel)
        if dest_agent:
            if not dest_key:
                pass
            elif caller_channel is None:
                if self._originate_rings(dest_agent, dest_key, dest_channel):
                    changed.append(dest_agent)
            elif caller_key:
                call = Call(
                    key=dest_key,
                    number=_number(message.get("CallerIDNum")),
                    name=_name(message.get("CallerIDName")),
                    direction="in",
                    unique_id=caller_key,
                    queue=self.queue_callers.get(caller_key),
                    channel=dest_channel,
                    peer=caller_channel,
                    peer_id=caller_key,
                )
                if self._start_call(dest_agent, call):
                    changed.append(dest_agent)
                if caller_channel.endswith(";2") and caller_channel[:6].lower() == "local/":
                    self.local_legs.remember(caller_channel[:-2], (dest_agent, dest_key))
        src_agent = self.agent_of_channel(caller_channel)
        if src_agent and caller_key:
            # The dialled number is where the agent's channel is in the dialplan; the
            # far end's caller ID is a copy of ours unless it is another agent.
            # ``Exten: s`` is where an originated channel starts (Asterisk 22 shows it).
            exten = _number(message.get("Exten"))
            dialled = (exten if exten != "s" else None) or _number(message.get("DestCallerIDNum"))
            name = _name(message.get("DestCallerIDName")) if dest_agent else None
            call = Call(caller_key, dialled, name, "out", caller_key, channel=caller_channel)
            call.peer, call.peer_id = dest_channel, dest_key
            if self._start_call(src_agent, call) and src_agent not in changed:
                changed.append(src_agent)
        return (PHONE_KEY, changed, ()) if changed else NOTHING

    def _originate_rings(self, agent: str, key: str, channel: str | None = None) -> bool:
        """An Originate rings the agent's phone: the number is the one we were asked to dial."""
        for action_id, (who, number) in self.originates.items():
            if who == agent and not self._bound(agent, action_id):
                call = Call(key, number, None, "out", key, action_id=action_id, channel=channel)
                return self._start_call(agent, call)
        return False

    def _bound(self, agent: str, action_id: str) -> bool:
        return any(c.action_id == action_id for c in self.agents[agent].calls.values())

    def _dial_end(self, message: Message) -> Outcome:
        """The outgoing leg of a click-to-call failed after the agent answered, or the
        agent's own phone refused the originated call (no ``Channel``: the originate
        thread dialled it)."""
        status = message.get("DialStatus")
        reason = dial_failure_reason(status)
        transfer = self._transfer_dialled(message, status, reason) if status else None
        if transfer is not None:
            return transfer
        if reason is None:
            return NOTHING
        channel = message.get("Channel")
        if channel is None:
            return self._leg_failed(self.agent_of_channel(message.get("DestChannel")),
                                    message.get("DestUniqueid"), reason)  # fmt: skip
        agent = self.agent_of_channel(channel)
        key = message.get("Uniqueid")
        if agent is None or key is None:
            return NOTHING
        call = self.agents[agent].calls.get(key)
        if call is None or call.action_id is None or call.failure_reported:
            return NOTHING
        call.failure_reported = True
        data = {"actionId": call.action_id, "number": call.number, "reason": reason}
        return (), (), (Instant(agent, ORIGINATE_FAILED, data),)

    def _transfer_dialled(self, message: Message, dial_status: str, reason: str | None) -> Outcome | None:
        """The end of the target's ringing, for a transfer pbxis started: ``transferFailed``
        when it was busy, unanswered or unreachable; forgotten when it answered."""
        if not self.transfers and not self.consults:
            return None  # no transfer of ours under way: the common case, no look-up
        status = dial_status.upper()
        if status not in ("ANSWER", "BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL", "CANCEL"):
            return None
        uid, channel = message.get("Uniqueid") or "", message.get("Channel") or ""
        table, key = self.transfers, uid
        if key not in table:
            table, key = self.consults, next((p for p in self.consults if channel.startswith(p)), "")
            if not key:
                return None
        action_id, agent, to = table.pop(key)
        if reason is None or agent not in self.agents:
            return NOTHING
        data = {"actionId": action_id, "to": to, "reason": reason}
        return (), (), (Instant(agent, TRANSFER_FAILED, data),)

    def _leg_failed(self, agent: str | None, key: str | None, reason: str) -> Outcome:
        """Why the agent's originated leg failed; sends an ``originateFailed`` held back for it."""
        if agent is None or not key:
            return NOTHING
        call = self.agents[agent].calls.get(key)
        if call is None or call.action_id is None:
            return NOTHING
        if call.failure is None:
            call.failure = reason
        return self._release_failure(agent, call)

    def _release_failure(self, agent: str, call: Call) -> Outcome:
        data, call.pending_failure = call.pending_failure, None
        if data is None or call.failure_reported:
            return NOTHING
        call.failure_reported = True
        data["reason"] = call.failure or "failed"
        return (), (), (Instant(agent, ORIGINATE_FAILED, data),)

    def _attended_transfer(self, message: Message) -> Outcome:
        """The transferee and the target now talk: each that is an agent's call shows the other.

        The transferer's legs (``OrigTransferer`` faces the transferee, ``SecondTransferer``
        the target) leave the call here, whatever order their Hangups come in: if the
        consultation leg hung up first, the first leg would otherwise show the
        transferred party again. Only the leg that stays in a three-way call remains.
        """
        if (message.get("Result") or "").lower() != "success":
            return NOTHING
        changed: list[str] = []
        for mine, theirs, facing in _TRANSFER_SIDES:
            agent = self._take_party(message, mine, theirs, facing)
            if agent is not None and agent not in changed:
                changed.append(agent)
        for agent in self._end_transferer_legs(message):
            if agent not in changed:
                changed.append(agent)
        return (PHONE_KEY, changed, ()) if changed else NOTHING

    def _take_party(self, message: Message, mine: str, theirs: str, facing: str) -> str | None:
        """``mine``'s call (if an agent's) now shows party ``theirs``; the agent, if it changed."""
        channel = message.get(mine + "Channel") or ""
        agent = self.agent_of_channel(channel)
        key = message.get(mine + "Uniqueid")
        if agent is None and channel.endswith(";1"):
            # Atxfer dials the target through Local/<exten>@<context>: the target party
            # is the ;1 half, and the agent's leg is the one its ;2 half dialled.
            agent, key = self.local_legs.get(channel[:-2], (None, None))
            agent = agent if agent in self.agents else None
        party = message.get(theirs + "Uniqueid")
        if agent is None or not key or not party:
            return None
        call = self.agents[agent].calls.get(key)
        if call is None:
            return None
        # The agent's own leg did not change: its direction stays; the far end did.
        call.number = _number(message.get(theirs + "CallerIDNum"))
        call.name = _name(message.get(theirs + "CallerIDName"))
        call.unique_id = party
        call.peer, call.peer_id = message.get(theirs + "Channel"), party
        call.queue = self.queue_callers.get(party) or self._leg_queue(message, facing)
        return agent

    def _leg_queue(self, message: Message, leg: str) -> str | None:
        """The queue the transferer's ``leg`` had its call from: ``queue_callers`` is
        bounded and a rebuild recovers calls without filling it."""
        agent = self.agent_of_channel(message.get(leg + "Channel"))
        call = self.agents[agent].calls.get(message.get(leg + "Uniqueid") or "") if agent else None
        return call.queue if call is not None else None

    def _end_transferer_legs(self, message: Message) -> list[str]:
        survivor = message.get("DestTransfererChannel")  # DestType Threeway only
        ended: list[str] = []
        for leg in ("OrigTransferer", "SecondTransferer"):
            channel = message.get(leg + "Channel")
            key = message.get(leg + "Uniqueid")
            agent = self.agent_of_channel(channel)
            if agent is None or not key or channel == survivor:
                continue
            if self.agents[agent].calls.pop(key, None) is not None and agent not in ended:
                ended.append(agent)
        return ended

    def _hangup(self, message: Message) -> Outcome:
        key, channel = message.values(_HANGUP_FIELDS)
        if not key:
            return NOTHING
        self.queue_callers.pop(key, None)
        self.transfers.pop(key, None)
        # Calls are keyed by the agent's own channel, so its Hangup names the agent.
        agent = self.agent_of_channel(channel)
        call = self.agents[agent].calls.pop(key, None) if agent else None
        if agent is None or call is None:
            return NOTHING
        instants: Sequence[Instant] = ()
        if call.queue is not None and call.direction == "in":
            self.ended_calls.remember(key, call)
        elif call.action_id is not None and not call.failure_reported:
            if call.failure is None and to_int(message.get("Cause")) != _NORMAL_CLEARING:
                call.failure = hangup_failure_reason(to_int(message.get("Cause")))
            if call.pending_failure is not None:
                instants = self._release_failure(agent, call)[2]
            elif call.failure is not None and call.action_id in self.originates:
                self.originate_failures.remember(call.action_id, call.failure)
        return PHONE_KEY, (agent,), instants

    def _varset(self, message: Message) -> Outcome:
        uid = message.get("Uniqueid")
        if message.get("Variable") == RECORDING_VARIABLE and uid:
            path = unescape(message.get("Value"))
            if path:
                self.recordings.remember(uid, path)
        return NOTHING

    def _originate_response(self, message: Message) -> Outcome:
        action_id = message.action_id
        if action_id is None or action_id not in self.originates:
            return NOTHING
        agent, number = self.originates.pop(action_id)
        if agent not in self.agents:
            return NOTHING
        if (message.get("Response") or "").lower() == "success":
            key = message.get("Uniqueid")
            if key and key != "<unknown>" and not self._bound(agent, action_id):
                call = Call(key, number, None, "out", key, action_id=action_id)
                call.channel = message.get("Channel")
                if self._start_call(agent, call):
                    return PHONE_KEY, (agent,), ()
            return NOTHING
        code = to_int(message.get("Reason"), 0)
        data = {"actionId": action_id, "number": number, "reason": originate_reason(code)}
        if code == 0:
            # Asterisk 21+ (PJSIP): a phone that said 486 fails the originate with
            # Reason 0; its leg's DialEnd/Hangup tell busy apart from a real failure.
            known = self.originate_failures.pop(action_id, None)
            leg = self._bound_call(agent, action_id)
            if known is not None:
                data["reason"] = known
            elif leg is not None and not leg.failure_reported:
                leg.pending_failure = data
                return self._release_failure(agent, leg) if leg.failure else NOTHING
        return (), (), (Instant(agent, ORIGINATE_FAILED, data),)

    def _bound_call(self, agent: str, action_id: str) -> Call | None:
        return next((c for c in self.agents[agent].calls.values() if c.action_id == action_id), None)
