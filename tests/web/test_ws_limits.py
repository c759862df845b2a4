"""WebSocket input limits (issue 12, item 1), attacked with raw frames over loopback.

A client announcing a huge frame must be refused at the frame header, not after its
payload; a connection being refused (bad token, bad origin) must read nothing more. The
server's reads are counted by wrapping :meth:`StreamProtocol.dataReceived`.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from pbxis.web.streams.ws import (
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_UNKNOWN_TOKEN,
    MAX_CLIENT_PAYLOAD,
    StreamProtocol,
)
from tests.web.raw_client import connect, ws_close_code, ws_frame_header, ws_handshake
from tests.web.streams_helpers import ORIGIN, make_hub, start_server

pytestmark = pytest.mark.timeout(30)

ATTACK = 4 * 1024 * 1024
"""Bytes of payload the client pushes after announcing a 1 GiB frame."""


@pytest.fixture
def server_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of every read the server's WebSocket protocols got."""
    reads: list[int] = []
    original = StreamProtocol.dataReceived

    def counting(self: StreamProtocol, data: bytes) -> None:
        reads.append(len(data))
        original(self, data)

    monkeypatch.setattr(StreamProtocol, "dataReceived", counting)
    return reads


async def push_big_frame(port: int, path: str, origin: str | None) -> Any:
    client = await connect(port)
    client.send(ws_handshake(path, origin=origin))
    await client.until(lambda: b"\r\n\r\n" in client.received or client.lost)
    assert client.received.startswith(b"HTTP/1.1 101"), client.received[:200]
    # Binary: a text frame of random bytes would fail UTF-8 validation, not the size limit.
    client.send(ws_frame_header(1 << 30, opcode=0x2))
    chunk = b"x" * 65536
    for _ in range(ATTACK // len(chunk)):
        client.send(chunk)
    await client.wait_closed()
    return client


@pytest_twisted.ensureDeferred
async def test_huge_client_frame_is_refused_at_its_header(server_reads: list[int]) -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        client = await push_big_frame(server.port.getHost().port, f"/stream/{reg.token}/ws", ORIGIN)
        assert client.lost
        # Refused after the frame header: the 4 MB behind it were not taken in.
        assert sum(server_reads) < ATTACK // 4, sum(server_reads)
        await server.quiesce()
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("token", "origin", "code"),
    [("not-a-token", ORIGIN, CLOSE_UNKNOWN_TOKEN), (None, "https://evil.example", CLOSE_FORBIDDEN_ORIGIN)],
)
@pytest_twisted.ensureDeferred
async def test_refused_websocket_reads_nothing(
    server_reads: list[int], token: str | None, origin: str, code: int
) -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        path = f"/stream/{token or reg.token}/ws"
        client = await push_big_frame(server.port.getHost().port, path, origin)
        assert ws_close_code(client.received) == code
        assert sum(server_reads) < ATTACK // 4, sum(server_reads)
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_small_client_messages_and_pongs_are_still_fine() -> None:
    """A message within the limit is read and ignored; the stream goes on."""
    from tests.web.streams_helpers import EventLog, live, open_ws

    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        log = EventLog()
        conn = await open_ws(server, reg.token, log)
        await log.until(lambda: len(log.events) == 2)
        conn.protocol.sendMessage(b"x" * (MAX_CLIENT_PAYLOAD - 1))
        hub.publish(live("1001", 1))
        await log.until(lambda: len(log.events) == 3)
        await conn.stop()
    finally:
        await server.stop()
