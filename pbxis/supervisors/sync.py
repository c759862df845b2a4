"""Keeping the supervisor board in step with Asterisk: the Twisted side of :mod:`.board`.

:class:`SupervisorSync` observes the AMI client factory next to :class:`pbxis.sync.StateSync`
and follows it:

* live events go to the board in wire order, right after the agents' tracker has
  seen them; the counter reads the board asks for (one ``QueueStatus`` with no member
  per finished or abandoned call) are sent at once, and their answers applied as they
  come;
* after each full rebuild of the agents' state (``StateSync`` tells its rebuild
  listeners) the supervised queues' filters are installed in the form the agents'
  filter probe chose, then each supervised queue is read with one ``QueueStatus``
  (counters, members, waiting callers), and ``pbxStatus`` true follows;
* a newly supervised queue gets its filter and its one ``QueueStatus`` when its
  supervisor registers;
* one timer, armed only while some ``queueStats`` is held back by the throttle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..ami.errors import ActionFailed, ActionTimeout, AMIError
from ..ami.message import Message
from ..events import AgentEvent
from ..tracker import PlannedAction
from . import filters
from .board import QueueBoard

__all__ = ["SupervisorSync"]


class AMIClient(Protocol):
    def send_action(
        self, name: str, headers: Any = None, *, timeout: float | None = None
    ) -> Deferred[Any]: ...


class _AgentSync(Protocol):
    filter_mode: str | None
    ready: bool

    def add_rebuild_listener(self, listener: Callable[[bool], None]) -> None: ...


class SupervisorSync:
    """Feeds the board, reads what it asks for, publishes, runs the throttle's timer."""

    log = Logger()

    def __init__(
        self,
        ami: AMIClient,
        board: QueueBoard,
        publish: Callable[[list[AgentEvent]], None],
        agent_sync: _AgentSync,
        *,
        clock: IReactorTime,
        now_ms: Callable[[], int] | None = None,
        action_timeout: float | None = None,
    ) -> None:
        self._ami = ami
        self._board = board
        self._publish_cb = publish
        self._agent_sync = agent_sync
        self._clock = clock
        self._now_ms = now_ms or (lambda: int(clock.seconds() * 1000))
        self._timeout = action_timeout
        self._login = 0
        self._logged_in = False
        self._ready = False
        self._filtered: set[str] = set()
        self._loading: set[str] = set()  # queues whose load is in flight
        #: queue -> a counter read to send when the one in flight answers (or None)
        self._counting: dict[str, PlannedAction | None] = {}
        self._timer: IDelayedCall | None = None
        self.actions_sent = 0
        agent_sync.add_rebuild_listener(self._agents_rebuilt)

    # -- observer interface of the AMI client factory ------------------------------------
    def ami_logged_in(self, protocol: object) -> None:
        self._login += 1
        self._logged_in = True
        self._ready = False
        self._filtered = set()  # a new session starts with no filter of ours
        self._loading = set()
        self._counting = {}

    def ami_event(self, message: Message) -> None:
        if not self._board.watching:
            return  # no supervisor: the agents' hot path pays one attribute test
        try:
            events = self._board.handle(message, self._now_ms())
        except Exception:  # a board bug must not take the AMI link down with it
            self.log.failure("supervisor board could not digest {event}", event=message.event)
            return
        self._publish(events)
        refreshes = self._board.take_refreshes()  # only loaded queues': a load reads them too
        if self._logged_in:
            self._send(refreshes)

    def ami_events(self, messages: list[Message]) -> None:
        """The events of one read: nothing at all per event while no supervisor watches
        (the agents' hot path then pays one test per read, not one call per event)."""
        if not self._board.watching:
            return
        for message in messages:
            try:
                self.ami_event(message)
            except Exception:  # as the factory does for ami_event: the next one still runs
                self.log.failure("supervisor sync failed on {event}", event=message.event)

    def ami_lost(self, reason: Failure | None = None) -> None:
        self._login += 1
        self._logged_in = False
        self._ready = False
        self._loading = set()
        self._counting = {}
        self._publish(self._board.link_down(self._now_ms()))

    # -- registrations -----------------------------------------------------------------
    def supervisor_registered(self, key: str, queues: Sequence[str]) -> Deferred[None]:
        """Track ``queues`` for supervisor ``key``; fires once new queues are loaded."""
        self._publish(self._board.register(key, queues, self._now_ms()))
        if not self._ready:
            return defer.succeed(None)  # the next login's load covers them
        return self._load(self._login)

    def supervisor_unregistered(self, key: str) -> None:
        self._board.unregister(key)

    def state(self, key: str) -> dict[str, Any] | None:
        """``GET /supervisors/{name}``: the supervisor's queues now, or ``None``."""
        return self._board.state(key, self._now_ms())

    def snapshot(self, key: str) -> list[AgentEvent]:
        """What a new client of supervisor ``key`` is shown first (the hub's snapshot)."""
        return self._board.snapshot(key, self._now_ms())

    # -- loading -------------------------------------------------------------------------
    def _agents_rebuilt(self, full: bool) -> None:
        if full:
            self._load(self._login).addCallback(self._loaded, self._login)

    def _loaded(self, _: object, login: int) -> None:
        if login == self._login:
            self._ready = True
            self._publish(self._board.link_up(self._now_ms()))

    def _load(self, login: int) -> Deferred[None]:
        """Filters for supervised queues not filtered yet, then a read of every queue
        not loaded since the login. Pipelined; each answer applied as it comes."""
        d = defer.ensureDeferred(self._load_queues(login))
        d.addErrback(self._load_failed)
        return d

    async def _load_queues(self, login: int) -> None:
        await self._install_filters(login)
        if login != self._login:
            return
        plan = [p for p in self._board.plan_load() if p.header("Queue") not in self._loading]
        self._loading.update(p.header("Queue") or "" for p in plan)  # one load per queue at a time
        await defer.DeferredList([self._read(planned, login) for planned in plan], consumeErrors=True)

    async def _install_filters(self, login: int) -> None:
        mode = self._agent_sync.filter_mode
        new = [q for q in self._board.supervised if q not in self._filtered]
        if mode is None or not new:
            return  # unfiltered link: everything gets through already
        self._filtered.update(new)
        render = filters.advanced_filter if mode == "advanced" else filters.legacy_filter
        results = await defer.DeferredList(
            [self._ami.send_action("Filter", list(render(q)), timeout=self._timeout) for q in new],
            consumeErrors=True,
        )
        self.actions_sent += len(new)
        refused = [r.getErrorMessage() for ok, r in results if not ok]
        if refused and login == self._login:
            self.log.warn("supervisor filters refused: {errors}", errors=refused)

    def _send(self, plan: list[PlannedAction]) -> None:
        """Counter reads, at most one in flight per queue: calls ending while one is
        out are covered by one more read when it answers (a burst costs two, not N)."""
        for planned in plan:
            queue = planned.header("Queue") or ""
            if queue in self._counting:
                self._counting[queue] = planned  # read again once the answer is in
                continue
            self._counting[queue] = None
            login = self._login
            self._read(planned, login).addBoth(self._counted, queue, login)

    def _counted(self, result: object, queue: str, login: int) -> None:
        if login != self._login:
            return
        again = self._counting.pop(queue, None)
        if again is not None:
            self._send([again])

    def _read(self, planned: PlannedAction, login: int) -> Deferred[None]:
        self.actions_sent += 1
        d = self._ami.send_action(planned.name, list(planned.headers), timeout=self._timeout)

        def apply(result: Any) -> None:
            if login == self._login:
                self._loading.discard(planned.header("Queue") or "")
                self._publish(self._board.apply_result(planned, result.events, self._now_ms()))

        def failed(failure: Failure) -> None:
            if failure.check(ActionFailed, ActionTimeout, AMIError) is None:
                self.log.failure("supervisor read {action} failed", failure, action=planned.name)
            elif login == self._login:
                self._loading.discard(planned.header("Queue") or "")
                self.log.warn(
                    "supervisor read {action} {queue} failed: {error}",
                    action=planned.name,
                    queue=planned.header("Queue"),
                    error=failure.getErrorMessage(),
                )

        d.addCallbacks(apply, failed)
        return d

    def _load_failed(self, failure: Failure) -> None:
        self.log.failure("supervisor load failed", failure)

    # -- publishing and the throttle -----------------------------------------------------------
    def _publish(self, events: list[AgentEvent]) -> None:
        if events:
            self._publish_cb(events)
        self._arm()

    def _arm(self) -> None:
        due = self._board.next_flush_ms()
        if due is None:
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = None
            return
        if self._timer is not None and self._timer.active():
            return
        # at most one interval: a wall clock stepped back must not put it an hour away
        delay = max(0.05, min(due - self._now_ms(), self._board.stats_interval_ms) / 1000.0)
        self._timer = self._clock.callLater(delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._publish(self._board.flush(self._now_ms()))

    def stop(self) -> None:
        """Cancel the throttle's timer (service stop)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
