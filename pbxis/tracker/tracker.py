"""The call-center tracker: AMI events in, per-agent events out. Pure: no I/O, no clock.

Every change an agent can see goes through one comparison: the agent's view after an
event against the view it last saw (``AgentRecord.seen``). That gives "no duplicates"
(Asterisk repeats QueueMemberStatus per queue and QueueMemberPause without change) and
makes a rebuild after an outage emit exactly the differences. A live event compares
only the view entry it touched, for the agents it named; a rebuild or a
re-registration compares whole views, of the agents concerned only.

While a rebuild runs, the agents in its scope are *pinned*: live events still update
their state (in wire order, interleaved with the answers being applied) but nothing is
emitted for them until :meth:`Tracker.finish_rebuild`, which emits ``pbxStatus`` true,
the differences, then the one-off events held meanwhile.

Queue-level state (``queueCount``: the same for every agent watching the queue) is, with
``queue_events=True``, emitted once per change as a :class:`~pbxis.events.QueueEvent`
instead of once per watching agent, and kept out of the per-agent views: a caller
joining a queue of a thousand agents is one event, not a thousand (issue #20). The hub
turns it into each agent's ``queueCount`` (see :mod:`pbxis.hub.hub`). What agents were
shown of a queue is then ``_shown[queue]``; a rebuild holds the queues of the agents it
pins and emits their counts at its end, after ``pbxStatus``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..ami.message import Message
from ..events import (
    PBX_STATUS,
    PHONE_NUMBER,
    QUEUE_COUNT,
    QUEUE_MEMBER_STATUS,
    RECORDING_STATUS,
    TRANSFER_FAILED,
    AgentEvent,
    QueueEvent,
)
from .channels import AgentDirectory
from .codes import member_status
from .digest import Instant, State
from .model import AgentRecord, QueueState, View, ViewKey, agent_view, count_entry, view_entry
from .rebuild import ActionResultLike, PlannedAction, apply_result, plan_actions, plan_followup

__all__ = ["CurrentCall", "Tracker"]


@dataclass(frozen=True, slots=True)
class CurrentCall:
    """What call control needs of an agent's call: the agent's own channel (hang up,
    transfer from, spy on), the far end (the caller for queue calls) and the channel
    whose MixMonitor records the call (the caller's, as app_queue starts it)."""

    channel: str
    unique_id: str
    peer: str | None
    peer_id: str | None
    recording: str | None
    recorded_channel: str | None
    recording_paused: bool


@dataclass
class _Rebuild:
    scope: frozenset[str]
    full: bool
    held: list[AgentEvent] = field(default_factory=list)


class Tracker:
    """Per-agent call-center state digested from one AMI event stream."""

    def __init__(
        self,
        *,
        interface_template: str = "SIP/{agent}",
        hint_context: str = "agents",
        queue_events: bool = False,
    ) -> None:
        self._queue_events = queue_events
        #: queue -> the ``queueCount`` data its watchers were last shown (``queue_events``)
        self._shown: dict[str, dict[str, Any]] = {}
        self._directory = AgentDirectory(interface_template)
        self._state = State(self._directory, hint_context)
        self._rebuild: _Rebuild | None = None
        self._last_now = 0
        self._known_hints: int | None = None
        self._registrations = 0
        self.connected = False

    # -- registration ------------------------------------------------------------------
    def register(self, agent: str, queues: Sequence[str], now_ms: int) -> list[AgentEvent]:
        """Track ``agent`` in ``queues``. A new agent starts from what it will be shown
        as a snapshot (nothing to emit); a re-registration emits the new queues' state."""
        wanted = tuple(dict.fromkeys(queues))
        for queue in wanted:
            self._state.queues.setdefault(queue, QueueState()).watchers.add(agent)
        record = self._state.agents.get(agent)
        if record is None:
            record = AgentRecord(agent, wanted, order=self._registrations, pbx_down=not self.connected)
            self._registrations += 1
            self._state.agents[agent] = record
            self._directory.add(agent)
            record.seen = self._view(record)
            return []
        added = [q for q in wanted if q not in record.queues]
        for queue in set(record.queues) - set(wanted):
            self._leave(agent, queue)
            record.seen.pop((QUEUE_MEMBER_STATUS, queue), None)
            record.seen.pop(("queueCount", queue), None)
        record.queues = wanted
        events = self._emit_changes([agent], now_ms)
        if self._queue_events and not self._pinned(agent):
            events.extend(AgentEvent(agent, QUEUE_COUNT, now_ms, self._count_shown(q)) for q in added)
        return events

    def unregister(self, agent: str) -> None:
        record = self._state.agents.pop(agent, None)
        if record is None:
            return
        self._directory.remove(agent)
        self._state.unreported.discard(agent)
        for queue in record.queues:
            self._leave(agent, queue)

    def _leave(self, agent: str, name: str) -> None:
        """``agent`` no longer watches queue ``name``; nobody watching, it is not tracked."""
        queue = self._state.queues[name]
        queue.members.pop(agent, None)
        queue.watchers.discard(agent)
        if not queue.watchers:
            del self._state.queues[name]
            self._shown.pop(name, None)

    def interface_of(self, agent: str) -> str:
        """The queue-member interface of ``agent`` (``SIP/1001``)."""
        return self._directory.interface_of(agent)

    @property
    def agents(self) -> list[str]:
        return list(self._state.agents)

    # -- live events -------------------------------------------------------------------
    def handle(self, message: Message, now_ms: int) -> list[AgentEvent | QueueEvent]:
        """Digest one AMI event; the events agents should see, in order."""
        key, agents, instants = self._state.apply(message)
        events: list[AgentEvent | QueueEvent]
        if not agents:
            events = []
        elif self._queue_events and key[0] == QUEUE_COUNT:
            events = self._queue_count(key[1], now_ms)
        else:
            events = self._emit_entry(key, agents, now_ms)
        if instants:
            events.extend(self._instants(instants, now_ms))
        return events

    def note_originate(self, action_id: str, agent: str, number: str) -> None:
        """Remember a click-to-call so its ringing and failures reach the agent."""
        self._state.originates.remember(action_id, (agent, number))

    # -- call control ------------------------------------------------------------------
    def current_call(self, agent: str) -> CurrentCall | None:
        """The channels of ``agent``'s current call as the event stream told them."""
        record = self._state.agents.get(agent)
        call = record.current_call if record is not None else None
        if call is None or call.channel is None:
            return None
        # MixMonitor runs on the caller for queue calls (app_queue), else on the agent's
        # own channel when the dialplan started it there.
        recordings = self._state.recordings
        recorded = next((uid for uid in (call.peer_id, call.key) if uid and uid in recordings), None)
        recording = recordings[recorded] if recorded is not None else None
        return CurrentCall(
            channel=call.channel,
            unique_id=call.unique_id,
            peer=call.peer,
            peer_id=call.peer_id,
            recording=recording,
            recorded_channel=recorded,
            recording_paused=call.recording_paused,
        )

    def note_transfer(
        self,
        action_id: str,
        agent: str,
        to: str,
        *,
        transferee: str | None = None,
        consult: str | None = None,
    ) -> None:
        """A transfer pbxis started: its failure to reach ``to`` becomes ``transferFailed``.

        ``transferee``: the Uniqueid that dials the target (blind); ``consult``: the
        prefix of the Local channel Asterisk creates for an attended one.
        """
        if transferee is not None:
            self._state.transfers.remember(transferee, (action_id, agent, to))
        if consult is not None:
            self._state.consults.remember(consult, (action_id, agent, to))

    def transfer_cancelled(self, agent: str, action_id: str, to: str, now_ms: int) -> list[AgentEvent]:
        """``transferFailed`` (``cancelled``) after CancelAtxfer succeeded."""
        for key, (aid, *_rest) in list(self._state.consults.items()):
            if aid == action_id:
                del self._state.consults[key]
        data = {"actionId": action_id, "to": to, "reason": "cancelled"}
        return [AgentEvent(agent, TRANSFER_FAILED, now_ms, data)]

    def recording_paused(self, agent: str, paused: bool, now_ms: int) -> list[AgentEvent]:
        """``recordingStatus`` once Asterisk confirmed MixMonitorMute on the agent's call."""
        record = self._state.agents.get(agent)
        call = record.current_call if record is not None else None
        if call is None:
            return []
        call.recording_paused = paused
        current = self.current_call(agent)
        data = {
            "uniqueId": call.unique_id,
            "recording": current.recording if current is not None else None,
            "paused": paused,
        }
        return [AgentEvent(agent, RECORDING_STATUS, now_ms, data)]

    def link_down(self, now_ms: int) -> list[AgentEvent | QueueEvent]:
        """The AMI link is gone: ``pbxStatus`` false to every agent that saw it up."""
        events = self.abort_rebuild()
        self.connected = False
        for record in self._state.agents.values():
            if not record.pbx_down:
                record.pbx_down = True
                events.append(AgentEvent(record.agent, PBX_STATUS, now_ms, {"connected": False}))
        return events

    # -- what an agent sees ------------------------------------------------------------
    def snapshot(self, agent: str, now_ms: int) -> list[AgentEvent]:
        """What ``agent`` has been shown so far, as ordinary events (for a new client)."""
        record = self._state.agents.get(agent)
        if record is None:
            return []
        events = [
            AgentEvent(agent, key[0], now_ms, dict(data))
            for key, data in record.seen.items()
            if data is not None
        ]
        if self._queue_events:  # counts after the member statuses, as in a view
            at = sum(1 for e in events if e.type != PHONE_NUMBER)
            counts = [AgentEvent(agent, QUEUE_COUNT, now_ms, self._count_shown(q)) for q in record.queues]
            events[at:at] = counts
        if record.pbx_down:
            events.append(AgentEvent(agent, PBX_STATUS, now_ms, {"connected": False}))
        return events

    def agent_state(self, agent: str) -> dict[str, Any] | None:
        """``GET /agents/{agent}``: the state the agent has been shown, as one document."""
        record = self._state.agents.get(agent)
        if record is None:
            return None
        seen = record.seen
        queues: dict[str, Any] = {}
        for name in record.queues:
            shown = seen.get((QUEUE_MEMBER_STATUS, name)) or {}
            member = self._state.queues[name].members.get(agent)
            queues[name] = {
                "membership": member.membership if member and shown.get("loggedIn") else None,
                "loggedIn": shown.get("loggedIn", False),
                "status": shown.get("status", "unknown"),
                "paused": shown.get("paused", False),
                "reason": shown.get("pausedReason", ""),
                "count": (
                    self._count_shown(name) if self._queue_events else seen.get(("queueCount", name)) or {}
                ).get("count", 0),
            }
        return {
            "agent": agent,
            "extension": (seen.get(("extensionStatus",)) or {}).get("status", "unknown"),
            "queues": queues,
            "call": seen.get((PHONE_NUMBER,)),
            "pbxConnected": not record.pbx_down,
        }

    def queues_state(self) -> dict[str, Any]:
        """``GET /queues``: every tracked queue, callers waiting, registered members."""
        out: dict[str, Any] = {}
        for name, queue in sorted(self._state.queues.items()):
            out[name] = {
                "queue": name,
                "count": queue.count,
                "members": [
                    {
                        "agent": agent,
                        "interface": self.interface_of(agent),
                        "membership": member.membership,
                        "status": member_status(member.status),
                        "paused": member.paused,
                        "pausedReason": member.reason,
                        "inCall": member.in_call,
                    }
                    for agent, member in sorted(queue.members.items())
                ],
            }
        return {"queues": out, "connected": self.connected}

    # -- rebuild -----------------------------------------------------------------------
    @property
    def rebuilding(self) -> bool:
        return self._rebuild is not None

    def plan_rebuild(self, agents: Sequence[str] | None = None) -> list[PlannedAction]:
        """The actions that reload ``agents`` (default: all registered) and their queues."""
        if agents is None:
            return plan_actions(self._state, list(self._state.agents), self._known_hints)
        return plan_actions(self._state, self._in_order(self._scope(agents)), self._known_hints)

    def begin_rebuild(self, agents: Sequence[str] | None = None) -> None:
        """Pin the agents in scope; ``agents=None`` is the full rebuild after a login."""
        if self._rebuild is not None:
            raise RuntimeError("a rebuild is already running")
        scope = self._scope(agents)
        self._rebuild = _Rebuild(scope, full=agents is None)
        for agent in scope:
            for call in self._state.agents[agent].calls.values():
                call.stale = True

    def apply_result(self, planned: PlannedAction, result: ActionResultLike) -> None:
        """Apply the answer to one planned action (call it when the answer arrives)."""
        if self._rebuild is None:
            raise RuntimeError("apply_result outside a rebuild")
        hints = apply_result(self._state, self._rebuild.scope, planned, result)
        if hints is not None:
            self._known_hints = hints

    def plan_followup(self) -> list[PlannedAction]:
        """After the first round: ``CoreShowChannels`` if some agent may be on a call."""
        if self._rebuild is None:
            return []
        return plan_followup(self._state, self._rebuild.scope)

    def finish_rebuild(self, now_ms: int) -> list[AgentEvent | QueueEvent]:
        """End the rebuild: ``pbxStatus`` true, then only what changed, then held events."""
        rebuild, self._rebuild = self._rebuild, None
        if rebuild is None:
            return []
        if rebuild.full:
            self.connected = True
        events: list[AgentEvent] = []
        for agent in self._in_order(a for a in rebuild.scope if a in self._state.agents):
            record = self._state.agents[agent]
            for key in [k for k, c in record.calls.items() if c.stale]:
                del record.calls[key]
            if record.pbx_down and self.connected:
                record.pbx_down = False
                events.append(AgentEvent(agent, PBX_STATUS, now_ms, {"connected": True}))
            events.extend(self._diff(record, now_ms))
        events.extend(e for e in rebuild.held if e.agent in self._state.agents)
        return [*events, *self._counts_changed(now_ms)]

    def abort_rebuild(self) -> list[AgentEvent | QueueEvent]:
        """Give up a rebuild (link lost): the one-off events held meanwhile, to publish."""
        rebuild, self._rebuild = self._rebuild, None
        if rebuild is None:
            return []
        for agent in rebuild.scope:
            record = self._state.agents.get(agent)
            if record is not None:
                self._state.unreported.add(agent)  # its state moved on, unseen
                for call in record.calls.values():
                    call.stale = False
        return [*rebuild.held, *self._counts_changed(self._last_now)]

    def _scope(self, agents: Sequence[str] | None) -> frozenset[str]:
        if agents is None:
            return frozenset(self._state.agents)
        return frozenset(a for a in agents if a in self._state.agents)

    def _in_order(self, agents: Iterable[str]) -> list[str]:
        """Registered ``agents`` in registration order: the order events always had."""
        records = self._state.agents
        return sorted(agents, key=lambda agent: records[agent].order)

    # -- emission ----------------------------------------------------------------------
    def _pinned(self, agent: str) -> bool:
        return self._rebuild is not None and agent in self._rebuild.scope

    def _view(self, record: AgentRecord) -> View:
        view = agent_view(record, self._state.queues)
        if self._queue_events:
            return {key: data for key, data in view.items() if key[0] != QUEUE_COUNT}
        return view

    def _count_shown(self, name: str) -> dict[str, Any]:
        """The ``queueCount`` data watchers of ``name`` were shown (``queue_events``)."""
        shown = self._shown.get(name)
        return dict(shown) if shown is not None else {"queue": name, "count": 0}

    def _queue_count(self, name: str, now_ms: int) -> list[AgentEvent | QueueEvent]:
        """A caller count changed: one event for the queue, unless a rebuild pins one of
        its watchers (then :meth:`finish_rebuild` emits it, after ``pbxStatus``)."""
        self._last_now = now_ms
        queue = self._state.queues.get(name)
        if queue is None:
            return []
        if self._rebuild is not None and not self._rebuild.scope.isdisjoint(queue.watchers):
            return []
        data = count_entry(name, self._state.queues)
        if data == self._count_shown(name):
            return []
        self._shown[name] = data
        return [QueueEvent(name, QUEUE_COUNT, now_ms, data)]

    def _counts_changed(self, now_ms: int) -> list[QueueEvent]:
        """After a rebuild: one event per queue whose count moved since it was shown."""
        if not self._queue_events:
            return []
        out = []
        for name in self._state.queues:
            data = count_entry(name, self._state.queues)
            if data != self._count_shown(name):
                self._shown[name] = data
                out.append(QueueEvent(name, QUEUE_COUNT, now_ms, data))
        return out

    def _emit_changes(self, agents: Sequence[str], now_ms: int) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for agent in agents:
            if not self._pinned(agent):
                events.extend(self._diff(self._state.agents[agent], now_ms))
        return events

    def _emit_entry(
        self, key: ViewKey, agents: Collection[str], now_ms: int
    ) -> list[AgentEvent | QueueEvent]:
        """A live event: the changes of one view entry, for the agents it concerns."""
        state = self._state
        records, queues = state.agents, state.queues
        if len(agents) > 1:
            agents = self._in_order(agents)
        rebuild = self._rebuild
        pinned = rebuild.scope if rebuild is not None else _NOBODY
        unreported = state.unreported
        kind = key[0]
        # A caller count goes to every watcher of the queue: computed once.
        shared = count_entry(key[1], queues) if kind == QUEUE_COUNT else None
        events: list[AgentEvent | QueueEvent] = []
        for agent in agents:
            if agent in pinned:
                continue
            record = records[agent]
            if agent in unreported:
                events.extend(self._diff(record, now_ms))
                continue
            seen = record.seen
            old = seen.get(key, _UNSEEN)
            if old is _UNSEEN:  # not an entry of this agent's view (a queue it does not watch)
                continue
            if shared is not None:
                if shared != old:
                    seen[key] = shared
                    events.append(AgentEvent(agent, kind, now_ms, dict(shared)))
                continue
            data: dict[str, Any] | None = view_entry(record, key, queues)
            if data != old:
                seen[key] = data
                if data is None:
                    events.append(_news(agent, kind, now_ms, data, old))
                else:
                    # the common case, inline. ``data`` is this agent's own, just built,
                    # and neither its view nor an event is ever changed in place: both
                    # hold the one dict
                    events.append(AgentEvent(agent, kind, now_ms, data))
        return events

    def _diff(self, record: AgentRecord, now_ms: int) -> list[AgentEvent]:
        """The changes of ``record``'s whole view (rebuild, re-registration)."""
        self._state.unreported.discard(record.agent)
        view = self._view(record)
        seen = record.seen
        events = [
            _news(record.agent, key[0], now_ms, data, seen.get(key))
            for key, data in view.items()
            if data != seen.get(key)
        ]
        record.seen = view
        return events

    def _instants(self, instants: Sequence[Instant], now_ms: int) -> list[AgentEvent]:
        out: list[AgentEvent] = []
        for instant in instants:
            event = AgentEvent(instant.agent, instant.type, now_ms, instant.data)
            if self._pinned(instant.agent):
                assert self._rebuild is not None
                self._rebuild.held.append(event)
            else:
                out.append(event)
        return out


_UNSEEN: Final = object()
_NOBODY: Final[frozenset[str]] = frozenset()


def _news(agent: str, type: str, now_ms: int, data: dict[str, Any] | None, old: Any) -> AgentEvent:
    """The event telling ``agent`` that a view entry changed from ``old`` to ``data``."""
    if data is None:  # the call ended: same call, no number
        return AgentEvent(agent, type, now_ms, {**old, "number": None, "name": None})
    return AgentEvent(agent, type, now_ms, dict(data))
