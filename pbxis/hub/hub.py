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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pbxis.events import CLOSED, RESET, AgentEvent

from .log import EventLog, LogEntry
from .tokens import TokenIndex, new_token

__all__ = ["CHUNK", "Hub", "Registration", "RegistrationEnded", "Subscription"]

#: Entries handed to ``deliver`` per call: small enough that a consumer's pause takes
#: effect quickly, large enough that a live burst is usually one call.
CHUNK = 100

log = Logger()


@dataclass(slots=True)
class Registration:
    """A registered agent. ``created`` is Unix epoch milliseconds."""

    agent: str
    queues: tuple[str, ...]
    name: str | None
    token: str = field(repr=False)
    created: int


class RegistrationEnded(LookupError):
    """The registration was unregistered, expired or the hub was shut down."""


@dataclass(slots=True, eq=False)
class _Agent:
    registration: Registration
    log: EventLog
    subs: list[Subscription] = field(default_factory=list)
    #: cursor of a client that left -> clock time until which it may come back
    absent: dict[int, float] = field(default_factory=dict)
    timer: IDelayedCall | None = None


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
        "_hub",
        "_max_backlog",
        "_pumping",
        "_state",
        "active",
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
        self._hub = hub
        self._state = state
        self._deliver = deliver
        self._end = end
        self._max_backlog = max_backlog_bytes
        self._backlog = 0
        self._pumping = False

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
        finally:
            self._pumping = False

    def _close(self, reason: str) -> None:
        if self.active:
            self.active = False
            # a client dropped for falling behind will want to resume from its cursor
            self._hub._detach(self, remember=reason == "overflow")
            self._end(reason)


class Hub:
    """Agents, tokens, numbered logs and grace periods; see the module docstring."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        grace_period: float,
        snapshot: Callable[[str], list[AgentEvent]],
        max_log: int = 10_000,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        if grace_period < 0:
            raise ValueError("grace_period must not be negative")
        self.clock = clock
        self.grace_period = grace_period
        self.max_log = max_log
        self.on_expired: Callable[[str], None] | None = None
        #: Called with each registration and the entries just logged for it (webhooks).
        #: Observers must return at once and never raise; a raise is logged and ignored.
        self.observers: list[Callable[[Registration, list[LogEntry]], None]] = []
        self._snapshot = snapshot
        self._now_ms = now_ms or (lambda: int(clock.seconds() * 1000))
        self._agents: dict[str, _Agent] = {}
        self._tokens: TokenIndex[Registration] = TokenIndex()
        self._published = 0
        self._stopped = False

    # registrations

    def register(self, agent: str, queues: Sequence[str], name: str | None = None) -> Registration:
        """Register ``agent`` or update its queues and name; the token never changes."""
        state = self._agents.get(agent)
        if state is not None:
            state.registration.queues = tuple(queues)
            state.registration.name = name
            return state.registration
        registration = Registration(agent, tuple(queues), name, new_token(), self._now_ms())
        state = _Agent(registration, EventLog(self.max_log))
        self._agents[agent] = state
        self._tokens.add(registration.token, registration)
        self._start_grace(state)
        log.info("Registered agent {agent}", agent=agent)
        return registration

    def unregister(self, agent: str) -> bool:
        """End the registration: ``closed`` to connected clients, then their streams end."""
        state = self._agents.get(agent)
        if state is None:
            return False
        self._end_registration(state, "unregistered")
        log.info("Unregistered agent {agent}", agent=agent)
        return True

    def get(self, agent: str) -> Registration | None:
        state = self._agents.get(agent)
        return None if state is None else state.registration

    def by_token(self, token: str) -> Registration | None:
        """The live registration of a stream token, looked up in constant time."""
        return self._tokens.get(token)

    # events

    def publish(self, events: Iterable[AgentEvent]) -> None:
        """Log and deliver events; those for agents not registered are dropped."""
        by_agent: dict[str, list[AgentEvent]] = {}
        for event in events:
            if event.agent in self._agents:
                by_agent.setdefault(event.agent, []).append(event)
        for agent, agent_events in by_agent.items():
            state = self._agents.get(agent)
            if state is not None:  # a deliver callback may have unregistered it
                self._published += len(agent_events)
                self._append(state, agent_events)

    def subscribe(
        self,
        registration: Registration,
        since: int | None,
        transport: str,
        deliver: DeliverFn,
        end: EndFn,
        *,
        max_backlog_bytes: int | None = None,
    ) -> Subscription:
        """A paused subscription positioned after ``since`` (see the module docstring).

        Raises :class:`RegistrationEnded` when ``registration`` is no longer live.
        """
        state = self._agents.get(registration.agent)
        if self._stopped or state is None or state.registration is not registration:
            raise RegistrationEnded(registration.agent)
        elog = state.log
        fresh: list[AgentEvent] = []
        if since and elog.can_replay(since):
            cursor = since
        else:
            cursor = elog.last_id
            if since:
                fresh.append(AgentEvent(registration.agent, RESET, self._now_ms()))
            fresh.extend(self._snapshot(registration.agent))
        sub = Subscription(self, state, transport, deliver, end, cursor, max_backlog_bytes)
        state.subs.append(sub)
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if fresh:
            self._append(state, fresh)
        return sub

    # life cycle

    def close_all(self, reason: str = "shutdown") -> None:
        """End every subscription with ``reason`` and stop all timers (service stop)."""
        self._stopped = True
        for state in list(self._agents.values()):
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            for sub in list(state.subs):
                sub._close(reason)

    def stats(self) -> dict[str, Any]:
        clients: dict[str, int] = {}
        for state in self._agents.values():
            for sub in state.subs:
                clients[sub.transport] = clients.get(sub.transport, 0) + 1
        return {
            "agents": len(self._agents),
            "clients": clients,
            "events_published": self._published,
            "log_sizes": {agent: len(state.log) for agent, state in self._agents.items()},
        }

    # internals

    def _append(self, state: _Agent, events: list[AgentEvent]) -> None:
        before = state.log.last_id
        size = state.log.append(events, self.clock.seconds())
        if self.observers:
            entries = state.log.after(before, len(events))
            for observer in self.observers:
                try:
                    observer(state.registration, entries)
                except Exception:
                    log.failure("hub observer {observer!r} failed", observer=observer)
        for sub in list(state.subs):
            sub._offer(size)
        self._trim(state)

    def _trim(self, state: _Agent) -> None:
        """Runs after every append: O(clients of this agent), and usually O(1) in the log."""
        now = self.clock.seconds()
        elog = state.log
        absent = state.absent
        if absent:
            for cursor, until in list(absent.items()):
                if until <= now or cursor < elog.first_id - 1:
                    del absent[cursor]
        keep_after = min([sub.cursor for sub in state.subs], default=elog.last_id)
        if absent:
            keep_after = min(keep_after, min(absent))
        elog.trim(keep_after, now, self.grace_period)
        if keep_after >= elog.first_id - 1:
            return  # every reader can still be served: only the max_log cap ends readers
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
        if self._agents.get(sub.registration.agent) is not state or self._stopped:
            return
        if remember:
            until = self.clock.seconds() + self.grace_period
            state.absent[sub.cursor] = max(until, state.absent.get(sub.cursor, until))
        if not state.subs:
            self._start_grace(state)

    def _start_grace(self, state: _Agent) -> None:
        if state.timer is None and not self._stopped:
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

    def _end_registration(self, state: _Agent, reason: str) -> None:
        registration = state.registration
        del self._agents[registration.agent]
        self._tokens.remove(registration.token)
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        state.log.append(
            [AgentEvent(registration.agent, CLOSED, self._now_ms(), {"reason": reason})],
            self.clock.seconds(),
        )
        # a paused client is not sent ``closed``: it only gets end(reason)
        for sub in list(state.subs):
            if not sub.paused:
                sub._pump()
        for sub in list(state.subs):
            sub._close(reason)
