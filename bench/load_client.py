"""The load client of benches 3 and 4: many SSE/WebSocket stream clients in one process.

It runs apart from the daemon (its own process, its own reactor) and is driven by
lines on stdin, answering each with one line on stdout:

* ``connect <file>``: open one stream per line of ``file`` (``sse <url>`` or
  ``ws <url>``), at most ``--concurrency`` handshakes at a time (a burst of thousands
  of SYNs would overflow the listen backlog and measure TCP retransmits instead);
  answers ``connected <open> <failed>`` once every handshake ended.
* ``report <start_ns> <end_ns>``: latencies of the frames whose timestamp lies in the
  window, as JSON (``latencies_us``, ``open``, ``lost``); the bench may run several of
  these processes and merges their samples before taking percentiles.
* ``close``: close every stream; answers ``closed``.
* ``quit``: close everything; answers ``bye``.

Latency. The bench puts ``time.monotonic_ns()`` into a pause reason (``b<ns>``), which
reaches clients as ``queueMemberStatus.pausedReason``. This process reads the same
monotonic clock when the bytes arrive (one machine, one clock), so a sample is the whole
path: simulator, AMI, parser, tracker, hub, transport, TCP, this process's reactor.
Frames are not parsed as JSON: the timestamp is found in the raw bytes (SSE) or in each
WebSocket text frame, which keeps this process from being the bottleneck.
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from twisted.internet import protocol, reactor, stdio
from twisted.protocols.basic import LineReceiver

STAMP = re.compile(rb'"pausedReason":\s*"b(\d+)"')
TAIL = 64  # longest partial stamp kept between reads


class Stats:
    def __init__(self) -> None:
        self.samples: list[tuple[int, int]] = []  # (sent_ns, latency_ns)
        self.open = 0
        self.failed = 0
        self.lost = 0

    def record(self, data: bytes | bytearray, now: int) -> None:
        for m in STAMP.finditer(data):
            sent = int(m.group(1))
            self.samples.append((sent, now - sent))

    def report(self, start: int, end: int) -> dict[str, object]:
        """Latencies (µs) of the frames sent in ``[start, end)``; the bench merges processes."""
        chosen = [lat // 1000 for sent, lat in self.samples if start <= sent < end]
        self.samples = [s for s in self.samples if s[0] >= end]
        return {"latencies_us": chosen, "open": self.open, "lost": self.lost}


STATS = Stats()


class _Stream(protocol.Protocol):
    """Common part: send the request, wait for the response head, then scan bytes."""

    def __init__(self, url: str, done: protocol.Factory) -> None:
        self.url = urlsplit(url)
        self.head = bytearray()
        self.upgraded = False
        self.done = done

    def request_lines(self) -> list[str]:
        raise NotImplementedError

    def connectionMade(self) -> None:
        path = self.url.path + (f"?{self.url.query}" if self.url.query else "")
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.url.netloc}", *self.request_lines(), "", ""]
        self.transport.write("\r\n".join(lines).encode())

    def dataReceived(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.head[: self.head.find(b"\r\n")])
            rest = bytes(self.head[end + 4 :])
            self.head = bytearray()
            if b" 200 " not in status and b" 101 " not in status:
                self.done.finished(self, ok=False)  # type: ignore[attr-defined]
                self.transport.loseConnection()
                return
            self.upgraded = True
            self.done.finished(self, ok=True)  # type: ignore[attr-defined]
            data = rest
        if data:
            self.body(data, now)

    def body(self, data: bytes, now: int) -> None:
        raise NotImplementedError

    def connectionLost(self, reason: object = None) -> None:
        if self.upgraded:
            STATS.open -= 1
            if not self.done.closing:  # type: ignore[attr-defined]
                STATS.lost += 1
        else:
            self.done.finished(self, ok=False)  # type: ignore[attr-defined]


class SSEClient(_Stream):
    def request_lines(self) -> list[str]:
        return ["Accept: text/event-stream", "Cache-Control: no-cache"]

    def body(self, data: bytes, now: int) -> None:
        buf = self.head + data
        last = 0
        for m in STAMP.finditer(buf):
            sent = int(m.group(1))
            STATS.samples.append((sent, now - sent))
            last = m.end()
        self.head = buf[max(last, len(buf) - TAIL) :]


class WebSocketClient(_Stream):
    def request_lines(self) -> list[str]:
        key = base64.b64encode(os.urandom(16)).decode()
        return [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]

    def body(self, data: bytes, now: int) -> None:
        self.head += data
        for opcode, payload in self._frames():
            if opcode == 0x9:  # ping: answer with a (zero-)masked pong
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode == 0x8:
                self.transport.loseConnection()
            else:
                STATS.record(payload, now)

    def _frames(self) -> Iterator[tuple[int, bytes]]:
        buf = self.head
        pos = 0
        while len(buf) - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            off = pos + 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length, off = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length, off = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if len(buf) - off < length:
                break
            yield opcode, bytes(buf[off : off + length])
            pos = off + length
        del buf[:pos]


class Streams(protocol.ClientFactory):
    """Opens the streams, ``concurrency`` handshakes at a time."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.pending: list[tuple[str, str]] = []
        self.in_flight = 0
        self.clients: list[_Stream] = []
        self.closing = False
        self.reply: LineReceiver | None = None

    def open(self, entries: list[tuple[str, str]], reply: LineReceiver) -> None:
        self.pending.extend(reversed(entries))
        self.reply = reply
        self._next()

    def _next(self) -> None:
        while self.pending and self.in_flight < self.concurrency:
            kind, url = self.pending.pop()
            parts = urlsplit(url)
            self.in_flight += 1
            cls = SSEClient if kind == "sse" else WebSocketClient
            reactor.connectTCP(parts.hostname, parts.port or 80, _One(self, cls(url, self)), timeout=30)
        if not self.pending and self.in_flight == 0 and self.reply is not None:
            self.reply.sendLine(f"connected {STATS.open} {STATS.failed}".encode())
            self.reply = None

    def finished(self, client: _Stream, ok: bool) -> None:
        if getattr(client, "_counted", False):
            return
        client._counted = True  # type: ignore[attr-defined]
        self.in_flight -= 1
        if ok:
            STATS.open += 1
            self.clients.append(client)
        else:
            STATS.failed += 1
        self._next()

    def close_all(self) -> None:
        self.closing = True
        clients, self.clients = self.clients, []
        for client in clients:
            if client.transport is not None:
                client.transport.abortConnection()
        reactor.callLater(0.05, setattr, self, "closing", False)


class _One(protocol.ClientFactory):
    noisy = False

    def __init__(self, streams: Streams, proto: _Stream) -> None:
        self.streams, self.proto = streams, proto

    def buildProtocol(self, addr: object) -> _Stream:
        return self.proto

    def clientConnectionFailed(self, connector: object, reason: object) -> None:
        self.streams.finished(self.proto, ok=False)


class Control(LineReceiver):
    delimiter = b"\n"

    def __init__(self, streams: Streams) -> None:
        self.streams = streams

    def lineReceived(self, line: bytes) -> None:
        words = line.decode().split()
        if not words:
            return
        if words[0] == "connect":
            with open(words[1]) as f:
                entries = [tuple(x.split(None, 1)) for x in f.read().splitlines() if x.strip()]
            self.streams.open(entries, self)  # type: ignore[arg-type]
        elif words[0] == "report":
            self.sendLine(json.dumps(STATS.report(int(words[1]), int(words[2]))).encode())
        elif words[0] == "close":
            self.streams.close_all()
            reactor.callLater(0.05, self.sendLine, b"closed")
        elif words[0] == "quit":
            self.streams.close_all()
            self.sendLine(b"bye")
            reactor.callLater(0.05, reactor.stop)

    def connectionLost(self, reason: object = None) -> None:
        if reactor.running:
            reactor.stop()


def main() -> None:
    concurrency = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stdio.StandardIO(Control(Streams(concurrency)))
    reactor.run()


if __name__ == "__main__":
    main()
