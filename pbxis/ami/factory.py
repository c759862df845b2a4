"""The one AMI connection of the daemon: reconnect, back off, fan events out.

Why not :class:`twisted.application.internet.ClientService`? It would be the boring
choice, but its ``prepareConnection`` hook (the natural place for the login) leaves
the socket open when the login fails, and a link that drops after a failed
``prepareConnection`` trips its state machine (``NoTransition`` in Twisted 26). AMI
closes the socket on every refused login, so that path is the common one here. The
loop below is the same idea in a few lines: ``endpoint.connect``, then on any failure
or loss ``clock.callLater(backoff)``. The delay starts again from ``min_delay`` only
once a link has stayed logged in for ``reset_after`` seconds: a wrong secret backs off
to ``max_delay`` instead of hammering Asterisk (which sleeps 1 s per refused login),
and so does a peer that accepts the login and then breaks the link at once (garbage,
an immediate close), which would otherwise be re-logged-into twice a second forever.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import AuthenticationFailed, NotConnected
from .message import HeaderInput, Message
from .protocol import ActionResult, AMIProtocol, AuthMethod, LinkSettings, Outcome

__all__ = [
    "MAX_EVENT_NAMES",
    "OTHER_EVENTS",
    "AMIClientFactory",
    "AMIStats",
    "ActionListener",
    "backoff_delay",
]

log = Logger(namespace="pbxis.ami")

MAX_EVENT_NAMES = 256
"""Distinct event names counted one by one in :attr:`AMIStats.events_in`; Asterisk has
about 200. Names first seen after that are counted under :data:`OTHER_EVENTS`, so a
peer inventing names cannot grow the counter (or ``/metrics``) without bound."""
OTHER_EVENTS = "other"

LinkState = Literal["connecting", "logging_in", "logged_in", "disconnected", "auth_failed"]
ActionListener = Callable[[str, float, str], None]


def backoff_delay(
    attempt: int, min_delay: float, max_delay: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first).

    Doubles from ``min_delay``, capped at ``max_delay``, then spread by +-20 % so
    that several daemons restarted together do not reconnect in lock step.
    """
    base = min(max_delay, min_delay * 2 ** min(attempt, 64))
    return float(min(max_delay, base * (0.8 + 0.4 * rand())))


@dataclass
class AMIStats:
    """Plain counters for ``/metrics``; read them, never write them."""

    connects: int = 0
    """TCP connections established."""
    logins: int = 0
    """Successful logins."""
    reconnects: int = 0
    """TCP connections made by a retry (after a failed attempt or a lost link)."""
    events_in: Counter[str] = field(default_factory=Counter)
    """Events received, by name (list items included); at most :data:`MAX_EVENT_NAMES`
    names, the rest under :data:`OTHER_EVENTS`."""
    last_event_time: float | None = None
    state: LinkState = "disconnected"
    last_error: str | None = None


class AMIClientFactory(Factory):
    """Keeps one logged-in AMI link up and hands its events to observers.

    Observers may define any of ``ami_logged_in(protocol)``, ``ami_event(message)``,
    ``ami_events(messages)`` and ``ami_lost(reason)``; they are called in registration
    order, events in arrival order. The events of one read from the socket come as one
    list: to ``ami_events`` when the observer has it (one call per read, what a flood
    needs), else to ``ami_event`` one by one. An observer that raises is logged and
    skipped (for ``ami_events``, the rest of that list is its own to handle).
    """

    def __init__(
        self,
        username: str,
        secret: str,
        *,
        auth: AuthMethod = "md5",
        events: str | None = "on",
        action_timeout: float = 10.0,
        keepalive_interval: float | None = 20.0,
        keepalive_timeout: float = 10.0,
        min_delay: float = 0.5,
        max_delay: float = 30.0,
        reset_after: float = 30.0,
        clock: IReactorTime | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if auth not in ("md5", "plain"):
            raise ValueError(f"auth must be 'md5' or 'plain', not {auth!r}")
        if not 0 < min_delay <= max_delay:
            raise ValueError("need 0 < min_delay <= max_delay")
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.username = username
        self.settings = LinkSettings(
            username,
            secret,
            auth=auth,
            events=events,
            action_timeout=action_timeout,
            keepalive_interval=keepalive_interval,
            keepalive_timeout=keepalive_timeout,
        )
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._reset_after = reset_after
        self._healthy: IDelayedCall | None = None  # resets the backoff once the link held
        self._clock: IReactorTime = clock
        self._rand = rand
        self.stats = AMIStats()
        self._observers: list[object] = []
        self._action_listeners: list[ActionListener] = []
        self._endpoint: IStreamClientEndpoint | None = None
        self._connecting: Deferred[AMIProtocol] | None = None
        self._retry: IDelayedCall | None = None
        self._link: AMIProtocol | None = None
        self._attempts = 0
        self._retrying = False  # the current attempt is a retry, not the first connect
        self._stopping = False
        self._stop_waiters: list[Deferred[None]] = []

    def __repr__(self) -> str:
        return f"<AMIClientFactory {self.username!r} {self.stats.state}>"

    # -- public API ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a link is logged in."""
        return self._link is not None and self._link.logged_in

    @property
    def protocol_instance(self) -> AMIProtocol | None:
        """The current link, logged in or not (``None`` between attempts)."""
        return self._link

    def connect(self, endpoint: IStreamClientEndpoint) -> None:
        """Start connecting to ``endpoint``, and keep reconnecting until :meth:`stop`."""
        if self._endpoint is not None:
            raise RuntimeError("AMIClientFactory.connect() called twice without stop()")
        self._endpoint = endpoint
        self._stopping = False
        self._attempts = 0
        self._retrying = False
        self._attempt()

    def stop(self) -> Deferred[None]:
        """Stop reconnecting and close the link; fire once it is closed."""
        self._stopping = True
        self._endpoint = None
        self._cancel_healthy()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._connecting is not None:
            self._connecting.cancel()
        if self._link is None or self._link.transport is None:
            self.stats.state = "disconnected"
            return defer.succeed(None)
        waiter: Deferred[None] = Deferred()
        self._stop_waiters.append(waiter)
        self._link.transport.loseConnection()
        return waiter

    def send_action(
        self,
        name: str,
        headers: HeaderInput | None = None,
        *,
        timeout: float | None = None,
        action_id: str | None = None,
    ) -> Deferred[ActionResult]:
        """:meth:`AMIProtocol.send_action` on the logged-in link, else fail ``NotConnected``."""
        link = self._link
        if link is None or not link.logged_in:
            return defer.fail(NotConnected(f"{name}: no logged-in AMI link"))
        return link.send_action(name, headers, timeout=timeout, action_id=action_id)

    def add_observer(self, observer: object) -> None:
        if observer not in self._observers:
            self._observers.append(observer)

    def remove_observer(self, observer: object) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def add_action_listener(self, listener: ActionListener) -> None:
        """``listener(action_name, seconds, outcome)`` after each action completes.

        ``outcome`` is ``"ok"``, ``"error"``, ``"timeout"`` or ``"lost"``.
        """
        self._action_listeners.append(listener)

    # -- IProtocolFactory ---------------------------------------------------------
    def buildProtocol(self, addr: IAddress | None) -> AMIProtocol:
        protocol = AMIProtocol(self.settings, clock=self._clock, handler=self)
        protocol.factory = self
        return protocol

    # -- the reconnecting loop ----------------------------------------------------
    def _attempt(self) -> None:
        self._retry = None
        if self._endpoint is None:
            return
        self.stats.state = "connecting"
        log.info("Connecting to AMI at {endpoint}", endpoint=self._endpoint)
        d: Deferred[AMIProtocol] = self._endpoint.connect(self)  # type: ignore[assignment]
        self._connecting = d
        d.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, protocol: AMIProtocol) -> None:
        self._connecting = None
        self._link = protocol
        self.stats.connects += 1
        if self._retrying:
            self.stats.reconnects += 1
        if protocol.state != "closed":
            self.stats.state = "logging_in"

    def _connect_failed(self, reason: Failure) -> None:
        self._connecting = None
        if self._stopping and reason.check(CancelledError):
            return
        self.stats.state = "disconnected"
        self.stats.last_error = reason.getErrorMessage()
        log.warn("AMI connection failed: {error}", error=self.stats.last_error)
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._stopping or self._endpoint is None:
            return
        delay = backoff_delay(self._attempts, self._min_delay, self._max_delay, self._rand)
        self._attempts += 1
        self._retrying = True
        log.info("Reconnecting to AMI in {delay:.2f}s", delay=delay)
        self._retry = self._clock.callLater(delay, self._attempt)

    # -- LinkHandler (called by AMIProtocol) --------------------------------------
    def link_logged_in(self, protocol: AMIProtocol) -> None:
        self._cancel_healthy()
        if self._reset_after <= 0:
            self._attempts = 0
        else:
            self._healthy = self._clock.callLater(self._reset_after, self._link_held)
        self.stats.logins += 1
        self.stats.state = "logged_in"
        self.stats.last_error = None
        self._notify("ami_logged_in", protocol)

    def _link_held(self) -> None:
        """The link stayed logged in for ``reset_after`` s: the next loss retries soon."""
        self._healthy = None
        self._attempts = 0

    def _cancel_healthy(self) -> None:
        if self._healthy is not None and self._healthy.active():
            self._healthy.cancel()
        self._healthy = None

    def link_login_failed(self, protocol: AMIProtocol, reason: Failure) -> None:
        self.stats.last_error = reason.getErrorMessage()
        if reason.check(AuthenticationFailed):
            self.stats.state = "auth_failed"

    def link_events(self, protocol: AMIProtocol, messages: list[Message]) -> None:
        counts = self.stats.events_in
        names = [name for message in messages if (name := message.event) is not None]
        # One C-level count of the read's names when they cannot push the counter past
        # its bound (the names are known ones: always, after the first reads).
        if len(counts) + len(set(names).difference(counts)) <= MAX_EVENT_NAMES:
            counts.update(names)
        else:
            for name in names:
                if name in counts or len(counts) < MAX_EVENT_NAMES:
                    counts[name] += 1
                else:
                    counts[OTHER_EVENTS] += 1
        self.stats.last_event_time = time.time()
        for observer in list(self._observers):
            many = getattr(observer, "ami_events", None)
            if many is not None:
                try:
                    many(messages)
                except Exception:
                    log.failure("AMI observer {observer!r}.ami_events failed", observer=observer)
                continue
            one = getattr(observer, "ami_event", None)
            if one is None:
                continue
            for message in messages:
                try:
                    one(message)
                except Exception:
                    log.failure("AMI observer {observer!r}.ami_event failed", observer=observer)

    def link_lost(self, protocol: AMIProtocol, reason: Failure) -> None:
        if protocol is not self._link:
            return
        self._link = None
        self._cancel_healthy()
        was_logged_in = self.stats.state == "logged_in"
        if self.stats.state != "auth_failed":
            self.stats.state = "disconnected"
        log.info("AMI link lost: {reason}", reason=reason.getErrorMessage())
        if was_logged_in:
            self._notify("ami_lost", reason)
        if self._stopping:
            waiters, self._stop_waiters = self._stop_waiters, []
            for waiter in waiters:
                waiter.callback(None)
            self.stats.state = "disconnected"
        else:
            self._schedule_retry()

    def action_done(self, action: str, seconds: float, outcome: Outcome) -> None:
        for listener in list(self._action_listeners):
            try:
                listener(action, seconds, outcome)
            except Exception:
                log.failure("AMI action listener {listener!r} failed", listener=listener)

    def _notify(self, method: str, *args: Any) -> None:
        for observer in list(self._observers):
            callback = getattr(observer, method, None)
            if callback is None:
                continue
            try:
                callback(*args)
            except Exception:
                log.failure("AMI observer {observer!r}.{method} failed", observer=observer, method=method)
