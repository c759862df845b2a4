"""One AMI link: banner, login, ActionID correlation, list actions, keepalive.

The protocol is the thin Twisted edge around :class:`~pbxis.ami.parser.AMIParser`:
bytes come in through :meth:`AMIProtocol.dataReceived`, messages go out through
:func:`~pbxis.ami.action.format_action`. What it adds is bookkeeping:

* every action gets an ActionID and a Deferred; the answer is matched strictly by
  ActionID, never by position, because Asterisk writes queued events before, between
  and after responses;
* a list action (``EventList: start``) fires only at its ``EventList: Complete``
  event, with the items collected in between;
* nothing is ever re-sent: when the link drops, every pending Deferred fails with
  :class:`~pbxis.ami.errors.ConnectionLost` at once, because an Originate that may
  already have run must not run twice;
* a Ping every ``keepalive_interval`` seconds notices a half-dead TCP link (NAT,
  frozen Asterisk) that the kernel would report only after many minutes.

The protocol reports to a :class:`LinkHandler` (the factory) and knows nothing about
reconnecting or observers.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal
from typing import Protocol as TypingProtocol

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .action import check_header, format_action
from .errors import ActionFailed, ActionTimeout, AuthenticationFailed, ConnectionLost, NotConnected
from .message import Banner, HeaderInput, Message
from .parser import AMIParser, LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_ACTION_ID_LENGTH",
    "AMIProtocol",
    "ActionResult",
    "AuthMethod",
    "LinkHandler",
    "Outcome",
    "md5_key",
]

log = Logger(namespace="pbxis.ami")

AuthMethod = Literal["md5", "plain"]
Outcome = Literal["ok", "error", "timeout", "lost"]

MAX_ACTION_ID_LENGTH = 64
"""Asterisk formats list items' ActionID into a 256-byte buffer; stay far below it."""

_FORGOTTEN_LIMIT = 1024
"""How many abandoned ActionIDs we remember, so their late answers are dropped quietly."""


@dataclass(frozen=True)
class ActionResult:
    """What an action produced: its response and, for list actions, the items."""

    response: Message
    events: list[Message] = field(default_factory=list)


class LinkHandler(TypingProtocol):
    """What an :class:`AMIProtocol` tells its owner. Every method must not raise."""

    def link_logged_in(self, protocol: AMIProtocol) -> None: ...

    def link_login_failed(self, protocol: AMIProtocol, reason: Failure) -> None: ...

    def link_events(self, protocol: AMIProtocol, messages: list[Message]) -> None:
        """Events for nobody's action, in arrival order: those of one read, at once."""
        ...

    def link_lost(self, protocol: AMIProtocol, reason: Failure) -> None: ...

    def action_done(self, action: str, seconds: float, outcome: Outcome) -> None: ...


class _NullHandler:
    def link_logged_in(self, protocol: AMIProtocol) -> None:
        pass

    def link_login_failed(self, protocol: AMIProtocol, reason: Failure) -> None:
        pass

    def link_events(self, protocol: AMIProtocol, messages: list[Message]) -> None:
        pass

    def link_lost(self, protocol: AMIProtocol, reason: Failure) -> None:
        pass

    def action_done(self, action: str, seconds: float, outcome: Outcome) -> None:
        pass


@dataclass(eq=False)
class _Pending:
    """An action sent and not yet answered in full."""

    name: str
    deferred: Deferred[ActionResult]
    started: float
    timer: IDelayedCall | None = None
    response: Message | None = None  # set once a list action's first answer arrived
    items: list[Message] = field(default_factory=list)


def md5_key(challenge: str, secret: str) -> str:
    """The ``Key`` of an MD5 login: lowercase hex of md5(challenge + secret)."""
    return hashlib.md5((challenge + secret).encode("utf-8"), usedforsecurity=False).hexdigest()


def _is_list_complete(message: Message) -> bool:
    return (message.get("EventList") or "").lower() == "complete"


def _opens_list(message: Message) -> bool:
    # res_fax says "Start", the rest "start".
    return (message.get("EventList") or "").lower() == "start"


@dataclass(frozen=True)
class LinkSettings:
    """How one AMI link logs in and keeps itself alive; the factory hands it to each link."""

    username: str
    secret: str = field(repr=False)
    auth: AuthMethod = "md5"
    events: str | None = "on"
    action_timeout: float = 10.0
    keepalive_interval: float | None = 20.0
    keepalive_timeout: float = 10.0


class AMIProtocol(Protocol):
    """One logged-in (or logging-in) AMI session.

    States: ``banner`` (waiting for ``Asterisk Call Manager/x``), ``login``,
    ``ready``, ``closed``. :meth:`send_action` works only in ``ready``.
    """

    def __init__(
        self,
        settings: LinkSettings,
        *,
        clock: IReactorTime | None = None,
        handler: LinkHandler | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.settings = settings
        self.username = settings.username
        self._clock: IReactorTime = clock
        self._handler: LinkHandler = handler if handler is not None else _NullHandler()
        self._parser = AMIParser(expect_banner=True)
        self._pending: dict[str, _Pending] = {}
        # ActionIDs whose caller gave up (timeout, cancel): their late answer is dropped,
        # and if it opens a list, the items are dropped too until its Complete event.
        self._forgotten: OrderedDict[str, bool] = OrderedDict()
        self._ids = itertools.count(1)
        self._keepalive: LoopingCall | None = None
        self._banner_timer: IDelayedCall | None = None
        self.state: Literal["banner", "login", "ready", "closed"] = "banner"
        self.banner: Banner | None = None
        self.fully_booted = False
        self._dropping = False  # set once we decided to close; later bytes are ignored

    def __repr__(self) -> str:
        return f"<AMIProtocol {self.username!r} {self.state}>"

    @property
    def logged_in(self) -> bool:
        """Ready for actions: logged in and not on the way out.

        Once we decided to drop the link (keepalive, corrupt stream) the socket lingers
        until the reactor reports it closed; an action written into it then could only
        fail with ``ConnectionLost``, which tells the caller it *may* have run. Refused
        here it fails ``NotConnected``: certainly not run, safe to retry.
        """
        return self.state == "ready" and not self._dropping

    # -- Twisted ------------------------------------------------------------------
    def connectionMade(self) -> None:
        # Actions are small and latency-bound (an originate click); never let Nagle hold one.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        # A peer that never sends the banner is not Asterisk; do not wait for ever.
        self._banner_timer = self._clock.callLater(self.settings.action_timeout, self._no_banner)

    def dataReceived(self, data: bytes) -> None:
        """Parse ``data``; hand the events it completes to the handler in one call.

        Per-event Python calls are what a flood costs (issue #20), so the events of one
        read go up as one list, and the layers above (observers, tracker, hub, client
        writes) work per list. Order is kept: anything else (a response, the end of a
        list action, the banner) first flushes the events received before it, and
        ``FullyBooted`` is handed up on its own, after the events before it.
        """
        if self._dropping or self.state == "closed":
            return
        self._parser.receive_data(data)
        events: list[Message] = []
        try:
            for item in self._parser.messages():
                if isinstance(item, Banner):
                    self._flush(events)
                    self._got_banner(item)
                elif (event := item.event) is not None and event != "FullyBooted" and (
                    not (self._pending or self._forgotten) or self._is_link_event(item)
                ):
                    # the common case told inline (no action pending: no ActionID to
                    # compare), one call fewer per event of a flood
                    events.append(item)
                    continue
                else:
                    self._flush(events)
                    if self._dropping:
                        return
                    self._dispatch(item)
                if self._dropping:
                    return
        except RemoteProtocolError as e:
            self._flush(events)  # what arrived intact before the corruption counts
            log.error("AMI stream is corrupt, dropping the link: {error}", error=str(e))
            self._abort()
            return
        self._flush(events)

    def _flush(self, events: list[Message]) -> None:
        """Hand ``events`` (and empty the list) to the handler."""
        if events:
            batch = events[:]
            events.clear()
            self._handler.link_events(self, batch)

    def _is_link_event(self, message: Message) -> bool:
        """An event for the handler, not an item of a list action nor a late item of an
        abandoned one: the common case, told without an ActionID look-up while no action
        is pending or forgotten. ``FullyBooted`` is not: it goes through ``_dispatch``."""
        event = message.event
        if event is None or event == "FullyBooted":
            return False
        if self._pending or self._forgotten:
            action_id = message.action_id
            if action_id is not None:
                pending = self._pending.get(action_id)
                if (pending is not None and pending.response is not None) or self._forgotten.get(action_id):
                    return False
        return True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.state = "closed"
        if self._banner_timer is not None and self._banner_timer.active():
            self._banner_timer.cancel()
        self._banner_timer = None
        self._stop_keepalive()
        pending, self._pending = self._pending, {}
        for p in pending.values():
            self._finish(p, Failure(ConnectionLost(f"{p.name}: AMI link lost ({reason.value})")))
        self._handler.link_lost(self, reason)

    # -- sending ------------------------------------------------------------------
    def send_action(
        self,
        name: str,
        headers: HeaderInput | None = None,
        *,
        timeout: float | None = None,
        action_id: str | None = None,
    ) -> Deferred[ActionResult]:
        """Send one action; fire with its :class:`ActionResult`.

        Fails with :class:`NotConnected` before login or after the link closed,
        :class:`ActionFailed` on ``Response: Error``, :class:`ActionTimeout` after
        ``timeout`` seconds (default ``action_timeout``; the late answer is ignored),
        :class:`ConnectionLost` when the link drops first, and
        :class:`~pbxis.ami.parser.LocalProtocolError` (nothing written) for a header
        or ``action_id`` that cannot be sent safely.
        """
        if not self.logged_in:
            state = "closing" if self._dropping else "not logged in"
            return defer.fail(NotConnected(f"{name}: AMI link {state}"))
        return self._send(name, headers, timeout=timeout, action_id=action_id)

    def _send(
        self,
        name: str,
        headers: HeaderInput | None,
        *,
        timeout: float | None = None,
        action_id: str | None = None,
    ) -> Deferred[ActionResult]:
        try:
            if action_id is None:
                action_id = self._next_id()
            else:
                self._check_action_id(action_id)
            data = format_action(name, headers, action_id)
        except LocalProtocolError:
            return defer.fail()
        d: Deferred[ActionResult] = Deferred(lambda _: self._cancel(action_id))
        pending = _Pending(name, d, self._clock.seconds())
        delay = self.settings.action_timeout if timeout is None else timeout
        pending.timer = self._clock.callLater(delay, self._timed_out, action_id, delay)
        self._pending[action_id] = pending
        assert self.transport is not None
        self.transport.write(data)
        return d

    def _next_id(self) -> str:
        while True:
            action_id = f"pbxis-{next(self._ids)}"
            if action_id not in self._pending and action_id not in self._forgotten:
                return action_id

    def _check_action_id(self, action_id: str) -> None:
        if not isinstance(action_id, str) or not action_id:
            raise LocalProtocolError("an ActionID must be a non-empty string")
        if len(action_id) > MAX_ACTION_ID_LENGTH:
            raise LocalProtocolError(f"an ActionID must be at most {MAX_ACTION_ID_LENGTH} chars")
        if not action_id.isprintable() or action_id != action_id.strip():
            raise LocalProtocolError(f"ActionID {action_id!r} holds control characters or blanks")
        check_header("ActionID", action_id)
        if action_id in self._pending or action_id in self._forgotten:
            raise LocalProtocolError(f"ActionID {action_id!r} is already in use")

    # -- receiving ----------------------------------------------------------------
    def _got_banner(self, banner: Banner) -> None:
        if self.banner is not None:
            log.warn("Second AMI banner {line!r} ignored", line=banner.line)
            return
        self.banner = banner
        if self._banner_timer is not None and self._banner_timer.active():
            self._banner_timer.cancel()
        self._banner_timer = None
        if not banner.line.startswith("Asterisk Call Manager"):
            log.warn("Unexpected AMI banner {line!r}; trying to log in anyway", line=banner.line)
        self.state = "login"
        log.info(
            "AMI banner {line!r}; logging in as {username} ({auth})",
            line=banner.line,
            username=self.username,
            auth=self.settings.auth,
        )
        Deferred.fromCoroutine(self._login()).addCallbacks(self._login_ok, self._login_failed)

    async def _login(self) -> None:
        """Challenge (for MD5) then Login; any ``Response: Error`` is a refused login."""
        headers: dict[str, str | None]
        try:
            if self.settings.auth == "md5":
                answer = await self._send("Challenge", {"AuthType": "MD5"})
                challenge = answer.response.get("Challenge")
                if not challenge:
                    raise AuthenticationFailed("Challenge answered without a challenge")
                key = md5_key(challenge, self.settings.secret)
                headers = {"AuthType": "MD5", "Username": self.username, "Key": key}
            else:
                headers = {"Username": self.username, "Secret": self.settings.secret}
            headers["Events"] = self.settings.events
            await self._send("Login", headers)
        except ActionFailed as e:
            raise AuthenticationFailed(e.message) from None

    def _login_ok(self, _: None) -> None:
        if self.state != "login":
            return
        self.state = "ready"
        log.info("AMI login accepted for {username}", username=self.username)
        if self.settings.keepalive_interval:
            self._keepalive = LoopingCall(self._ping)
            self._keepalive.clock = self._clock
            self._keepalive.start(self.settings.keepalive_interval, now=False)
        self._handler.link_logged_in(self)

    def _login_failed(self, reason: Failure) -> None:
        if reason.check(ConnectionLost) and self.state == "closed":
            return  # the link died during login; link_lost says so
        log.error(
            "AMI login as {username} failed: {error}",
            username=self.username,
            error=reason.getErrorMessage(),
        )
        self._handler.link_login_failed(self, reason)
        self._abort(graceful=True)

    def _dispatch(self, message: Message) -> None:
        """Route one message: to a pending action by ActionID, else to the handler."""
        action_id = message.action_id
        pending = self._pending.get(action_id) if action_id is not None else None
        if message.is_event:
            if action_id is not None and pending is not None and pending.response is not None:
                if _is_list_complete(message):
                    del self._pending[action_id]
                    self._finish(pending, ActionResult(pending.response, pending.items))
                else:
                    pending.items.append(message)
            elif action_id is not None and self._forgotten.get(action_id):
                if _is_list_complete(message):  # an item of a list nobody waits for any more
                    del self._forgotten[action_id]
            else:
                if message.event == "FullyBooted":
                    self.fully_booted = True
                self._handler.link_events(self, [message])
            return
        response = message.response
        if response is None:
            log.warn("AMI message without Event or Response ignored: {keys}", keys=message.keys())
        elif action_id is None or pending is None or pending.response is not None:
            self._unexpected_response(action_id, message)
        elif response.lower() == "error":
            del self._pending[action_id]
            text = message.get("Message") or "unknown error"
            self._finish(pending, Failure(ActionFailed(pending.name, text, message)))
        elif _opens_list(message):
            pending.response = message  # items follow, then the Complete event
        else:
            del self._pending[action_id]
            self._finish(pending, ActionResult(message, []))

    def _unexpected_response(self, action_id: str | None, message: Message) -> None:
        if action_id is not None and action_id in self._forgotten:
            if _opens_list(message):
                self._forgotten[action_id] = True  # drop its items until Complete
            else:
                del self._forgotten[action_id]
            log.debug("Late answer to abandoned AMI action {action_id}", action_id=action_id)
            return
        log.warn(
            "AMI response for no pending action ({action_id}): {response} {text}",
            action_id=action_id,
            response=message.response,
            text=message.get("Message"),
        )

    # -- completion ---------------------------------------------------------------
    def _finish(self, pending: _Pending, result: ActionResult | Failure) -> None:
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        outcome: Outcome = "ok"
        if isinstance(result, Failure):
            if result.check(ActionTimeout):
                outcome = "timeout"
            elif result.check(ConnectionLost):
                outcome = "lost"
            else:
                outcome = "error"
        self._handler.action_done(pending.name, self._clock.seconds() - pending.started, outcome)
        if isinstance(result, Failure):
            pending.deferred.errback(result)
        else:
            pending.deferred.callback(result)

    def _timed_out(self, action_id: str, delay: float) -> None:
        pending = self._pending.get(action_id)
        if pending is None:
            return
        pending.timer = None
        self._forget(action_id)
        del self._pending[action_id]
        self._finish(pending, Failure(ActionTimeout(f"{pending.name}: no answer within {delay:g}s")))

    def _cancel(self, action_id: str) -> None:
        pending = self._pending.pop(action_id, None)
        if pending is None:
            return
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        self._forget(action_id)

    def _forget(self, action_id: str) -> None:
        self._forgotten[action_id] = False
        while len(self._forgotten) > _FORGOTTEN_LIMIT:
            self._forgotten.popitem(last=False)

    # -- keepalive and closing ----------------------------------------------------
    def _ping(self) -> None:
        d = self.send_action("Ping", timeout=self.settings.keepalive_timeout)
        d.addErrback(self._ping_failed)

    def _ping_failed(self, reason: Failure) -> None:
        if reason.check(ActionTimeout):
            log.error(
                "AMI Ping unanswered for {timeout}s; dropping the link",
                timeout=self.settings.keepalive_timeout,
            )
            self._abort()
        # ConnectionLost / NotConnected: the link is already going; ActionFailed: alive.

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        self._keepalive = None

    def _no_banner(self) -> None:
        self._banner_timer = None
        log.error("No AMI banner within {timeout}s; dropping the link", timeout=self.settings.action_timeout)
        self._abort()

    def _abort(self, *, graceful: bool = False) -> None:
        """Close the link; ``connectionLost`` fails whatever is still pending."""
        self._dropping = True
        self._stop_keepalive()
        if self.transport is None:
            return
        if graceful:
            self.transport.loseConnection()
        else:
            self.transport.abortConnection()  # type: ignore[attr-defined]
