"""A tiny stand-in for pbxis's stream routes, to test pbxis.js deterministically.

It serves the real client routes (page, pbxis.js) plus a long-poll and an SSE stream
over an event list the test controls, so a test can make the server repeat events,
forget a token or refuse a transport, which the real daemon never does on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from klein import Klein
from twisted.internet import defer, reactor
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from pbxis.web.client import add_client_routes
from pbxis.web.errors import ApiError

TOKEN = "fake-token"


@dataclass
class FakeStreams:
    events: list[dict[str, Any]] = field(default_factory=list)
    overlap: int = 0
    """Answer every long-poll from ``since - overlap``: a server that repeats itself."""
    waiting: list[defer.Deferred[None]] = field(default_factory=list)
    open_streams: list[defer.Deferred[bytes]] = field(default_factory=list)
    port: IListeningPort | None = None

    def publish(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = {
            "id": len(self.events) + 1,
            "type": type_,
            "agent": "1001",
            "time": 1_700_000_000_000,
            **fields,
        }
        self.events.append(event)
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)
        return event

    @property
    def base_url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port.getHost().port}"

    def app(self) -> Klein:
        app = Klein()

        @app.handle_errors(ApiError)
        def render(request: IRequest, failure: Failure) -> bytes:
            request.setResponseCode(failure.value.status)
            request.setHeader(b"content-type", b"application/json")
            return failure.value.body()

        add_client_routes(app)

        @app.route("/stream/<token>/poll")
        async def poll(request: IRequest, token: str) -> bytes:
            if token != TOKEN:
                raise ApiError(404, "unknown_stream", "no such stream")
            since = max(0, int(request.args.get(b"since", [b"0"])[0]) - self.overlap)
            timeout = float(request.args.get(b"timeout", [b"30"])[0])
            if since >= len(self.events) and timeout > 0:
                d: defer.Deferred[None] = defer.Deferred()
                self.waiting.append(d)
                d.addTimeout(min(timeout, 5), reactor, onTimeoutCancel=lambda *_: None)
                request.notifyFinish().addErrback(lambda _: None if d.called else d.cancel())
                try:
                    await d
                except defer.CancelledError:
                    return b""
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"events": self.events[since:], "next": len(self.events)}).encode()

        @app.route("/stream/<token>/sse")
        def sse(request: IRequest, token: str) -> Any:
            if token != TOKEN:
                raise ApiError(404, "unknown_stream", "no such stream")
            raw = request.getHeader(b"last-event-id") or request.args.get(b"since", [b"0"])[0]
            since = int(raw)
            request.setHeader(b"content-type", b"text/event-stream")
            for event in self.events[since:]:
                frame = f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
                request.write(frame.encode())
            # Klein keeps the response open until this Deferred fires (stop) or is cancelled.
            ended: defer.Deferred[bytes] = defer.Deferred(lambda d: self.open_streams.remove(d))
            self.open_streams.append(ended)
            return ended

        return app

    def listen(self) -> IListeningPort:
        site = Site(self.app().resource())
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        return self.port

    async def stop(self) -> None:
        for d in self.waiting:
            d.cancel()
        self.waiting = []
        for ended in list(self.open_streams):
            self.open_streams.remove(ended)
            ended.callback(b"")
        if self.port is not None:
            await self.port.stopListening()
