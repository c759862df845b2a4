"""Malformed and hostile HTTP at the socket level: never a 500, never a stuck connection."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import defer, endpoints, protocol, reactor

from tests.reliability.rel_helpers import captured_log
from tests.support.stack import Stack

PLAIN = b"Host: x\r\nConnection: close\r\n\r\n"


class Raw(protocol.Protocol):
    """A client that writes bytes as given and records everything until the close."""

    def connectionMade(self) -> None:
        self.received = b""
        self.closed: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(self.received)


async def connect(stack: Stack) -> Raw:
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", stack.service.http_port)
    return await endpoints.connectProtocol(endpoint, Raw())


async def exchange(stack: Stack, data: bytes, timeout: float = 5.0) -> bytes:
    client = await connect(stack)
    client.transport.write(data)
    return await client.closed.addTimeout(timeout, reactor)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


def json_body(answer: bytes) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return json.loads(body)


@pytest_twisted.ensureDeferred
async def test_non_utf8_url_is_a_json_400_without_traceback(stack: Stack) -> None:
    with captured_log() as lines:
        for path in (
            b"/agents/%FF",
            b"/stream/%C3%28/sse",
            b"/client/sse/%FF",
            b"/agents/1001/queues/%FE/login",
        ):
            answer = await exchange(stack, b"GET " + path + b" HTTP/1.1\r\n" + PLAIN)
            assert status_of(answer) == 400, answer
            assert json_body(answer)["error"]["code"] == "invalid_url"
        answer = await exchange(stack, b"GET /health HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n")
        assert status_of(answer) in (200, 400), answer
    assert not [line for line in lines if "Traceback" in line], lines


@pytest_twisted.ensureDeferred
async def test_head_answers_without_body_or_500(stack: Stack) -> None:
    for path in (b"/health", b"/openapi.json", b"/agents/1001", b"/queues", b"/metrics", b"/nowhere"):
        answer = await exchange(stack, b"HEAD " + path + b" HTTP/1.1\r\n" + PLAIN)
        status = status_of(answer)
        assert status < 500 or (path == b"/health" and status == 503), (path, answer)
        assert answer.endswith(b"\r\n\r\n"), answer  # headers only


@pytest_twisted.ensureDeferred
async def test_huge_headers_are_refused_and_the_server_keeps_serving(stack: Stack) -> None:
    one_huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    many = b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(600))
    for request in (one_huge, many + b"\r\n"):
        answer = await exchange(stack, request)
        assert status_of(answer) in (0, 400, 431), answer[:200]  # refused or dropped, never 5xx
    status, _ = await stack.api("GET", "/health")
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_huge_body_is_413_json(stack: Stack) -> None:
    size = 1024 * 1024
    request = (
        (
            b"PUT /agents/1001 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size
        )
        + b"["
        + b"1," * ((size - 2) // 2)
        + b"1]"[: size - 1 - 2 * ((size - 2) // 2)]
    )
    answer = await exchange(stack, request[: len(request)])
    assert status_of(answer) == 413, answer[:300]
    # Chunked, with no length announced: still refused once past the limit.
    chunk = b"x" * 70_000
    chunked = (
        b"POST /agents/1001/originate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (len(chunk), chunk)
    )
    answer = await exchange(stack, chunked)
    assert 400 <= status_of(answer) < 500, answer[:300]


@pytest_twisted.ensureDeferred
async def test_slowloris_partial_requests_are_bounded(stack: Stack) -> None:
    """Idle partial requests are dropped after the site timeout and starve nobody meanwhile."""
    stack.service.site.timeOut = 0.3  # read when a connection is accepted
    stalled = [await connect(stack) for _ in range(200)]
    for i, client in enumerate(stalled):
        client.transport.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " if i % 2 else b"PU")
    status, _ = await stack.api("GET", "/health")
    assert status == 200  # served while 200 partial requests hang
    started = reactor.seconds()
    await defer.gatherResults([c.closed.addTimeout(5, reactor) for c in stalled])
    assert reactor.seconds() - started < 3
