"""Keeping the tracker in step with Asterisk: the Twisted side of :mod:`pbxis.tracker`.

:class:`StateSync` observes the AMI client factory. At every login it

1. pins every registered agent in the tracker (``begin_rebuild``), so nothing stale or
   half-rebuilt is published while the state is reloaded;
2. installs the server-side event filter: a probe decides between the MatchCriteria
   form and the legacy regex form; ``Permission denied`` (no ``system`` write class)
   is logged with the manager.conf lines to use instead, and pbxis runs unfiltered;
3. waits for ``FullyBooted`` (Asterisk sends it at login when booted, later when not);
4. sends the tracker's planned actions, pipelined; each answer is applied the moment
   it arrives, which is its place in the event stream, so live events interleaved
   with the answers are neither lost nor applied out of order;
5. asks for ``CoreShowChannels`` only if some agent may be on a call, then publishes
   ``pbxStatus`` true and the differences.

Agents registered while connected are loaded in batches with the same machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .ami.client import ActionSender
from .ami.errors import ActionFailed, ActionTimeout, AMIError
from .ami.message import Message
from .events import AgentEvent, QueueEvent
from .tracker import PlannedAction, Tracker
from .tracker.filters import PROBE, advanced_filters, legacy_filters, manager_conf_lines

__all__ = ["AMIClient", "RebuildStats", "StateSync"]

Headers = Sequence[tuple[str, str]]

REBUILD_WINDOW: Final = 64
"""Rebuild actions in flight at once. A rebuild for thousands of agents is thousands of
actions; sent all at once, a user's Originate would queue behind them at Asterisk and
the last ones would time out waiting, not failing."""


AMIClient = ActionSender
"""What StateSync needs of ``pbxis.ami.client.AMIClientFactory``."""


@dataclass(frozen=True, slots=True)
class RebuildStats:
    """The last rebuild, for metrics: seconds taken, actions sent, messages received."""

    duration: float
    actions: int
    messages: int
    agents: int
    full: bool


class _Superseded(Exception):
    """The login this work belonged to is gone; a newer one does its own rebuild."""


class StateSync:
    """Sets filters, rebuilds tracker state after each login, publishes agent events."""

    log = Logger()

    def __init__(
        self,
        ami: AMIClient,
        tracker: Tracker,
        publish: Callable[[list[AgentEvent | QueueEvent]], None],
        *,
        clock: IReactorTime,
        now_ms: Callable[[], int] | None = None,
        boot_timeout: float = 10.0,
        action_timeout: float | None = None,
    ) -> None:
        self._ami = ami
        self._tracker = tracker
        self._publish_cb = publish
        self._clock = clock
        self._now_ms = now_ms or (lambda: int(clock.seconds() * 1000))
        self._boot_timeout = boot_timeout
        self._action_timeout = action_timeout
        self._login = 0
        self._logged_in = False
        self._booted = False
        self._boot_waiters: list[Deferred[None]] = []
        self._busy = False
        self._pending: dict[str, list[Deferred[None]]] = {}
        self.ready = False
        self._ready_waiters: list[Deferred[None]] = []
        self.filter_mode: str | None = None
        self.last_rebuild: RebuildStats | None = None
        self._rebuild_listeners: list[Callable[[bool], None]] = []

    def add_rebuild_listener(self, listener: Callable[[bool], None]) -> None:
        """``listener(full)`` after each rebuild is published (``full``: the one after a
        login, whose filter mode is then known). Supervisors load their queues then."""
        self._rebuild_listeners.append(listener)

    # -- observer interface of the AMI client factory ---------------------------------
    def ami_logged_in(self, protocol: object) -> None:
        self._login += 1
        self._logged_in = True
        self._booted = False
        self.ready = False
        self._publish(self._tracker.abort_rebuild())
        self._tracker.begin_rebuild()
        self._busy = True
        login = self._login
        d = defer.ensureDeferred(self._full_rebuild(login))
        d.addErrback(self._rebuild_failed, login)

    def ami_event(self, message: Message) -> None:
        name = message.event
        if name == "FullyBooted":
            self._booted = True
            waiters, self._boot_waiters = self._boot_waiters, []
            for waiter in waiters:
                if not waiter.called:
                    waiter.callback(None)
        elif name == "Shutdown":
            self._booted = False
        try:
            events = self._tracker.handle(message, self._now_ms())
        except Exception:  # a tracker bug must not take the AMI link down with it
            self.log.failure("tracker could not digest {event}", event=name)
            return
        self._publish(events)

    def ami_events(self, messages: list[Message]) -> None:
        """The events of one read: digested in order, published as one batch (the hub
        then appends to each agent's log and writes to each client once per batch).

        ``FullyBooted`` and ``Shutdown`` change what the rebuild waits for, so what came
        before them is published first and they take :meth:`ami_event`'s path."""
        handle = self._tracker.handle
        now = self._now_ms()
        out: list[AgentEvent | QueueEvent] = []
        for message in messages:
            name = message.event
            if name == "FullyBooted" or name == "Shutdown":
                self._publish(out)
                out = []
                self.ami_event(message)
                continue
            try:
                out += handle(message, now)
            except Exception:  # a tracker bug must not take the AMI link down with it
                self.log.failure("tracker could not digest {event}", event=name)
        self._publish(out)

    def ami_lost(self, reason: Failure | None = None) -> None:
        self._login += 1
        self._logged_in = False
        self._busy = False
        self.ready = False
        waiters, self._boot_waiters = self._boot_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.errback(_Superseded())
        self._publish(self._tracker.link_down(self._now_ms()))

    def when_ready(self) -> Deferred[None]:
        """Fires once the link is logged in and the state rebuilt (at once if it is now)."""
        if self.ready:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._ready_waiters.append(d)
        return d

    # -- registrations -----------------------------------------------------------------
    def agent_registered(self, agent: str) -> Deferred[None]:
        """Load ``agent``'s state (and any queue not yet tracked). Fires when published.

        Without a link it fires at once: the next login's rebuild covers every agent.
        """
        if not self._logged_in:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._pending.setdefault(agent, []).append(d)
        self._kick()
        return d

    def _kick(self) -> None:
        if self._busy or not self.ready or not self._pending:
            return
        batch, self._pending = self._pending, {}
        self._busy = True
        self._tracker.begin_rebuild(list(batch))
        login = self._login
        d = defer.ensureDeferred(self._load(login, list(batch)))
        d.addErrback(self._rebuild_failed, login)
        d.addBoth(self._loaded, batch)

    def _loaded(self, result: object, batch: dict[str, list[Deferred[None]]]) -> None:
        for waiters in batch.values():
            for waiter in waiters:
                waiter.callback(None)

    # -- the rebuilds ------------------------------------------------------------------
    async def _full_rebuild(self, login: int) -> None:
        started = self._clock.seconds()
        await self._set_filter(login)
        await self._wait_booted(login)
        await self._rebuild(login, started, full=True)

    async def _load(self, login: int, agents: list[str]) -> None:
        await self._rebuild(login, self._clock.seconds(), full=False, agents=agents)

    async def _rebuild(
        self, login: int, started: float, *, full: bool, agents: list[str] | None = None
    ) -> None:
        plan = self._tracker.plan_rebuild(agents)
        messages = await self._run(plan, login)
        followup = self._tracker.plan_followup()
        messages += await self._run(followup, login)
        self._check(login)
        events = self._tracker.finish_rebuild(self._now_ms())
        self._busy = False
        self.ready = True
        self.last_rebuild = RebuildStats(
            duration=self._clock.seconds() - started,
            actions=len(plan) + len(followup),
            messages=messages,
            agents=len(agents) if agents is not None else len(self._tracker.agents),
            full=full,
        )
        self.log.info(
            "state rebuilt: {actions} actions, {messages} messages in {duration:.3f}s",
            actions=self.last_rebuild.actions,
            messages=messages,
            duration=self.last_rebuild.duration,
        )
        self._publish(events)
        for listener in list(self._rebuild_listeners):
            try:
                listener(full)
            except Exception:
                self.log.failure("rebuild listener {listener!r} failed", listener=listener)
        self._kick()
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    async def _run(self, plan: list[PlannedAction], login: int) -> int:
        """Send ``plan`` pipelined (:data:`REBUILD_WINDOW` at a time); apply each answer
        as it arrives. Messages received."""
        counts: list[int] = []
        window = defer.DeferredSemaphore(REBUILD_WINDOW)

        def send(planned: PlannedAction) -> Deferred[Any]:
            self._check(login)  # the link this plan was for is gone: send nothing more
            return self._ami.send_action(planned.name, list(planned.headers), timeout=self._action_timeout)

        def apply(result: Any, planned: PlannedAction) -> None:
            if login == self._login:
                self._tracker.apply_result(planned, result)
                counts.append(1 + len(result.events))

        def failed(failure: Failure, planned: PlannedAction) -> None:
            # One refused or unanswered action leaves its part of the state as it was;
            # a lost link ends the whole rebuild (ami_lost already took over).
            if failure.check(ActionFailed, ActionTimeout) is None:
                failure.raiseException()
            self.log.warn(
                "rebuild action {action} failed: {error}",
                action=planned.name,
                error=failure.getErrorMessage(),
            )
            counts.append(1)

        deferreds = []
        for planned in plan:
            d = window.run(send, planned)
            d.addCallbacks(apply, failed, callbackArgs=(planned,), errbackArgs=(planned,))
            deferreds.append(d)
        if deferreds:
            await defer.gatherResults(deferreds, consumeErrors=True)
        self._check(login)
        return sum(counts)

    def _check(self, login: int) -> None:
        if login != self._login:
            raise _Superseded()

    def _rebuild_failed(self, failure: Failure, login: int) -> None:
        if login == self._login:
            self._busy = False
            self._publish(self._tracker.abort_rebuild())
        if failure.check(_Superseded, defer.FirstError, AMIError) is None:
            self.log.failure("state rebuild failed", failure)

    # -- filter and boot -----------------------------------------------------------------
    async def _set_filter(self, login: int) -> None:
        try:
            await self._ami.send_action("Filter", list(PROBE), timeout=self._action_timeout)
        except ActionFailed as error:
            text = error.message.lower()
            if "permission denied" in text:
                self.filter_mode = None
                self.log.warn(
                    "AMI user may not set event filters (needs write=system); running "
                    "unfiltered. Put these lines under the pbxis user in manager.conf "
                    "instead:\n{lines}",
                    lines="\n".join(manager_conf_lines()),
                )
                return
            if "did not compile" not in text and "formatted incorrectly" not in text:
                self.filter_mode = None
                self.log.warn("event filter refused ({error}); running unfiltered", error=error)
                return
            self.filter_mode = "legacy"
        else:
            self.filter_mode = "advanced"
        self._check(login)
        filters = advanced_filters() if self.filter_mode == "advanced" else legacy_filters()
        results = await defer.DeferredList(
            [self._ami.send_action("Filter", list(h), timeout=self._action_timeout) for h in filters],
            consumeErrors=True,
        )
        refused = [r.getErrorMessage() for ok, r in results if not ok and isinstance(r, Failure)]
        if refused:
            self.log.warn("{n} event filters refused: {errors}", n=len(refused), errors=refused)

    async def _wait_booted(self, login: int) -> None:
        if self._booted:
            return
        waiter: Deferred[None] = Deferred()
        self._boot_waiters.append(waiter)
        waiter.addTimeout(self._boot_timeout, self._clock)
        try:
            await waiter
        except defer.TimeoutError:
            self.log.warn(
                "no FullyBooted within {timeout}s (is 'system' in the AMI user's read "
                "classes?); rebuilding anyway",
                timeout=self._boot_timeout,
            )
        self._check(login)

    def _publish(self, events: list[AgentEvent | QueueEvent]) -> None:
        if events:
            self._publish_cb(events)
