"""Server-Sent Events: ``GET /stream/{token}/sse``.

One frame per event (``id:``, ``event:``, ``data:``), so the browser's ``EventSource``
remembers the last id and sends it back as ``Last-Event-ID`` when it reconnects; that
header wins over ``?since=`` (the URL still holds the ``since`` of the first visit). A
``retry:`` hint opens the stream and a comment line goes out every ``heartbeat`` seconds
so proxies keep the connection and clients notice a dead one.

Cost per client is what bounds how many clients one process serves, so an event is
framed once (:meth:`LogEntry.frame`) and every client is written the same bytes, and the
heartbeats of all streams share one timer (:class:`~pbxis.web.streams._common.Heartbeat`).

The hub subscription is the request's streaming producer: when the client stops reading
and the socket buffer fills, Twisted pauses it and undelivered events wait in the hub's
shared log. A client that stays stuck past ``max_buffer_bytes`` is disconnected; it can
resume with its last id.

The stream ends (the response completes) on ``unregistered``/``expired`` right after the
``closed`` event, and on server shutdown; ``EventSource`` then reconnects and gets a 404,
which makes it give up.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pbxis.hub import LogEntry, Registration, Subscription

from ._common import SSE, StreamConfig, no_delay

__all__ = ["RETRY_MS", "SSEStream", "sse_frame", "sse_frames"]

RETRY_MS = 2000

log = Logger()


def sse_frame(entry: LogEntry) -> bytes:
    """The SSE frame of one entry; event JSON never contains a newline."""
    return f"id: {entry.id}\nevent: {entry.type}\ndata: {entry.text}\n\n".encode()


def sse_frames(batch: list[LogEntry]) -> bytes:
    """The SSE frames of a batch, each built once per entry for all clients."""
    return b"".join([entry.frame(SSE, sse_frame) for entry in batch])


class SSEStream:
    """One ``text/event-stream`` response fed by one hub subscription."""

    __slots__ = ("_config", "_done", "_registration", "_request", "_since", "_sub")

    def __init__(
        self,
        config: StreamConfig,
        request: IRequest,
        registration: Registration,
        since: int | None,
    ) -> None:
        self._config = config
        self._request = request
        self._registration = registration
        self._since = since
        self._done: Deferred[None] = Deferred(canceller=self._client_gone)
        self._sub: Subscription | None = None

    def start(self) -> Deferred[None]:
        """Subscribe and start streaming; fires when the server ends the stream."""
        sub = self._config.subscribe(self._registration, self._since, SSE, self._deliver, self._hub_ended)
        self._sub = sub
        request = self._request
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache, no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.setHeader(b"connection", b"keep-alive")
        request.write(b"retry: %d\n\n" % RETRY_MS)
        no_delay(request)
        request.registerProducer(sub, True)  # type: ignore[attr-defined]
        self._config.open_streams.add(self)
        self._config.sse_heartbeat.add(self)
        sub.resumeProducing()
        return self._done

    def shutdown(self) -> None:
        if self._sub is not None:
            self._sub.stopProducing()
        self._finish()

    def beat(self) -> None:
        """A keep-alive comment, unless the client is not reading anyway."""
        if self._sub is not None and not self._sub.paused:
            self._request.write(b": keep-alive\n\n")

    def _deliver(self, batch: list[LogEntry]) -> None:
        self._request.write(sse_frames(batch))
        self._config.count_out(SSE, len(batch))

    def _hub_ended(self, reason: str) -> None:
        if reason == "overflow":
            log.warn(
                "SSE client of {agent} stopped reading; disconnecting it",
                agent=self._registration.agent,
            )
            self._cleanup()
            self._request.transport.abortConnection()  # type: ignore[attr-defined]
        else:
            self._finish()

    def _finish(self) -> None:
        if not self._done.called:
            self._cleanup()
            self._done.callback(None)

    def _client_gone(self, _: Deferred[None]) -> None:
        if self._sub is not None:
            self._sub.stopProducing()
        self._cleanup(connected=False)

    def _cleanup(self, connected: bool = True) -> None:
        self._config.sse_heartbeat.remove(self)
        if self in self._config.open_streams:
            self._config.open_streams.discard(self)
            # The channel is gone when the client hung up first (Klein cancelled us).
            if connected and getattr(self._request, "channel", None) is not None:
                self._request.unregisterProducer()  # type: ignore[attr-defined]
