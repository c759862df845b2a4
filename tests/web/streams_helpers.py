"""A real server with the stream routes on 127.0.0.1:0, and one client per transport.

Clients record what they receive and let a test wait for a condition without sleeping:
``until(predicate)`` fires as soon as data that satisfies it arrives (or fails after a
deadline, so a broken server fails the test instead of hanging it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import treq
from klein import Klein
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from pbxis.events import AgentEvent
from pbxis.hub import Hub
from pbxis.web.errors import ApiError
from pbxis.web.site import build_site
from pbxis.web.streams import StreamRoutes, add_stream_routes
from tests.support.streams import DEADLINE, CloseResult, SSEClient, StreamRecorder, WSClient, connect_ws

ORIGIN = "https://crm.example"


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


class EventLog(StreamRecorder):
    """What one client saw, across connections."""

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
    # The Site of the daemon: it adds the CORS headers.
    site = build_site(app, kwargs.get("allowed_origins", [ORIGIN]))
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return Server(hub, routes, port, HTTPConnectionPool(reactor, persistent=False))


# SSE


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


@dataclass
class WSConnection:
    protocol: WSClient | None
    closed: Deferred[CloseResult]

    async def stop(self) -> None:
        if self.protocol is not None and self.protocol.recorder.connected:
            self.protocol.dropConnection(abort=True)
        await self.closed


async def open_ws(
    server: Server,
    token: str,
    log: EventLog,
    query: str = "",
    origin: str | None = ORIGIN,
    client: type[WSClient] = WSClient,
) -> WSConnection:
    url = server.url(token, "ws", query).replace("http://", "ws://")
    protocol, closed = await connect_ws(url, server.port.getHost().port, log, origin=origin, client=client)
    return WSConnection(protocol, closed)
