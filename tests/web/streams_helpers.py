"""A real server with the stream routes on 127.0.0.1:0, and one client per transport.

Clients record what they receive and let a test wait for a condition without sleeping:
``until(predicate)`` fires as soon as data that satisfies it arrives (or fails after a
deadline, so a broken server fails the test instead of hanging it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from klein import Klein
from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from pbxis.events import AgentEvent
from pbxis.hub import Hub
from pbxis.web.errors import ApiError
from pbxis.web.streams import StreamRoutes, add_stream_routes

ORIGIN = "https://crm.example"
DEADLINE = 10.0


def snapshot(agent: str) -> list[AgentEvent]:
    return [
        AgentEvent(agent, "extensionStatus", 0, {"status": "not_inuse"}),
        AgentEvent(agent, "queueCount", 0, {"queue": "sales", "count": 0}),
    ]


def live(agent: str, n: int, start: int = 0, pad: int = 0) -> list[AgentEvent]:
    data = {"queue": "q"}
    if pad:
        data["pad"] = "x" * pad
    return [AgentEvent(agent, "queueCount", 1, {**data, "count": start + i}) for i in range(n)]


def make_hub(clock: Any = reactor, **kwargs: Any) -> Hub:
    """A hub whose fresh streams start with :func:`snapshot`; ``clock`` drives the grace period."""
    return Hub(clock, grace_period=30.0, snapshot=snapshot, **kwargs)


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
        if predicate():
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        item = (predicate, d)
        self._waiters.append(item)
        d.addTimeout(timeout, reactor)

        def forget(result: Any) -> Any:
            if item in self._waiters:
                self._waiters.remove(item)
            return result

        return d.addBoth(forget)


class EventLog(Waitable):
    """What one client saw, across connections."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.connected = False

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

    def counts(self) -> list[int]:
        return [e["count"] for e in self.events if e.get("queue") == "q"]


@dataclass
class Server:
    hub: Hub
    routes: StreamRoutes
    port: Any
    pool: HTTPConnectionPool

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}"

    def url(self, token: str, kind: str, query: str = "") -> str:
        return f"{self.base}/stream/{token}/{kind}{'?' + query if query else ''}"

    async def quiesce(self) -> None:
        """Wait until the server has let go of every client (real time, bounded)."""
        deadline = reactor.seconds() + DEADLINE
        while any(self.hub.stats()["clients"].values()):
            assert reactor.seconds() < deadline, self.hub.stats()
            await task.deferLater(reactor, 0.01, lambda: None)

    async def stop(self) -> None:
        self.routes.close_all()
        await self.pool.closeCachedConnections()
        await self.quiesce()
        await self.port.stopListening()


def make_app(hub: Hub, **kwargs: Any) -> tuple[Klein, StreamRoutes]:
    app = Klein()
    kwargs.setdefault("allowed_origins", [ORIGIN])
    routes = add_stream_routes(app, hub, **kwargs)

    @app.handle_errors(ApiError)
    def api_error(request: IRequest, failure: Any) -> bytes:
        error: ApiError = failure.value
        request.setResponseCode(error.status)
        request.setHeader(b"content-type", b"application/json")
        for name, value in error.headers.items():
            request.setHeader(name.encode(), value.encode())
        return error.body()

    return app, routes


def start_server(hub: Hub, **kwargs: Any) -> Server:
    app, routes = make_app(hub, **kwargs)
    port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
    return Server(hub, routes, port, HTTPConnectionPool(reactor, persistent=False))


# SSE


class SSEClient(Protocol):
    """Parses an event stream; ``stop()`` drops the connection like a closed tab."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.buffer = b""
        self.comments: list[bytes] = []
        self.retry: int | None = None
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.log.connected = True

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
                assert event["id"] == int(fields["id"]) and event["type"] == fields["event"]
                self.log.add(event)
            else:
                self.log.changed()

    def connectionLost(self, reason: Any = None) -> None:
        self.log.connected = False
        self.log.changed()
        self.lost.callback(None)

    def stop(self) -> Deferred[None]:
        if self.log.connected:
            self.transport.stopProducing()  # type: ignore[union-attr]
        return self.lost


async def open_sse(
    server: Server, token: str, log: EventLog, *, headers: dict[str, str] | None = None,
    query: str = "",
) -> tuple[Any, SSEClient]:  # fmt: skip
    agent = Agent(reactor, pool=server.pool)
    hdrs = Headers({k: [v] for k, v in (headers or {}).items()})
    response = await agent.request(b"GET", server.url(token, "sse", query).encode(), hdrs)
    client = SSEClient(log)
    if response.code == 200:
        response.deliverBody(client)
    else:
        await treq.content(response)
    return response, client


async def sse_past_snapshot(server: Server, token: str) -> tuple[EventLog, SSEClient]:
    """A fresh SSE stream once its two snapshot events have arrived: where most tests begin."""
    log = EventLog()
    _, client = await open_sse(server, token, log)
    await log.until(lambda: len(log.events) == 2)
    return log, client


# long-poll


async def poll(server: Server, token: str, query: str = "") -> tuple[int, Any]:
    response = await treq.get(server.url(token, "poll", query), pool=server.pool)
    body = await treq.json_content(response)
    return response.code, body


# WebSocket


class WSClient(WebSocketClientProtocol):
    received: EventLog  # (``log`` is Autobahn's logger)

    def onOpen(self) -> None:
        self.received.connected = True
        self.factory.opened.callback(self)  # type: ignore[attr-defined]

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        assert not isBinary
        self.received.add(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.received.connected = False
        self.factory.closed.callback((code, reason))  # type: ignore[attr-defined]
        if not self.factory.opened.called:  # type: ignore[attr-defined]
            self.factory.opened.errback(ConnectionError(code))  # type: ignore[attr-defined]
        self.received.changed()


@dataclass
class WSConnection:
    protocol: WSClient | None
    closed: Deferred[tuple[int | None, str | None]]

    async def stop(self) -> None:
        if self.protocol is not None and self.protocol.received.connected:
            self.protocol.dropConnection(abort=True)
        await self.closed


async def open_ws(
    server: Server, token: str, log: EventLog, query: str = "", origin: str | None = ORIGIN
) -> WSConnection:
    url = server.url(token, "ws", query).replace("http://", "ws://")
    factory = WebSocketClientFactory(url, origin=origin)
    factory.protocol = type("WSClientFor", (WSClient,), {"received": log})
    factory.opened = Deferred()  # type: ignore[attr-defined]
    factory.closed = Deferred()  # type: ignore[attr-defined]
    reactor.connectTCP("127.0.0.1", server.port.getHost().port, factory)
    try:
        protocol = await factory.opened  # type: ignore[attr-defined]
    except ConnectionError:
        protocol = None
    return WSConnection(protocol, factory.closed)  # type: ignore[attr-defined]
