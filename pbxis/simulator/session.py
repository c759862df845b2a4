"""One AMI TCP session on the simulated Asterisk: the Twisted edge.

Bytes in go through the shared sans-I/O :class:`~pbxis.ami.parser.AMIParser`
(``expect_banner=False``: clients send no banner); actions are routed by
:func:`.actions.dispatch`. Events reach the session through :meth:`deliver`, which
applies the session's class mask and filters and holds events back while an action
is running, so the response is written before the events it caused (as Asterisk's
per-session thread does).
"""

from __future__ import annotations

from collections import deque

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..ami.message import Message
from ..ami.parser import AMIParser, RemoteProtocolError
from .actions import dispatch
from .context import SessionHost
from .filters import ALL_CLASSES, EventFilter, filters_allow
from .replies import Reply

__all__ = ["BANNER", "AMIServerFactory", "AMISession"]

#: Asterisk 20's banner; a session writes its host's personality's (22: AMI 11.0.0).
BANNER = b"Asterisk Call Manager/9.0.0\r\n"
MAX_ACTION_SIZE = 128 * 1024
log = Logger()


class AMISession(Protocol):
    """Per-connection state: login, event mask, filters, and what the client sent."""

    def __init__(self, sim: SessionHost) -> None:
        self.sim = sim
        self.parser = AMIParser(expect_banner=False, max_message_size=MAX_ACTION_SIZE)
        self.authenticated = False
        self.username: str | None = None
        self.challenge: str | None = None
        self.mask: frozenset[str] = ALL_CLASSES
        self.filters: list[EventFilter] = []
        self.received: list[Message] = []
        self._held: list[bytes] = []
        self._busy = 0  # an action is running (or a sync Originate is pending)
        self._queue: deque[Message] = deque()  # actions that arrived while busy
        self._draining = False  # _run_queue is on the stack
        self._closing = False
        self._stalled = False
        self._delayed: IDelayedCall | None = None
        self._auth_timer: IDelayedCall | None = None

    # -- Twisted callbacks -----------------------------------------------------------------------
    def connectionMade(self) -> None:
        # Asterisk writes each event as it happens; Nagle would hold small ones back.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.sim.attach(self)
        if self.sim.stalled:
            self.stall(True)
        self._write(self.sim.config.personality.banner)
        self._auth_timer = self.sim.clock.callLater(self.sim.config.auth_timeout, self._auth_expired)

    def _auth_expired(self) -> None:
        self._auth_timer = None
        if not self.authenticated:
            self._close()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.sim.detach(self)
        for call in (self._delayed, self._auth_timer):
            if call is not None and call.active():
                call.cancel()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self.parser.receive_data(data)
        try:
            for item in self.parser.messages():
                if isinstance(item, Message):
                    self._queue.append(item)
        except RemoteProtocolError as exc:
            log.warn("AMI client sent unparseable data: {error}", error=str(exc))
            self._write(Message([("Response", "Error"), ("Message", "Failed to parse message")]).to_bytes())
            self._close()
            return
        self._run_queue()

    # -- actions ---------------------------------------------------------------------------------------
    def _run_queue(self) -> None:
        """Serve queued actions one after another, as Asterisk's session thread does.

        A loop, guarded against re-entry: an action answered synchronously finishes
        inside :meth:`_answer`, and its :meth:`_finish` must hand back to this loop
        rather than recurse, or a client pipelining thousands of actions in one read
        overflows the stack.
        """
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue and not self._busy and not self._closing:
                msg = self._queue.popleft()
                self.received.append(msg)
                self._busy += 1
                try:
                    reply = dispatch(self.sim.actions, self.sim, self, msg)
                except Exception:
                    log.failure("simulator action {action} crashed", action=msg.action)
                    reply = Reply([Message([("Response", "Error"), ("Message", "Internal simulator error")])])
                self._answer(reply)
        finally:
            self._draining = False

    def _answer(self, reply: Reply) -> None:
        if reply.deferred is not None:
            reply.deferred.addCallback(lambda messages: self._answer(Reply(messages)))
            return
        if reply.delay:
            self._delayed = self.sim.clock.callLater(reply.delay, self._finish, reply)
            return
        self._finish(reply)

    def _finish(self, reply: Reply) -> None:
        self._delayed = None
        for message in [*reply.messages, *reply.direct]:
            self._write(message.to_bytes())
        self._busy -= 1
        if reply.close:
            self._close()
            return
        self._flush()
        self._run_queue()

    # -- events ----------------------------------------------------------------------------------------
    def deliver(self, message: Message, event_class: str, text: str) -> None:
        """An asynchronous event: apply the class mask and filters, then write or hold."""
        if not self.authenticated or self._closing or event_class not in self.mask:
            return
        if self.filters and not filters_allow(self.filters, message.event or "", text, message.headers):
            return
        data = message.to_bytes()
        if self._busy or self._stalled:
            self._held.append(data)
        else:
            self._write(data)

    def _flush(self) -> None:
        if self._busy or self._stalled:
            return
        held, self._held = self._held, []
        for data in held:
            self._write(data)

    # -- faults ----------------------------------------------------------------------------------------
    def stall(self, on: bool) -> None:
        """Stop reading and writing (a hung Asterisk), or resume."""
        self._stalled = on
        if self.transport is None:
            return
        if on:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        else:
            self.transport.resumeProducing()  # type: ignore[attr-defined]
            self._flush()

    def write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(data)

    def abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- internals --------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(data)

    def close(self) -> None:
        """Close after writing what is pending (Logoff, a clean shutdown)."""
        self._close()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._queue.clear()
        if self.transport is not None:
            self.transport.loseConnection()


class AMIServerFactory(ServerFactory):
    """Builds :class:`AMISession`s bound to one simulator."""

    noisy = False

    def __init__(self, sim: SessionHost) -> None:
        self.sim = sim

    def buildProtocol(self, addr: object) -> AMISession:
        session = AMISession(self.sim)
        session.factory = self
        return session
