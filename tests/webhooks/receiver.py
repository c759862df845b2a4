"""A real HTTP receiver on loopback for webhook tests: it answers, fails, stalls, or is gone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from pbxis.webhooks.signing import verify


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class _Site(Site):
    """Remembers its connections, so stopping the receiver really cuts them."""

    def __init__(self, resource: Resource, receiver: Receiver) -> None:
        super().__init__(resource)
        self.receiver = receiver

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        self.receiver.connections.append(protocol)
        return protocol


class _Hook(Resource):
    isLeaf = True

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()
        self.receiver = receiver

    def render_POST(self, request: Any) -> bytes | int:
        r = self.receiver
        r.attempts += 1
        if r.mode == "stall":
            r.stalled.append(request)
            return NOT_DONE_YET
        if r.mode == "fail":
            request.setResponseCode(503)
            request.setHeader(b"retry-after", b"1")
            return b"busy"
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        body = request.content.read()
        verify(r.key, headers, body, now=reactor.seconds())  # raises -> 500 -> pbxis retries
        r.received.append(Received(headers, body))
        request.setResponseCode(204)
        return b""


@dataclass
class Receiver:
    key: bytes
    mode: str = "ok"  # ok | fail | stall
    received: list[Received] = field(default_factory=list)
    stalled: list[Any] = field(default_factory=list)
    attempts: int = 0
    connections: list[Any] = field(default_factory=list)
    port: IListeningPort | None = None
    number: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.number}/hooks"

    def start(self) -> None:
        self.port = reactor.listenTCP(self.number, _Site(_Hook(self), self), interface="127.0.0.1")
        self.number = self.port.getHost().port

    async def stop(self) -> None:
        self.stalled.clear()
        for protocol in self.connections:
            # twisted.web wraps the HTTP channel; the wrapped one holds the transport.
            transport = getattr(getattr(protocol, "_channel", protocol), "transport", None)
            if transport is not None:
                transport.abortConnection()
        self.connections.clear()
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]
