"""WebSocket: ``GET /stream/{token}/ws?since=N``, served by Autobahn on the HTTP port.

The Klein route hands the upgrade request to one shared Autobahn ``WebSocketResource``;
each connection is a :class:`StreamProtocol`. One JSON event per text message; ``since``
resumes exactly as for long-poll. The server pings every ``ws_ping_interval`` seconds
and drops a peer that has not answered the previous ping by then. The pings of all
clients are spread evenly over the interval by one shared timer
(:class:`~pbxis.web.streams._common.Heartbeat`) rather than sent by Autobahn's
auto-ping, which sends the pings of clients that connected together in bursts.

Problems are reported with close codes after the handshake, because a browser cannot
read the HTTP status of a refused upgrade:

====  =====================================================================
code  meaning
====  =====================================================================
1001  server shutdown (going away); reconnect later with ``since``
4400  ``since`` is not an event id
4403  the page's Origin is neither in ``allowed_origins`` nor pbxis's own
4404  unknown token (never issued, or its registration already ended)
4410  the registration ended while connected (``closed`` event sent first;
      reason ``unregistered`` or ``expired``)
4429  the registration has ``[agents] max_clients`` connected clients already
====  =====================================================================

Each event is framed once (:meth:`LogEntry.frame`, Autobahn's prepared messages for
broadcast) and the same bytes are written to every client of its agent.

Clients have nothing to say to pbxis, so frames and messages from them are limited to
:data:`MAX_CLIENT_PAYLOAD` bytes (Autobahn's default is unlimited): a larger one is
refused at its frame header, before its payload is read, with close code 1009. A
connection being refused (the codes above) reads nothing more at all: its close frame
is written, reading stops and the socket is closed once the frame is out.

A client that stops reading is paused through Twisted's producer API (the hub
subscription is the socket's producer); past ``max_buffer_bytes`` the connection is
dropped without a close frame (the client sees 1006) and can resume with ``since``.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.logger import Logger

from pbxis.hub import LogEntry, Registration, RegistrationEnded, Subscription, TooManyClients
from pbxis.web.cors import origin_allowed, same_origin
from pbxis.web.errors import ApiError

from ._common import WEBSOCKET, StreamConfig, parse_since

__all__ = [
    "CLOSE_BAD_SINCE",
    "CLOSE_ENDED",
    "CLOSE_FORBIDDEN_ORIGIN",
    "CLOSE_SHUTDOWN",
    "CLOSE_TOO_MANY_CLIENTS",
    "CLOSE_UNKNOWN_TOKEN",
    "MAX_CLIENT_PAYLOAD",
    "StreamProtocol",
    "make_ws_resource",
]

CLOSE_SHUTDOWN = 1001
CLOSE_BAD_SINCE = 4400
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_UNKNOWN_TOKEN = 4404
CLOSE_ENDED = 4410
CLOSE_TOO_MANY_CLIENTS = 4429

MAX_CLIENT_PAYLOAD = 4096
"""Largest frame or message a client may send (pbxis reads none; pongs and close
frames are at most 125 bytes)."""

log = Logger()


class StreamProtocol(WebSocketServerProtocol):
    """One WebSocket client of one agent's stream."""

    factory: _StreamFactory

    _refusal: tuple[int, str] | None = None
    _registration: Registration | None = None
    _since: int | None = None
    _sub: Subscription | None = None
    _since_error: str | None = None
    _unanswered = False  # a ping went out and no pong came back yet

    def onConnect(self, request: ConnectionRequest) -> Any:
        """Decide now, tell the client after the handshake (see the module docstring)."""
        config = self.factory.config
        origin = request.headers.get("origin")
        own_page = same_origin(origin, request.headers.get("host"))
        if not own_page and not origin_allowed(origin, config.allowed_origins):
            self._refusal = (CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
            return
        segments = request.path.rstrip("/").split("/")
        token = unquote(segments[-2]) if len(segments) >= 2 else ""
        try:
            self._since = parse_since(request.params.get("since", [None])[0])
        except ApiError as e:
            self._since_error = e.message

        def found(registration: Registration | None) -> Any:
            self._registration = registration
            if registration is None:
                self._refusal = (CLOSE_UNKNOWN_TOKEN, "unknown stream token")
                return None
            if self._since_error is not None:
                self._refusal = (CLOSE_BAD_SINCE, self._since_error)
                return None
            # the handshake completes once the hub can serve ``since`` (a web node loads
            # the log and has the snapshot appended first); the store not answering:
            # open anyway
            d = config.hub.prepare(registration, self._since)
            d.addErrback(lambda f: log.warn("WebSocket stream: not prepared ({e})", e=f.value))
            return d

        def unavailable(failure: Any) -> None:
            # an HTTP 503 to the upgrade, saying nothing of Redis (autobahn's own answer to
            # an error here would be a 500 quoting it, the store's address included)
            log.warn("WebSocket stream: token look-up failed ({e})", e=type(failure.value))
            raise ConnectionDeny(ConnectionDeny.SERVICE_UNAVAILABLE, "the shared store did not answer; retry")

        looked: Any = config.hub.lookup(token)
        return looked.addCallbacks(found, unavailable)

    def onOpen(self) -> None:
        if self._refusal is not None:
            self._refuse(*self._refusal)
            return
        assert self._registration is not None
        config = self.factory.config
        try:
            sub = config.hub.subscribe(
                self._registration,
                self._since,
                WEBSOCKET,
                self._deliver,
                self._hub_ended,
                max_backlog_bytes=config.max_buffer_bytes,
            )
        except RegistrationEnded:
            self._refuse(CLOSE_UNKNOWN_TOKEN, "unknown stream token")
            return
        except TooManyClients:
            self._refuse(CLOSE_TOO_MANY_CLIENTS, "too many clients for this registration")
            return
        self._sub = sub
        # The HTTP channel that parsed the upgrade registered itself as this socket's
        # producer; it no longer owns the socket, our subscription does.
        self.transport.unregisterProducer()  # type: ignore[union-attr]
        self.transport.registerProducer(sub, True)  # type: ignore[union-attr]
        config.open_streams.add(self)
        config.ws_heartbeat.add(self)
        sub.resumeProducing()

    def _refuse(self, code: int, reason: str) -> None:
        """Tell the client why with a close frame, and read nothing more from it.

        Waiting for the client's own close frame (the polite handshake) would mean reading
        whatever it sends first; the socket is closed as soon as our frame is written.
        """
        pause = getattr(self.transport, "pauseProducing", None)  # a TCP or TLS transport has it
        if pause is not None:
            pause()
        self.data = b""  # anything that came with the handshake is dropped unparsed
        self.sendClose(code, reason)
        self.dropConnection(abort=False)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self._sub is not None:
            self._sub.stopProducing()
        config = self.factory.config
        config.open_streams.discard(self)
        config.ws_heartbeat.remove(self)

    def onPong(self, payload: bytes) -> None:
        self._unanswered = False

    def beat(self) -> None:
        """Ping; a peer that did not answer the previous ping is gone."""
        if self.state != self.STATE_OPEN:
            return
        if self._unanswered:
            log.info(
                "WebSocket client of {agent} did not answer a ping; dropping it",
                agent=self._registration.agent if self._registration else None,
            )
            self.dropConnection(abort=True)
            return
        self._unanswered = True
        self.sendPing()

    def shutdown(self) -> None:
        if self._sub is not None:
            self._sub.stopProducing()
        self._close_frame(CLOSE_SHUTDOWN, "server shutdown")

    def _deliver(self, batch: list[LogEntry]) -> None:
        """Write each entry's frame, prepared once for every client of the agent.

        Straight to the transport: that is all ``sendPreparedMessage()`` does with a
        message prepared ``doNotCompress`` (through ``sendData()``, whose debug logging
        formats its arguments on every call, log level or not: per client, per event).
        Autobahn queues writes only for ``sync``/``chopsize`` sends, which we never make,
        so nothing can be overtaken.
        """
        if self.state != self.STATE_OPEN:
            return
        prepare = self.factory.prepare
        self.transport.write(b"".join([entry.frame(WEBSOCKET, prepare) for entry in batch]))  # type: ignore[union-attr]
        self.factory.config.count_out(WEBSOCKET, len(batch))

    def _hub_ended(self, reason: str) -> None:
        self.factory.config.open_streams.discard(self)
        if reason == "overflow":
            assert self._registration is not None
            log.warn(
                "WebSocket client of {agent} stopped reading; disconnecting it",
                agent=self._registration.agent,
            )
            self.dropConnection(abort=True)
        elif reason == "shutdown":
            self._close_frame(CLOSE_SHUTDOWN, "server shutdown")
        else:
            self.sendClose(CLOSE_ENDED, reason)

    def _close_frame(self, code: int, reason: str) -> None:
        # sendClose() refuses 1001 (reserved for the protocol layer); a server going
        # away is exactly what RFC 6455 defines it for, so send the frame directly.
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code, reason.encode("utf-8"))


class _StreamFactory(WebSocketServerFactory):
    protocol = StreamProtocol  # type: ignore[assignment]

    def __init__(self, config: StreamConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.setProtocolOptions(
            maxFramePayloadSize=MAX_CLIENT_PAYLOAD, maxMessagePayloadSize=MAX_CLIENT_PAYLOAD
        )

    def prepare(self, entry: LogEntry) -> bytes:
        """The text frame of an entry, built once and written to every client of its agent.

        Uncompressed even where a client negotiated compression (allowed by RFC 7692),
        so the frame never depends on the connection.
        """
        prepared = self.prepareMessage(entry.text.encode("utf-8"), doNotCompress=True)
        return cast(bytes, prepared.payloadHybi)


def make_ws_resource(config: StreamConfig) -> WebSocketResource:
    """The one resource every ``/stream/{token}/ws`` upgrade is handed to."""
    return WebSocketResource(_StreamFactory(config))
