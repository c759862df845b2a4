"""A client that stops reading: the server drops it, nobody else waits, memory stays bounded."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientFactory, Protocol

from pbxis.hub import Hub
from tests.web.streams_helpers import EventLog, Server, live, make_hub, open_sse, open_ws, start_server

pytestmark = pytest.mark.timeout(60)

PAD = 8000  # bytes per event: fills the kernel's socket buffers in a few MB


async def open_stuck(server: Server, token: str, kind: str, log: EventLog) -> Callable[[], Any]:
    """A client that reads the snapshot, then stops reading; returns its "resume reading"."""
    if kind == "sse":
        _, client = await open_sse(server, token, log)
        await log.until(lambda: len(log.events) >= 2)
        transport = client.transport
    else:
        conn = await open_ws(server, token, log)
        await log.until(lambda: len(log.events) >= 2)
        transport = conn.protocol.transport  # type: ignore[union-attr]
    transport.pauseProducing()  # type: ignore[union-attr]
    return transport.resumeProducing  # type: ignore[union-attr]


async def open_reader(server: Server, token: str, kind: str, log: EventLog, since: int | None = None) -> Any:
    query = "" if since is None else f"since={since}"
    if kind == "sse":
        _, client = await open_sse(server, token, log, query=query)
        return client.stop
    conn = await open_ws(server, token, log, query)
    return conn.stop


async def publish_until(hub: Hub, done: Callable[[], bool], limit: int = 20_000) -> int:
    """Publish fat events, letting the reactor write between batches, until ``done()``.

    Each batch (32 kB) is less than a reading client takes in per reactor turn, so
    only a client that does not read at all falls behind.
    """
    sent = 0
    while not done():
        assert sent < limit, f"still not done after {sent} events: {hub.stats()}"
        hub.publish(live("1001", 4, start=sent, pad=PAD))
        sent += 4
        await task.deferLater(reactor, 0, lambda: None)
    return sent


@pytest.mark.parametrize("kind", ["sse", "websocket"])
@pytest_twisted.ensureDeferred
async def test_stuck_client_is_dropped_and_resumes_without_a_gap(kind: str) -> None:
    hub = make_hub()
    server = start_server(hub, max_buffer_bytes=500_000)
    reg = hub.register("1001", [])
    try:
        fast, stuck = EventLog(), EventLog()
        stop_fast = await open_reader(server, reg.token, kind, fast)
        resume_reading = await open_stuck(server, reg.token, kind, stuck)
        sent = await publish_until(hub, lambda: sum(hub.stats()["clients"].values()) == 1)
        # the other client of the same agent was never held up
        await fast.until(lambda: fast.counts()[-1:] == [sent - 1])
        assert fast.counts() == list(range(sent))

        resume_reading()
        await stuck.until(lambda: not stuck.connected)
        seen = stuck.last_id
        assert seen is not None
        again = EventLog()
        stop_again = await open_reader(server, reg.token, kind, again, since=seen)
        hub.publish(live("1001", 1, start=sent))
        await again.until(lambda: again.counts()[-1:] == [sent])
        assert "reset" not in again.types
        assert again.ids == list(range(seen + 1, again.ids[-1] + 1))
        await stop_again()
        await stop_fast()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_stuck_client_cannot_grow_the_log() -> None:
    hub = make_hub(max_log=300)
    server = start_server(hub, max_buffer_bytes=10**9)  # only the log bound applies
    reg = hub.register("1001", [])
    sizes: list[int] = []

    def done() -> bool:
        sizes.append(hub.stats()["log_sizes"]["1001"])
        return hub.stats()["clients"].get("sse", 0) == 0

    try:
        stuck = EventLog()
        resume_reading = await open_stuck(server, reg.token, "sse", stuck)
        await publish_until(hub, done)
        assert max(sizes) <= 300
        resume_reading()
        await stuck.until(lambda: not stuck.connected)
        again = EventLog()
        _, client = await open_sse(server, reg.token, again, query=f"since={stuck.last_id}")
        await again.until(lambda: len(again.events) >= 3)
        assert again.types[:3] == ["reset", "extensionStatus", "queueCount"]
        await client.stop()
    finally:
        await server.stop()


class RawHTTP(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.got: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.factory.request)  # type: ignore[attr-defined, union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if b"\r\n\r\n" in self.data and not self.got.called:
            self.got.callback(None)


@pytest_twisted.ensureDeferred
async def test_sse_response_head_on_the_wire() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    factory = ClientFactory.forProtocol(RawHTTP)
    factory.request = (  # type: ignore[attr-defined]
        f"GET /stream/{reg.token}/sse HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    endpoint_port = server.port.getHost().port
    connected: defer.Deferred[Protocol] = defer.Deferred()
    factory.buildProtocol = lambda addr: _track(RawHTTP(), factory, connected)  # type: ignore[method-assign]
    reactor.connectTCP("127.0.0.1", endpoint_port, factory)
    try:
        protocol: Any = await connected
        await protocol.got
        head = protocol.data.split(b"\r\n\r\n")[0].lower()
        assert b"\r\nconnection: keep-alive" in head
        assert b"\r\ncontent-type: text/event-stream" in head
        protocol.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\0" * 8)
        protocol.transport.abortConnection()
    finally:
        await server.stop()


def _track(protocol: RawHTTP, factory: Any, connected: defer.Deferred[Protocol]) -> RawHTTP:
    protocol.factory = factory
    connected.callback(protocol)
    return protocol
