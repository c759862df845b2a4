"""Registered agents, their stream tokens, numbered event logs and grace periods.

No HTTP and no AMI here: the tracker's events come in through :meth:`Hub.publish`,
transports read through :class:`Subscription` objects. The only Twisted dependency is
an injected ``IReactorTime`` (grace timers, retention clock).

Semantics
---------
*Ids.* Each registration has one log numbered 1, 2, 3... Every event any client of that
agent ever sees is in that log, including the state snapshot, ``reset`` and ``closed``
events, so an id means the same thing on every transport and every tab.

*New client* (``since`` is ``None`` or ``0``): the current state, from the injected
``snapshot(agent)``, is appended to the log; the client reads from just before it. Other
connected clients of the agent get those state events too. That is harmless because
they carry absolute state (a status, a count), never deltas, and it keeps one rule for
everybody: a client resumes from any id it saw, snapshot or not.

A snapshot appended less than ``snapshot_window`` seconds ago, still in the log, is
reused: the new client reads from just before *it*, then every later event, which is
the same state, with no new entries for anybody. So however fast clients of one token
connect, the others receive at most one snapshot per window (issue #12 item 3: 1,500
connects on one token used to push 898 MB to the others). ``max_clients`` caps the
connected clients of one registration: past it, :meth:`Hub.subscribe` raises
:class:`TooManyClients` (HTTP 429 ``too_many_clients``, WebSocket close 4429).

*Queue state* (issue #20). ``queueCount`` is the same for every agent watching a queue.
The tracker emits it once per change, as a :class:`~pbxis.events.QueueEvent`; the hub
records it in the store as the queue's latest state, under a version (one write,
whatever the number of agents on the queue), and marks the queue dirty. Each agent's
log carries the version of each of its queues' states it already shows. A queue state
enters an agent's log, as an ordinary numbered ``queueCount`` of that agent, when the
log needs it: at the end of the reactor turn (one flush for every dirty queue) for
agents with a connected client, before any other event appended to that agent's log
(so order is kept: what happened to the queue before an agent's event is logged before
it), and when a client subscribes. Flushes are at least ``queue_tick`` seconds apart
(the first change after a quiet spell goes out at the end of its reactor turn), so a
flood costs at most one ``queueCount`` per listening agent and queue per tick: with the
default 0.2 s, five counts a second per queue (more than anybody reads), so 5,000
connected agents on one busy queue cost 25,000 appends a second however many callers
come and go. Agents without clients cost nothing per caller; when one comes back its
log catches up with the latest state of each queue, once. States
are absolute and the latest wins: a burst of a hundred joins within one turn is one
``queueCount`` per listening agent, not a hundred. The JSON after the agent is rendered
once per state and shared. Ids stay consecutive per registration and every guarantee
below holds as for any other event, because a queue state becomes a log entry before
any client is handed it.

Why this design rather than a per-queue log merged into each agent's stream at read
time: a merged stream has no single sequence of ids per registration (a resume would
need a cursor per log), and with the Redis store (issue #15) every read would then
touch one stream per queue plus the agent's. Here the store has one log per
registration with consecutive ids and an append under a fencing token, as before, plus
one small hash per queue: the Redis round trips per AMI event are one, whatever the
number of agents the event concerns, and catching up the listening agents is one
script per tick for all of them.

*Memory.* Each log holds at most ``max_log`` entries and all logs together at most
``max_log_bytes`` bytes (JSON, frames and a per-entry overhead): past that the store
drops the oldest entries of the largest logs, and readers that still needed them are
ended with ``overflow`` (they get ``reset`` and a snapshot when they come back).

*Resume* (``since = N``, the last id the client saw): every event after ``N``, exactly
once, in order, then live events. When the log cannot serve that (``N`` was trimmed or
``N`` is above the last id, e.g. after a daemon restart) a ``reset`` event and a fresh
snapshot are appended instead: a client never sees a silent gap. A client can check
this itself: ids it receives are consecutive except right at a ``reset``.

*Retention.* An entry stays while a connected client has not been handed it, while a
client that left less than ``grace_period`` ago may still ask for it (its cursor is
remembered until then), and for ``grace_period`` after it was last handed to anybody
(bytes handed to a socket just before it died may never have arrived). Beyond that the
log never exceeds ``max_log`` entries: a paused client whose cursor falls off the start
is ended with reason ``overflow`` and gets ``reset`` when it comes back.

*Flow control.* A :class:`Subscription` is an ``IPushProducer``. It starts paused; the
transport registers it with its consumer and calls ``resumeProducing()``. It hands
entries to ``deliver`` in chunks and stops as soon as the consumer pauses it, so what a
slow client has not read stays in the shared log (one copy for every client), not in
per-client buffers. ``max_backlog_bytes`` ends a paused client (``overflow``) once that
much JSON has been published while it was paused.

*Grace period.* When an agent has had no connected client for ``grace_period`` seconds
(counted from registration or from the last client leaving), the registration ends:
``closed`` (reason ``expired``) is logged, the token stops working and ``on_expired``
is called so the service can tell the tracker. ``unregister`` logs ``closed`` (reason
``unregistered``), delivers it to connected clients and then ends their streams.

*Ends.* ``end(reason)`` is called once when the hub ends a subscription: ``unregistered``,
``expired``, ``overflow`` or ``shutdown`` (:meth:`Hub.close_all`). It is not called when
the transport itself cancels (``stopProducing``): the client has gone already.

Re-registering an agent keeps its token and its log, and replaces queues and name.

Persistence is the store's (:mod:`pbxis.hub.store`: :class:`~pbxis.hub.memory.MemoryStore`
here, Redis for a shared store); subscriptions, timers and the flush tick are the hub's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pbxis.events import CLOSED, QUEUE_COUNT, RESET, AgentEvent, QueueEvent

from .log import LogEntry, encode_compact
from .memory import MemoryStore
from .registration import Registration, RegistrationEnded, TooManyClients
from .store import HubStore, RegistrationLog, SnapshotSpan
from .tokens import new_token

__all__ = ["CHUNK", "Hub", "Registration", "RegistrationEnded", "Subscription", "TooManyClients"]

#: Entries handed to ``deliver`` per call: small enough that a consumer's pause takes
#: effect quickly, large enough that a live burst is usually one call.
CHUNK = 100

log = Logger()


@dataclass(slots=True, eq=False)
class _Agent:
    """What this node keeps about one registration beside its store entry."""

    registration: Registration
    log: RegistrationLog
    fence: int
    #: the agent as a JSON string, for queue states rendered into its log
    agent_json: str
    subs: list[Subscription] = field(default_factory=list)
    timer: IDelayedCall | None = None


class _LogSizes(Mapping[str, int]):
    """agent -> entries in its log, read from the live logs on access."""

    __slots__ = ("_agents",)

    def __init__(self, agents: dict[str, _Agent]) -> None:
        self._agents = agents

    def __getitem__(self, agent: str) -> int:
        return len(self._agents[agent].log)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._agents))

    def __len__(self) -> int:
        return len(self._agents)


DeliverFn = Callable[[list[LogEntry]], None]
EndFn = Callable[[str], None]


@implementer(IPushProducer)
class Subscription:
    """One client's read position in one agent's log.

    ``cursor`` is the id of the last entry handed to ``deliver``.
    """

    # One per connected client: slots keep it small and cheap for the collector.
    __slots__ = (
        "_backlog",
        "_deliver",
        "_end",
        "_ending",
        "_hub",
        "_max_backlog",
        "_pumping",
        "_state",
        "active",
        "counted",
        "cursor",
        "paused",
        "registration",
        "transport",
    )

    def __init__(
        self,
        hub: Hub,
        state: _Agent,
        transport: str,
        deliver: DeliverFn,
        end: EndFn,
        cursor: int,
        max_backlog_bytes: int | None,
    ) -> None:
        self.registration = state.registration
        self.transport = transport
        self.cursor = cursor
        self.active = True
        self.paused = True
        self.counted = True
        self._hub = hub
        self._state = state
        self._deliver = deliver
        self._end = end
        self._max_backlog = max_backlog_bytes
        self._backlog = 0
        self._pumping = False
        #: the registration ended while this reader was inside ``deliver``: the rest of
        #: its log (``closed`` last) and the reason, for the running pump to finish with
        self._ending: tuple[list[LogEntry], str] | None = None

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.registration.agent} {self.transport} cursor={self.cursor}"
            f"{' paused' if self.paused else ''}{'' if self.active else ' ended'}>"
        )

    # IPushProducer

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        """Hand over everything due, chunk by chunk, until caught up or paused."""
        self.paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The client went away: remember its cursor for ``grace_period``."""
        if self.active:
            self.active = False
            self._hub._detach(self, remember=True)

    cancel = stopProducing

    # hub side

    def _offer(self, size: int) -> None:
        """``size`` bytes of JSON were appended to the log."""
        if not self.active:
            return
        if not self.paused:
            self._pump()
            return
        self._backlog += size
        if self._max_backlog is not None and self._backlog > self._max_backlog:
            self._close("overflow")

    def _pump(self) -> None:
        if self._pumping:
            return  # resumed from inside deliver: the running loop carries on
        self._pumping = True
        try:
            elog = self._state.log
            while self.active and not self.paused:
                if not elog.can_replay(self.cursor):
                    self._close("overflow")
                    break
                batch = elog.after(self.cursor, CHUNK)
                if not batch:
                    self._backlog = 0
                    break
                elog.touch(self.cursor, batch[-1].id, self._hub.clock.seconds())
                self.cursor = batch[-1].id
                self._deliver(batch)
                if self._ending is not None:
                    rest, reason = self._ending
                    self._ending = None
                    if rest:
                        self.cursor = rest[-1].id
                        self._deliver(rest)
                    self._close(reason)
        finally:
            self._pumping = False

    def _close(self, reason: str) -> None:
        if self.active:
            self.active = False
            # a client dropped for falling behind will want to resume from its cursor
            self._hub._detach(self, remember=reason == "overflow")
            self._end(reason)


class Hub:
    """Agents, tokens, numbered logs and grace periods; see the module docstring.

    ``store`` holds registrations, logs and queue states (default: a
    :class:`~pbxis.hub.memory.MemoryStore` with ``max_log`` and ``max_log_bytes``).
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        grace_period: float,
        snapshot: Callable[[str], list[AgentEvent]],
        max_log: int = 10_000,
        max_log_bytes: int = 256 * 1024 * 1024,
        max_clients: int = 20,
        snapshot_window: float = 1.0,
        queue_tick: float = 0.2,
        store: HubStore | None = None,
        now_ms: Callable[[], int] | None = None,
        pbx: str | None = None,
    ) -> None:
        if grace_period < 0:
            raise ValueError("grace_period must not be negative")
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        if snapshot_window < 0:
            raise ValueError("snapshot_window must not be negative")
        if queue_tick < 0:
            raise ValueError("queue_tick must not be negative")
        self.queue_tick = queue_tick
        #: the PBX this hub's registrations belong to: every event of theirs names it
        self.pbx = pbx
        self.clock = clock
        self.grace_period = grace_period
        self.max_log = max_log
        self.max_clients = max_clients
        self.snapshot_window = snapshot_window
        self.on_expired: Callable[[str], None] | None = None
        #: Called with each registration and the entries just logged for it (webhooks).
        #: Observers must return at once and never raise; a raise is logged and ignored.
        self.observers: list[Callable[[Registration, list[LogEntry]], None]] = []
        self.store: HubStore = (
            store if store is not None else MemoryStore(max_log=max_log, max_log_bytes=max_log_bytes)
        )
        self._snapshot = snapshot
        self._now_ms = now_ms or (lambda: int(clock.seconds() * 1000))
        self._agents: dict[str, _Agent] = {}
        #: transport -> connected subscriptions (kept as they come and go, for stats())
        self._clients: dict[str, int] = {}
        #: queue -> agents registered on it that have a connected client (flush targets)
        self._listening: dict[str, dict[str, _Agent]] = {}
        #: queue -> registrations on it; the store forgets a queue nobody has
        self._registered: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._flush_call: IDelayedCall | None = None
        self._last_flush = float("-inf")
        self._flushes = 0
        self._published = 0
        self._snapshots = 0
        self._stopped = False
        # A shared store (issue #15) may count grace periods across nodes (its
        # ``shared_grace``: no local timer, :meth:`expire` is called when it is over) and
        # may be a follower that does not write the logs (its ``writes_logs`` is false:
        # snapshots are prepared by :meth:`prepare`, ends arrive through :meth:`ended`).
        self._local_grace = not getattr(self.store, "shared_grace", False)
        self._follower = not getattr(self.store, "writes_logs", True)

    # registrations

    def register(self, agent: str, queues: Sequence[str], name: str | None = None) -> Registration:
        """Register ``agent`` or update its queues and name; the token never changes."""
        state = self._agents.get(agent)
        if state is not None:
            listening = bool(state.subs)
            if listening:
                self._listen(state, False)
            self._count_queues(state.registration.queues, -1)
            self.store.update(state.registration, queues, name)
            self._count_queues(state.registration.queues, +1)
            if listening:
                self._listen(state, True)
            return state.registration
        registration = Registration(agent, tuple(queues), name, new_token(), self._now_ms())
        elog = self.store.add(registration)
        if self.pbx is not None:
            elog.pbx = self.pbx
        state = _Agent(registration, elog, self.store.claim(agent), json.dumps(agent))
        self._agents[agent] = state
        self._count_queues(registration.queues, +1)
        self._start_grace(state)
        log.info("Registered agent {agent}", agent=agent)
        return registration

    def unregister(self, agent: str) -> bool:
        """End the registration: ``closed`` to connected clients, then their streams end."""
        state = self._agents.get(agent)
        if state is None:
            return False
        if self._follower:
            # the log's writer ends it; ``closed`` comes back through the log (ended())
            self.store.request_unregister(agent)  # type: ignore[attr-defined]
            return True
        self._end_registration(state, "unregistered")
        log.info("Unregistered agent {agent}", agent=agent)
        return True

    # a shared store's calls (issue #15)

    def prepare(self, registration: Registration, since: int | None) -> Any:
        """A Deferred that fires when :meth:`subscribe` can serve ``since`` at once.

        In memory at once; a follower store first loads the log and has its writer
        append the snapshot (or ``reset`` and a snapshot) a new client reads first."""
        from twisted.internet import defer

        prepare = getattr(self.store, "prepare", None)
        if prepare is None:
            return defer.succeed(None)
        return defer.ensureDeferred(prepare(registration.agent, since, self.snapshot_window))

    def lookup(self, token: str) -> Any:
        """A Deferred :meth:`by_token`: a follower store that does not know the token
        yet (issued on another node a moment ago) asks the shared store."""
        from twisted.internet import defer

        registration = self.store.by_token(token)
        find = getattr(self.store, "find_token", None)
        if registration is not None or find is None:
            return defer.succeed(registration)
        return defer.ensureDeferred(find(token))

    def listening(self) -> list[str]:
        """Agents with at least one connected client here (shared grace refreshes them)."""
        return [agent for agent, state in self._agents.items() if state.subs]

    def expire(self, agent: str) -> bool:
        """The shared store says the grace period of ``agent`` is over: end it here."""
        state = self._agents.get(agent)
        if state is None or self._stopped:
            return False
        if state.timer is not None:
            state.timer.cancel()
        self._expire(state)
        return True

    def appended(self, agent: str, size: int) -> None:
        """A follower's log of ``agent`` received ``size`` bytes: hand them over."""
        state = self._agents.get(agent)
        if state is not None:
            self._offer(state, size)

    def ended(self, agent: str, reason: str) -> None:
        """A follower's log of ``agent`` received ``closed``: end its clients here."""
        state = self._agents.get(agent)
        if state is not None:
            self._end_registration(state, reason, append=False)

    def snapshot_span(self, agent: str, reset: bool) -> SnapshotSpan | None:
        """For a client on another node: the snapshot it reads first (appended now, or
        one appended within ``snapshot_window``), as :meth:`subscribe` does for its own."""
        state = self._agents.get(agent)
        if state is None or self._stopped:
            return None
        self._append(state, [])
        elog = state.log
        span = elog.snapshot
        now = self.clock.seconds()
        if span is None or now - span.at >= self.snapshot_window or (reset and span.reset is None):
            self._append_snapshot(state, reset=reset)
            span = elog.snapshot
            if span is None:  # an agent with no state at all: an empty snapshot
                last = elog.last_id
                span = SnapshotSpan(last + 1, last, now, last if reset else None)
        self._after_batch()
        return span

    def get(self, agent: str) -> Registration | None:
        state = self._agents.get(agent)
        return None if state is None else state.registration

    def by_token(self, token: str) -> Registration | None:
        """The live registration of a stream token, looked up in constant time."""
        return self.store.by_token(token)

    # events

    def publish(self, events: Iterable[AgentEvent | QueueEvent]) -> None:
        """Log and deliver events; those for agents not registered are dropped.

        A :class:`QueueEvent` costs one store write here; agents' logs get it when they
        need it (see the module docstring). A batch (the events of one AMI read) costs
        one append per agent between two queue events and, at its end, one offer to
        each client of each agent it touched (one socket write per client, not one per
        event). Order in every log is the events' order: the agents' events before a
        queue event are appended before it is recorded."""
        by_agent: dict[str, list[AgentEvent]] = {}
        agents = self._agents
        grown: dict[str, int] = {}
        for event in events:
            if isinstance(event, QueueEvent):
                if by_agent:
                    self._append_groups(by_agent, grown)
                    by_agent = {}
                self._queue_event(event)
                continue
            agent = event.agent
            if agent in agents:
                group = by_agent.get(agent)
                if group is None:
                    by_agent[agent] = [event]
                else:
                    group.append(event)
        if by_agent:
            self._append_groups(by_agent, grown)
        for agent, size in grown.items():
            state = agents.get(agent)
            if state is not None:  # a deliver callback may have unregistered it
                self._offer(state, size)
        self._after_batch()

    def _append_groups(self, by_agent: dict[str, list[AgentEvent]], grown: dict[str, int]) -> None:
        """Append each agent's events; add the bytes to ``grown`` (offered later)."""
        agents = self._agents
        for agent, agent_events in by_agent.items():
            state = agents.get(agent)
            if state is not None:
                self._published += len(agent_events)
                size = self._append_only(state, agent_events)
                if size:
                    grown[agent] = grown.get(agent, 0) + size

    def subscribe(
        self,
        registration: Registration,
        since: int | None,
        transport: str,
        deliver: DeliverFn,
        end: EndFn,
        *,
        max_backlog_bytes: int | None = None,
        counted: bool = True,
    ) -> Subscription:
        """A paused subscription positioned after ``since`` (see the module docstring).

        Raises :class:`RegistrationEnded` when ``registration`` is no longer live and
        :class:`TooManyClients` when it has ``max_clients`` counted clients already.
        ``counted=False`` is for in-process listeners and sinks (the library's): trusted
        code, not a remote token holder, so neither limited nor counted.
        """
        state = self._agents.get(registration.agent)
        if self._stopped or state is None or state.registration is not registration:
            raise RegistrationEnded(registration.agent)
        if counted and sum(1 for s in state.subs if s.counted) >= self.max_clients:
            raise TooManyClients(registration.agent, self.max_clients)
        elog = state.log
        # queue states not yet in the log go in first: a resume must see them after ``since``
        self._append(state, [])
        now = self.clock.seconds()
        if since and elog.can_replay(since):
            cursor = since
        else:
            span = elog.snapshot
            reuse = (
                span is not None
                # a follower's span was prepared just now for this client (prepare())
                and (now - span.at < self.snapshot_window or (self._follower and now - span.at < 1.0))
                and (not since or span.reset is not None)
            )
            if reuse:
                assert span is not None
                cursor = (span.reset if since and span.reset is not None else span.first) - 1
            else:
                cursor = elog.last_id
                self._append_snapshot(state, reset=bool(since))
        sub = Subscription(self, state, transport, deliver, end, cursor, max_backlog_bytes)
        sub.counted = counted
        if not state.subs:
            self._listen(state, True)
        state.subs.append(sub)
        self._clients[transport] = self._clients.get(transport, 0) + 1
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        self._after_batch()
        return sub

    # life cycle

    def close_all(self, reason: str = "shutdown") -> None:
        """End every subscription with ``reason`` and stop all timers (service stop)."""
        self._stopped = True
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        for state in list(self._agents.values()):
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            for sub in list(state.subs):
                sub._close(reason)

    def stats(self) -> dict[str, Any]:
        """Counters for ``/health`` and ``/metrics``: O(transports), whatever the number
        of agents and clients (a scrape must not walk 5,000 registrations). ``log_sizes``
        is a live view, its sizes read when asked."""
        return {
            "agents": len(self._agents),
            "clients": {transport: n for transport, n in self._clients.items() if n},
            "events_published": self._published,
            "snapshots": self._snapshots,
            "queue_flushes": self._flushes,
            "log_bytes": self.store.bytes_used(),
            "log_sizes": _LogSizes(self._agents),
        }

    # queue states

    def _queue_event(self, event: QueueEvent) -> None:
        """O(1): the store records the latest state; the flush renders it where needed."""
        if event.queue not in self._registered:
            return  # nobody would ever be shown it
        rest = encode_compact({"time": event.time, **event.data})[1:]
        self.store.set_queue_state(event.queue, event.type, rest)
        self._published += 1
        if event.queue in self._listening:
            self._dirty.add(event.queue)
            if self._flush_call is None and not self._stopped:
                # the first change after a quiet spell goes out at the end of this turn;
                # under a flood, at most one flush per queue_tick (the latest state wins)
                # (never more than a tick: the clock is the wall clock, and one stepped
                # back must not hold every count for the length of the step)
                wait = self._last_flush + self.queue_tick - self.clock.seconds()
                delay = min(self.queue_tick, max(0.0, wait))
                self._flush_call = self.clock.callLater(delay, self._flush)

    def _flush(self) -> None:
        """End of the reactor turn: dirty queues' states into the logs of listening agents."""
        self._flush_call = None
        self._flushes += 1
        self._last_flush = self.clock.seconds()
        dirty, self._dirty = self._dirty, set()
        targets: dict[str, _Agent] = {}
        for queue in dirty:
            targets.update(self._listening.get(queue, {}))
        for agent, state in targets.items():
            if self._agents.get(agent) is state:
                self._append(state, [])
        self._after_batch()

    def _count_queues(self, queues: Iterable[str], delta: int) -> None:
        registered = self._registered
        for queue in set(queues):
            left = registered.get(queue, 0) + delta
            if left > 0:
                registered[queue] = left
            else:
                registered.pop(queue, None)
                self._dirty.discard(queue)
                self.store.forget_queue(queue)

    def _listen(self, state: _Agent, on: bool) -> None:
        agent = state.registration.agent
        for queue in state.registration.queues:
            if on:
                self._listening.setdefault(queue, {})[agent] = state
            else:
                listeners = self._listening.get(queue)
                if listeners is not None:
                    listeners.pop(agent, None)
                    if not listeners:
                        del self._listening[queue]

    # internals

    def _append(self, state: _Agent, events: list[AgentEvent]) -> None:
        """Append the queue states the log lacks, then ``events``; offer them to clients."""
        size = self._append_only(state, events)
        if size:
            self._offer(state, size)

    def _append_only(self, state: _Agent, events: list[AgentEvent]) -> int:
        """Append the queue states the log lacks, then ``events``; the bytes of JSON added."""
        elog = state.log
        store = self.store
        before = elog.last_id
        now = self.clock.seconds()
        size = 0
        for queue in state.registration.queues:
            for kind in store.queue_types(queue):
                queue_state = store.queue_state(queue, kind)
                if queue_state is not None and queue_state.version > elog.queue_version(queue, kind):
                    size += elog.append_queue_state(queue_state, state.agent_json, now, state.fence)
        if events:
            size += elog.append(events, now, state.fence)
        if size and self.observers:
            entries = elog.after(before, elog.last_id - before)
            for observer in self.observers:
                try:
                    observer(state.registration, entries)
                except Exception:
                    log.failure("hub observer {observer!r} failed", observer=observer)
        return size

    def _offer(self, state: _Agent, size: int) -> None:
        """``size`` bytes were appended to ``state``'s log: hand them to its clients."""
        for sub in list(state.subs):
            sub._offer(size)
        self._trim(state)

    def _append_snapshot(self, state: _Agent, *, reset: bool) -> None:
        agent = state.registration.agent
        elog = state.log
        events: list[AgentEvent] = []
        if reset:
            events.append(AgentEvent(agent, RESET, self._now_ms()))
        events.extend(self._snapshot(agent))
        first = elog.last_id + 1
        self._append(state, events)
        self._snapshots += 1
        # the snapshot shows every queue's latest state: the log carries those versions
        store = self.store
        for queue in state.registration.queues:
            for kind in store.queue_types(queue):
                queue_state = store.queue_state(queue, kind)
                if queue_state is not None:
                    elog.mark_queue_version(queue, kind, queue_state.version, queue_state.rest)
        # What the snapshot itself said of a queue (a count the store has no state for yet,
        # e.g. no caller joined since the start) is shown too: a first state equal to it,
        # from a rebuild after a link cut, is no change.
        queues = set(state.registration.queues)
        for event in events:
            shown = event.data.get("queue")
            if event.type == QUEUE_COUNT and shown in queues and store.queue_state(shown, event.type) is None:
                queue = shown
                rest = encode_compact({"time": event.time, **event.data})[1:]
                elog.mark_queue_version(queue, event.type, elog.queue_version(queue, event.type), rest)
        if elog.last_id >= first + reset:
            elog.note_snapshot(
                SnapshotSpan(first + reset, elog.last_id, self.clock.seconds(), first if reset else None)
            )

    def _after_batch(self) -> None:
        """A batch went into the logs: hold the byte limit, let a shared store send."""
        store = self.store
        for agent in store.enforce_budget():
            state = self._agents.get(agent)
            if state is not None:
                self._trim(state)
        store.flush()

    def _trim(self, state: _Agent) -> None:
        """Runs after every append: O(clients of this agent), and usually O(1) in the log."""
        now = self.clock.seconds()
        elog = state.log
        absent = elog.absent(now)
        keep_after = min([sub.cursor for sub in state.subs], default=elog.last_id)
        if absent:
            keep_after = min(keep_after, min(absent))
        elog.trim(keep_after, now, self.grace_period)
        if keep_after >= elog.first_id - 1:
            return  # every reader can still be served: only the caps end readers
        for sub in list(state.subs):
            if not elog.can_replay(sub.cursor):
                log.warn(
                    "Client of {agent} ({transport}) fell {behind} events behind; ending it",
                    agent=sub.registration.agent,
                    transport=sub.transport,
                    behind=elog.last_id - sub.cursor,
                )
                sub._close("overflow")

    def _detach(self, sub: Subscription, *, remember: bool) -> None:
        state = sub._state
        if sub in state.subs:
            state.subs.remove(sub)
            self._clients[sub.transport] -= 1
            if not state.subs:
                self._listen(state, False)
        if self._agents.get(sub.registration.agent) is not state or self._stopped:
            return
        if remember:
            state.log.remember(sub.cursor, self.clock.seconds() + self.grace_period)
        if not state.subs:
            self._start_grace(state)

    def _start_grace(self, state: _Agent) -> None:
        if state.timer is None and not self._stopped and self._local_grace:
            state.timer = self.clock.callLater(self.grace_period, self._expire, state)

    def _expire(self, state: _Agent) -> None:
        state.timer = None
        agent = state.registration.agent
        self._end_registration(state, "expired")
        log.info("Registration of agent {agent} expired", agent=agent)
        if self.on_expired is not None:
            try:
                self.on_expired(agent)
            except Exception:
                log.failure("on_expired({agent}) failed", agent=agent)

    def _end_registration(self, state: _Agent, reason: str, *, append: bool = True) -> None:
        registration = state.registration
        del self._agents[registration.agent]
        self._count_queues(registration.queues, -1)
        if state.subs:
            self._listen(state, False)
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if append:
            state.log.append(
                [AgentEvent(registration.agent, CLOSED, self._now_ms(), {"reason": reason})],
                self.clock.seconds(),
                state.fence,
            )
        # a paused client is not sent ``closed``: it only gets end(reason)
        for sub in list(state.subs):
            if not sub.paused:
                sub._pump()
        for sub in list(state.subs):
            if sub._pumping and sub.active and not sub.paused:
                # inside its own deliver (a sink unregistering from its callback): its
                # pump hands over the rest, ``closed`` last, once that call returns
                sub._ending = (state.log.after(sub.cursor, state.log.last_id - sub.cursor), reason)
                continue
            sub._close(reason)
        self.store.remove(registration.agent)
