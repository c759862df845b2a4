"""Stream clients for tests: what a browser receives over SSE and WebSocket, recorded.

The stream suite (against the bare stream routes) and the reliability suite (against the
whole daemon) read streams the same way, so they share these: a recorder a test can wait
on without sleeping, an SSE parser and a WebSocket client. Each suite keeps its own small
``open_*`` functions, which differ only in how they address the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol

DEADLINE = 10.0
"""Seconds a test waits for a condition before failing instead of hanging."""

CloseResult = tuple[int | None, str | None]


class Waitable:
    """Wake waiters when ``changed()`` makes their predicate true."""

    def __init__(self) -> None:
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def changed(self) -> None:
        for item in list(self._waiters):
            predicate, d = item
            if predicate():
                self._waiters.remove(item)
                d.callback(None)

    def until(self, predicate: Callable[[], bool], timeout: float = DEADLINE) -> Deferred[None]:
        """Fires once ``predicate()`` holds (checked at each change); fails after ``timeout`` s."""
        if predicate():
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        item = (predicate, d)
        self._waiters.append(item)

        def forget(result: Any) -> Any:
            if item in self._waiters:
                self._waiters.remove(item)
            return result

        return d.addTimeout(timeout, reactor).addBoth(forget)


class StreamRecorder(Waitable):
    """Every event one logical client received, across its reconnections."""

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.connected = False
        self.ended: list[Any] = []  # how each connection ended (close code, failure type name)

    def add(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.changed()

    @property
    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    @property
    def last_id(self) -> int | None:
        return self.events[-1]["id"] if self.events else None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


class SSEClient(Protocol):
    """Parses an event stream into its recorder; ``stop()`` drops it like a closed tab."""

    def __init__(self, recorder: StreamRecorder) -> None:
        self.recorder = recorder
        self.buffer = b""
        self.comments: list[bytes] = []
        self.retry: int | None = None
        self.open = False
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.open = self.recorder.connected = True

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            frame, self.buffer = self.buffer.split(b"\n\n", 1)
            fields: dict[str, str] = {}
            for line in frame.split(b"\n"):
                if line.startswith(b":"):
                    self.comments.append(line)
                    continue
                name, _, value = line.decode().partition(": ")
                fields[name] = value
            if "retry" in fields:
                self.retry = int(fields["retry"])
            if "data" in fields:
                event = json.loads(fields["data"])
                assert event["id"] == int(fields["id"]) and event["type"] == fields["event"], fields
                self.recorder.add(event)
            else:
                self.recorder.changed()

    def connectionLost(self, reason: Any = None) -> None:
        self.open = self.recorder.connected = False
        self.recorder.ended.append(type(reason.value).__name__ if reason is not None else None)
        self.recorder.changed()
        self.lost.callback(None)

    def stop(self) -> Deferred[None]:
        if self.open and self.transport is not None:
            self.transport.stopProducing()
        return self.lost


class WSClient(WebSocketClientProtocol):
    """Records every message; the factory's ``closed`` fires with ``(code, reason)``."""

    recorder: StreamRecorder  # set per connection by :func:`connect_ws` (``log`` is Autobahn's)

    def onOpen(self) -> None:
        self.recorder.connected = True
        self.factory.opened.callback(self)  # type: ignore[attr-defined]

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        assert not isBinary
        self.recorder.add(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.recorder.connected = False
        self.recorder.ended.append(code)
        factory = self.factory
        if not factory.opened.called:  # type: ignore[attr-defined]
            factory.opened.errback(ConnectionError(code))  # type: ignore[attr-defined]
        factory.closed.callback((code, reason))  # type: ignore[attr-defined]
        self.recorder.changed()


async def connect_ws(
    url: str,
    port: int,
    recorder: StreamRecorder,
    *,
    origin: str | None = None,
    client: type[WSClient] = WSClient,
) -> tuple[WSClient | None, Deferred[CloseResult]]:
    """Open ``url`` on 127.0.0.1:``port``; the protocol (``None`` if refused) and its close."""
    factory = WebSocketClientFactory(url, origin=origin)
    factory.protocol = type(f"{client.__name__}For", (client,), {"recorder": recorder})
    factory.opened = Deferred()  # type: ignore[attr-defined]
    closed: Deferred[CloseResult] = Deferred()
    factory.closed = closed  # type: ignore[attr-defined]
    reactor.connectTCP("127.0.0.1", port, factory)
    try:
        protocol = await factory.opened  # type: ignore[attr-defined]
    except ConnectionError:
        protocol = None
    return protocol, closed
