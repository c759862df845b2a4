"""The supervisors' view of whole queues: AMI events in, supervisor events out. Pure.

A supervisor watches queues, not one phone. Per supervised queue the board keeps

* the **counters** Asterisk keeps itself (completed, abandoned, service level and its
  performance, average hold and talk time), taken only from ``QueueParams`` items, so
  they equal what ``queue show`` prints and survive a restart of pbxis. Asterisk sends
  no event when they change; the board asks for them (:meth:`QueueBoard.take_refreshes`)
  after the events that change them: ``AgentComplete`` (completed, talk time, service
  level) and ``QueueCallerAbandon`` (abandoned). That is one small action per call,
  never a timer;
* the **waiting callers** in queue order, from ``QueueCallerJoin``/``QueueCallerLeave``
  (and the ``QueueEntry`` items of the same answers, which correct any drift);
* **every member** of the queue, registered agent or not, from the ``QueueMember*``
  events, with the time its current status began.

Every event is absolute state and is emitted only when it differs from what the
queue's supervisors were last shown, so a rebuild after an outage emits exactly the
differences. ``queueStats`` is throttled: at most one per queue per
``stats_interval_ms``; changes within the interval are coalesced into the next one,
which :meth:`QueueBoard.flush` emits when :meth:`QueueBoard.next_flush_ms` is due
(the caller owns the timer; time always comes in as ``now_ms``).

Events are built once per queue and copied per supervisor of that queue: supervisors
are few, queues' events many.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..ami.message import Message
from ..events import PBX_STATUS, QUEUE_CALLERS, QUEUE_MEMBER, QUEUE_STATS, AgentEvent
from ..tracker.channels import unescape
from ..tracker.codes import member_status, to_int, truth
from ..tracker.rebuild import PlannedAction

__all__ = ["NO_MEMBER", "STATS_INTERVAL_MS", "QueueBoard"]

STATS_INTERVAL_MS: Final = 1000

MAX_CALLERS: Final = 10_000
"""Waiting callers kept per queue. Asterisk tells of every leave, and every counter read
replaces the list with Asterisk's own, so this only bounds memory against a stream
that announces callers and never their leaving."""

MAX_MEMBERS: Final = 10_000
"""Members kept per queue, for the same reason: a member is created by any
``QueueMember*`` event naming a new interface, and a load's answer replaces them all."""

NO_MEMBER: Final = "pbxis/no-such-member"
"""``QueueStatus`` ``Member`` value that matches no member (``Member`` is compared
with each member's interface and name; this is neither a channel technology nor a
name a dialplan gives): the answer is the queue's ``QueueParams`` and its waiting
callers only, the cheapest way to read the counters."""

# Device states (enum ast_device_state).
_UNKNOWN, _NOT_INUSE, _INUSE, _BUSY, _INVALID, _UNAVAILABLE, _RINGING, _RINGINUSE, _ONHOLD = range(9)
_IN_CALL_STATES: Final = frozenset({_INUSE, _BUSY, _RINGINUSE, _ONHOLD})
_RINGING_STATES: Final = frozenset({_RINGING, _RINGINUSE})
_ABSENT_STATES: Final = frozenset({_INVALID, _UNAVAILABLE})

_MEMBER_EVENTS: Final = frozenset(
    {
        "queuememberstatus",
        "queuememberadded",
        "queuememberpause",
        "queuememberpaused",
        "queuememberpenalty",
        "queuememberringinuse",
    }
)


@dataclass(slots=True)
class _Member:
    interface: str
    name: str
    status: int = _UNKNOWN
    paused: bool = False
    reason: str = ""
    in_call: bool = False
    calls_taken: int = 0
    last_call: int | None = None  # ms
    since: int = 0  # ms: when (status, paused) last changed


@dataclass(slots=True)
class _Caller:
    unique_id: str
    number: str | None
    name: str | None
    since: int  # ms: when the caller joined the queue


@dataclass(slots=True)
class _Counters:
    completed: int = 0
    abandoned: int = 0
    service_level: int = 0
    service_level_perf: float = 0.0
    hold_time: int = 0
    talk_time: int = 0


@dataclass(slots=True)
class _Queue:
    name: str
    supervisors: list[str] = field(default_factory=list)  # registration order
    members: dict[str, _Member] = field(default_factory=dict)  # by interface
    callers: list[_Caller] = field(default_factory=list)  # queue order
    counters: _Counters = field(default_factory=_Counters)
    loaded: bool = False  # a QueueStatus answer was applied since the last login
    shown_stats: dict[str, Any] | None = None  # without longestWait
    shown_callers: list[dict[str, Any]] | None = None
    shown_members: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats_emitted_at: int | None = None
    stats_due: bool = False


class QueueBoard:
    """Supervisors, their queues and the queues' live state; see the module docstring.

    Supervisors are named by their hub key (opaque here). ``agent_of(interface)`` names
    the agent a member interface belongs to (``None``: the member is shown by its
    interface).
    """

    def __init__(
        self,
        agent_of: Callable[[str], str | None],
        *,
        stats_interval_ms: int = STATS_INTERVAL_MS,
        max_callers: int = MAX_CALLERS,
        max_members: int = MAX_MEMBERS,
    ) -> None:
        self._agent_of = agent_of
        self._interval = stats_interval_ms
        self._max_callers = max_callers
        self._max_members = max_members
        self._queues: dict[str, _Queue] = {}
        self._supervisors: dict[str, tuple[str, ...]] = {}
        self._refresh: set[str] = set()
        self.connected = False

    # -- supervisors ---------------------------------------------------------------------
    def register(self, supervisor: str, queues: Sequence[str], now_ms: int) -> list[AgentEvent]:
        """Watch ``queues`` for ``supervisor``. A new supervisor starts from its
        snapshot (nothing to emit); one that adds queues gets their current state."""
        wanted = tuple(dict.fromkeys(queues))
        old = self._supervisors.get(supervisor)
        self._supervisors[supervisor] = wanted
        for name in set(old or ()) - set(wanted):
            self._leave(supervisor, name)
        added = [name for name in wanted if old is None or name not in old]
        for name in added:
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = _Queue(name)
            queue.supervisors.append(supervisor)
        if old is None:
            return []
        return [e for name in added for e in self._queue_snapshot(supervisor, self._queues[name], now_ms)]

    def unregister(self, supervisor: str) -> None:
        for name in self._supervisors.pop(supervisor, ()):
            self._leave(supervisor, name)

    def _leave(self, supervisor: str, name: str) -> None:
        queue = self._queues[name]
        queue.supervisors.remove(supervisor)
        if not queue.supervisors:
            del self._queues[name]
            self._refresh.discard(name)

    def queues_of(self, supervisor: str) -> tuple[str, ...] | None:
        return self._supervisors.get(supervisor)

    @property
    def supervisors(self) -> int:
        return len(self._supervisors)

    @property
    def watching(self) -> bool:
        """Whether any queue is supervised: with none, events cost one test."""
        return bool(self._queues)

    @property
    def supervised(self) -> list[str]:
        """Every queue some supervisor watches."""
        return list(self._queues)

    def unloaded(self) -> list[str]:
        """Supervised queues whose state has not been read since the last login."""
        return [name for name, queue in self._queues.items() if not queue.loaded]

    def snapshot(self, supervisor: str, now_ms: int) -> list[AgentEvent]:
        """The current state of ``supervisor``'s queues, as ordinary events."""
        events: list[AgentEvent] = []
        for name in self._supervisors.get(supervisor, ()):
            events.extend(self._queue_snapshot(supervisor, self._queues[name], now_ms))
        if not self.connected and supervisor in self._supervisors:
            events.append(AgentEvent(supervisor, PBX_STATUS, now_ms, {"connected": False}))
        return events

    def _queue_snapshot(self, supervisor: str, queue: _Queue, now_ms: int) -> list[AgentEvent]:
        events = [
            AgentEvent(supervisor, QUEUE_STATS, now_ms, self._stats(queue, now_ms)),
            AgentEvent(supervisor, QUEUE_CALLERS, now_ms, {"queue": queue.name, "callers": _callers(queue)}),
        ]
        events.extend(
            AgentEvent(supervisor, QUEUE_MEMBER, now_ms, self._member_data(queue.name, member))
            for member in _ordered(queue.members)
        )
        return events

    def state(self, supervisor: str, now_ms: int) -> dict[str, Any] | None:
        """``GET /supervisors/{name}``: the supervisor's queues as one document."""
        names = self._supervisors.get(supervisor)
        if names is None:
            return None
        queues = {}
        for name in names:
            queue = self._queues[name]
            queues[name] = {
                "stats": self._stats(queue, now_ms),
                "callers": _callers(queue),
                "members": [self._member_data(name, m) for m in _ordered(queue.members)],
            }
        return {"queues": queues, "pbxConnected": self.connected}

    # -- live events ---------------------------------------------------------------------
    def handle(self, message: Message, now_ms: int) -> list[AgentEvent]:
        """Digest one asynchronous AMI event (list items, with an ActionID, are ignored)."""
        if not self._queues or message.action_id is not None:
            return []
        kind = (message.event or "").lower()
        if kind in _MEMBER_EVENTS:
            return self._member_event(message, now_ms)
        if kind == "queuememberremoved":
            return self._member_removed(message, now_ms)
        if kind in ("queuecallerjoin", "join"):
            return self._caller_joined(message, now_ms)
        if kind in ("queuecallerleave", "leave"):
            return self._caller_left(message, now_ms)
        if kind in ("agentcomplete", "queuecallerabandon"):
            name = message.get("Queue")
            if name in self._queues:
                self._refresh.add(name)
        return []

    def take_refreshes(self) -> list[PlannedAction]:
        """The counter reads the last events call for (one per queue, then forgotten).
        A queue not loaded yet needs none: its load reads the counters too."""
        names, self._refresh = sorted(self._refresh), set()
        return [_counters_action(name) for name in names if self._queues[name].loaded]

    def link_down(self, now_ms: int) -> list[AgentEvent]:
        """The AMI link is gone: ``pbxStatus`` false; every queue is read again at login."""
        was, self.connected = self.connected, False
        self._refresh.clear()
        for queue in self._queues.values():
            queue.loaded = False
        if not was:
            return []
        return [AgentEvent(s, PBX_STATUS, now_ms, {"connected": False}) for s in self._supervisors]

    def link_up(self, now_ms: int) -> list[AgentEvent]:
        """The rebuild after a login is done: ``pbxStatus`` true to every supervisor."""
        if self.connected:
            return []
        self.connected = True
        return [AgentEvent(s, PBX_STATUS, now_ms, {"connected": True}) for s in self._supervisors]

    # -- rebuild and counters --------------------------------------------------------------
    def plan_load(self, queues: Iterable[str] | None = None) -> list[PlannedAction]:
        """One ``QueueStatus`` per queue (default: those not loaded since the last login):
        its counters, every member and every waiting caller, in one answer."""
        names = self.unloaded() if queues is None else [q for q in queues if q in self._queues]
        return [PlannedAction("QueueStatus", (("Queue", name),)) for name in names]

    def apply_result(self, planned: PlannedAction, items: Sequence[Message], now_ms: int) -> list[AgentEvent]:
        """Apply a ``QueueStatus`` answer (a load or a counter read) with replace
        semantics; emit what differs from what supervisors were shown."""
        name = planned.header("Queue")
        queue = self._queues.get(name or "")
        if queue is None or planned.name != "QueueStatus":
            return []
        full = planned.header("Member") is None
        entries: list[Message] = []
        members: dict[str, _Member] = {}
        for item in items:
            if (item.get("Queue") or "").lower() != queue.name.lower():
                continue
            kind = item.event
            if kind == "QueueParams":
                queue.counters = _counters(item)
            elif kind == "QueueEntry":
                entries.append(item)
            elif kind == "QueueMember" and full:
                interface = item.get("Location") or item.get("Interface")
                if interface and (interface in members or len(members) < self._max_members):
                    members[interface] = self._loaded_member(queue, interface, item, now_ms)
        events: list[AgentEvent] = []
        if full:
            queue.loaded = True
            for interface in list(queue.members):
                if interface not in members:
                    events.extend(self._drop_member(queue, interface, now_ms))
            queue.members = {}
            for interface, member in members.items():
                queue.members[interface] = member
                events.extend(self._show_member(queue, member, now_ms))
        self._replace_callers(queue, entries, now_ms)
        events.extend(self._show_callers(queue, now_ms))
        events.extend(self._stats_changed(queue, now_ms))
        return events

    # -- throttled queueStats ------------------------------------------------------------
    def next_flush_ms(self) -> int | None:
        """When :meth:`flush` has something to emit, or ``None``."""
        due = [
            (queue.stats_emitted_at or 0) + self._interval
            for queue in self._queues.values()
            if queue.stats_due
        ]
        return min(due, default=None)

    @property
    def stats_interval_ms(self) -> int:
        return self._interval

    def flush(self, now_ms: int) -> list[AgentEvent]:
        """The coalesced ``queueStats`` whose interval has passed."""
        events: list[AgentEvent] = []
        for queue in self._queues.values():
            self._clock_check(queue, now_ms)
            if queue.stats_due and (queue.stats_emitted_at or 0) + self._interval <= now_ms:
                queue.stats_due = False
                events.extend(self._stats_changed(queue, now_ms))
        return events

    # -- members -------------------------------------------------------------------------
    def _member_event(self, message: Message, now_ms: int) -> list[AgentEvent]:
        queue = self._queues.get(message.get("Queue") or "")
        interface = message.get("Interface") or message.get("Location")
        if queue is None or not interface:
            return []
        member = queue.members.get(interface)
        if member is None:
            if len(queue.members) >= self._max_members:
                return []
            member = queue.members[interface] = _Member(interface, interface, since=now_ms)
        before = (member.status, member.paused)
        member.name = unescape(message.get("MemberName")) or member.name
        member.status = to_int(message.get("Status"), member.status)
        if "Paused" in message:
            member.paused = truth(message.get("Paused"))
        reason = message.get("PausedReason")
        if reason is None:
            reason = message.get("Reason")
        if reason is not None:
            member.reason = reason
        if "InCall" in message:
            member.in_call = truth(message.get("InCall"))
        member.calls_taken = to_int(message.get("CallsTaken"), member.calls_taken)
        if "LastCall" in message:
            member.last_call = _epoch_ms(message.get("LastCall"))
        if (member.status, member.paused) != before:
            member.since = now_ms
        events = self._show_member(queue, member, now_ms)
        if events:
            events.extend(self._stats_changed(queue, now_ms))
        return events

    def _member_removed(self, message: Message, now_ms: int) -> list[AgentEvent]:
        queue = self._queues.get(message.get("Queue") or "")
        interface = message.get("Interface") or message.get("Location")
        if queue is None or not interface or interface not in queue.members:
            return []
        events = self._drop_member(queue, interface, now_ms)
        del queue.members[interface]
        events.extend(self._stats_changed(queue, now_ms))
        return events

    def _loaded_member(self, queue: _Queue, interface: str, item: Message, now_ms: int) -> _Member:
        """A ``QueueMember`` item; the status keeps its start time when it did not change."""
        member = _Member(
            interface,
            unescape(item.get("Name") or item.get("MemberName")) or interface,
            status=to_int(item.get("Status")),
            paused=truth(item.get("Paused")),
            reason=item.get("PausedReason") or "",
            in_call=truth(item.get("InCall")),
            calls_taken=to_int(item.get("CallsTaken")),
            last_call=_epoch_ms(item.get("LastCall")),
        )
        old = queue.members.get(interface)
        if old is not None and (old.status, old.paused) == (member.status, member.paused):
            member.since = old.since
        else:
            member.since = _status_start(member, item, now_ms)
        return member

    def _member_data(self, queue: str, member: _Member) -> dict[str, Any]:
        return {
            "queue": queue,
            "agent": self._agent_of(member.interface) or member.interface,
            "interface": member.interface,
            "name": member.name,
            "status": member_status(member.status),
            "loggedIn": True,
            "paused": member.paused,
            "pausedReason": member.reason,
            "inCall": member.in_call,
            "since": member.since,
            "callsTaken": member.calls_taken,
            "lastCall": member.last_call,
        }

    def _show_member(self, queue: _Queue, member: _Member, now_ms: int) -> list[AgentEvent]:
        data = self._member_data(queue.name, member)
        if queue.shown_members.get(member.interface) == data:
            return []
        queue.shown_members[member.interface] = data
        return self._fan_out(queue, QUEUE_MEMBER, now_ms, data)

    def _drop_member(self, queue: _Queue, interface: str, now_ms: int) -> list[AgentEvent]:
        """The member left the queue: one last ``queueMember`` with ``loggedIn`` false."""
        shown = queue.shown_members.pop(interface, None)
        if shown is None:
            return []
        data = {
            **shown,
            "status": "unknown",
            "loggedIn": False,
            "paused": False,
            "pausedReason": "",
            "inCall": False,
            "since": now_ms,
        }
        return self._fan_out(queue, QUEUE_MEMBER, now_ms, data)

    # -- callers -------------------------------------------------------------------------
    def _caller_joined(self, message: Message, now_ms: int) -> list[AgentEvent]:
        queue = self._queues.get(message.get("Queue") or "")
        uid = message.get("Uniqueid")
        if queue is None or not uid:
            return []
        self._remove_caller(queue, uid)
        if len(queue.callers) >= self._max_callers:
            return []
        caller = _Caller(
            uid, _known(message.get("CallerIDNum")), _known(unescape(message.get("CallerIDName"))), now_ms
        )
        position = to_int(message.get("Position"), len(queue.callers) + 1)
        queue.callers.insert(max(0, min(position - 1, len(queue.callers))), caller)
        return self._callers_changed(queue, now_ms)

    def _caller_left(self, message: Message, now_ms: int) -> list[AgentEvent]:
        queue = self._queues.get(message.get("Queue") or "")
        uid = message.get("Uniqueid")
        if queue is None or not uid or not self._remove_caller(queue, uid):
            return []
        return self._callers_changed(queue, now_ms)

    def _remove_caller(self, queue: _Queue, uid: str) -> bool:
        for index, caller in enumerate(queue.callers):
            if caller.unique_id == uid:
                del queue.callers[index]
                return True
        return False

    def _replace_callers(self, queue: _Queue, entries: list[Message], now_ms: int) -> None:
        """``QueueEntry`` items are the queue as it is: known callers keep their join time."""
        known = {c.unique_id: c for c in queue.callers}
        callers: list[_Caller] = []
        for entry in sorted(entries, key=lambda e: to_int(e.get("Position")))[: self._max_callers]:
            uid = entry.get("Uniqueid") or entry.get("Channel") or ""
            old = known.get(uid)
            since = old.since if old is not None else now_ms - 1000 * max(0, to_int(entry.get("Wait")))
            callers.append(
                _Caller(
                    uid, _known(entry.get("CallerIDNum")), _known(unescape(entry.get("CallerIDName"))), since
                )
            )
        queue.callers = callers

    def _callers_changed(self, queue: _Queue, now_ms: int) -> list[AgentEvent]:
        events = self._show_callers(queue, now_ms)
        events.extend(self._stats_changed(queue, now_ms))
        return events

    def _show_callers(self, queue: _Queue, now_ms: int) -> list[AgentEvent]:
        callers = _callers(queue)
        if callers == queue.shown_callers:
            return []
        queue.shown_callers = callers
        return self._fan_out(queue, QUEUE_CALLERS, now_ms, {"queue": queue.name, "callers": callers})

    # -- stats ---------------------------------------------------------------------------
    def _stats(self, queue: _Queue, now_ms: int) -> dict[str, Any]:
        data = _comparable_stats(queue)
        oldest = min((c.since for c in queue.callers), default=None)
        data["longestWait"] = 0 if oldest is None else max(0, (now_ms - oldest) // 1000)
        return data

    def _stats_changed(self, queue: _Queue, now_ms: int) -> list[AgentEvent]:
        """Emit ``queueStats`` if it changed and the interval allows; else note it due."""
        comparable = _comparable_stats(queue)
        if comparable == queue.shown_stats:
            queue.stats_due = False
            return []
        self._clock_check(queue, now_ms)
        if queue.stats_emitted_at is not None and now_ms - queue.stats_emitted_at < self._interval:
            queue.stats_due = True
            return []
        queue.shown_stats = comparable
        queue.stats_emitted_at = now_ms
        queue.stats_due = False
        return self._fan_out(queue, QUEUE_STATS, now_ms, self._stats(queue, now_ms))

    def _clock_check(self, queue: _Queue, now_ms: int) -> None:
        """``now_ms`` is the wall clock: one stepped back to before the last emission
        counts as the interval passed, not as a wait for the length of the step."""
        if queue.stats_emitted_at is not None and now_ms < queue.stats_emitted_at:
            queue.stats_emitted_at = now_ms - self._interval

    def _fan_out(self, queue: _Queue, kind: str, now_ms: int, data: dict[str, Any]) -> list[AgentEvent]:
        return [AgentEvent(s, kind, now_ms, data) for s in queue.supervisors]


def _comparable_stats(queue: _Queue) -> dict[str, Any]:
    """``queueStats`` without ``longestWait`` (which grows by itself every second)."""
    c = queue.counters
    counts = {"loggedIn": 0, "available": 0, "ringing": 0, "inCall": 0, "paused": 0, "unavailable": 0}
    for m in queue.members.values():
        if m.status in _ABSENT_STATES:
            counts["unavailable"] += 1
            continue
        counts["loggedIn"] += 1
        if m.paused:
            counts["paused"] += 1
        if m.status in _RINGING_STATES:
            counts["ringing"] += 1
        if m.in_call or m.status in _IN_CALL_STATES:
            counts["inCall"] += 1
        elif not m.paused and m.status in (_NOT_INUSE, _UNKNOWN):
            counts["available"] += 1
    return {
        "queue": queue.name,
        "waiting": len(queue.callers),
        "completed": c.completed,
        "abandoned": c.abandoned,
        "serviceLevel": c.service_level,
        "serviceLevelPerf": c.service_level_perf,
        "holdTime": c.hold_time,
        "talkTime": c.talk_time,
        "members": counts,
    }


def _counters(item: Message) -> _Counters:
    perf = item.get("ServicelevelPerf")
    if perf is None:
        perf = item.get("ServiceLevelPerf")  # the documented spelling; the wire has a lower-case l
    try:
        performance = round(float(perf or 0), 1)
    except ValueError:
        performance = 0.0
    if not math.isfinite(performance):
        performance = 0.0  # ``nan``/``inf`` would be rendered as NaN/Infinity: not JSON
    return _Counters(
        completed=to_int(item.get("Completed")),
        abandoned=to_int(item.get("Abandoned")),
        service_level=to_int(item.get("ServiceLevel")),
        service_level_perf=performance,
        hold_time=to_int(item.get("Holdtime") or item.get("HoldTime")),
        talk_time=to_int(item.get("TalkTime")),
    )


def _counters_action(queue: str) -> PlannedAction:
    return PlannedAction("QueueStatus", (("Queue", queue), ("Member", NO_MEMBER)))


def _callers(queue: _Queue) -> list[dict[str, Any]]:
    return [
        {"position": i, "number": c.number, "name": c.name, "since": c.since}
        for i, c in enumerate(queue.callers, 1)
    ]


def _ordered(members: dict[str, _Member]) -> list[_Member]:
    return sorted(members.values(), key=lambda m: m.interface)


def _known(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value in ("", "<unknown>", "unknown") else value


def _epoch_ms(value: str | None) -> int | None:
    seconds = to_int(value)
    return seconds * 1000 if seconds > 0 else None


def _status_start(member: _Member, item: Message, now_ms: int) -> int:
    """When a member's status began, as far as a ``QueueMember`` item tells: the last
    pause for a paused member, the end of its last call for an idle one, its login
    otherwise; never in the future, and ``now`` when Asterisk does not say."""
    if member.paused:
        start = _epoch_ms(item.get("LastPause"))
    elif member.status == _NOT_INUSE and not member.in_call:
        login = _epoch_ms(item.get("LoginTime"))
        start = max(member.last_call or 0, login or 0) or None
    else:
        start = None
    if start is None or start > now_ms:
        return now_ms
    return start
