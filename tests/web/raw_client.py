"""A raw TCP client for attacks no well-behaved HTTP or WebSocket library will make.

It writes exactly the bytes a test gives it (trickled, oversized, half-finished) and
records what comes back and when the server closed. This module holds no tests.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from tests.support.streams import DEADLINE, Waitable


class RawClient(Protocol, Waitable):
    """Bytes in, bytes out; ``closed`` fires when the server ends the connection."""

    def __init__(self) -> None:
        Waitable.__init__(self)
        self.received = b""
        self.closed: Deferred[None] = Deferred()
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.changed()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.lost = True
        self.changed()
        if not self.closed.called:
            self.closed.callback(None)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    async def wait_closed(self, timeout: float = DEADLINE) -> None:
        await self.until(lambda: self.lost, timeout)

    async def trickle(self, data: bytes, interval: float) -> None:
        """Send ``data`` one byte every ``interval`` seconds, until done or disconnected."""
        for i in range(len(data)):
            if self.lost:
                return
            self.send(data[i : i + 1])
            await task.deferLater(reactor, interval, lambda: None)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The first HTTP response received: status, headers (lower-case names), body."""
        head, _, body = self.received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, body

    def json(self) -> Any:
        return json.loads(self.response()[2])


async def connect(port: int) -> RawClient:
    client = RawClient()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    return client


def ws_handshake(path: str, *, host: str = "127.0.0.1", origin: str | None = None) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ws_frame_header(length: int, opcode: int = 0x1) -> bytes:
    """A masked client frame header announcing ``length`` payload bytes (FIN set)."""
    head = bytes([0x80 | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    return head + os.urandom(4)


def ws_close_code(data: bytes) -> int | None:
    """The code of the first close frame in the server's bytes after the 101 response."""
    _, _, frames = data.partition(b"\r\n\r\n")
    while len(frames) >= 2:
        opcode = frames[0] & 0x0F
        length = frames[1] & 0x7F
        offset = 2
        if length == 126:
            length = struct.unpack("!H", frames[2:4])[0]
            offset = 4
        elif length == 127:
            length = struct.unpack("!Q", frames[2:10])[0]
            offset = 10
        payload = frames[offset : offset + length]
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        frames = frames[offset + length :]
    return None
