"""SSE over real loopback sockets."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

from tests.support.streams import SSEClient
from tests.web.streams_helpers import (
    ORIGIN,
    EventLog,
    live,
    make_hub,
    open_sse,
    sse_past_snapshot,
    start_server,
)

pytestmark = pytest.mark.timeout(30)


@pytest_twisted.ensureDeferred
async def test_snapshot_live_drop_and_resume_with_last_event_id() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", ["sales"])
    log = EventLog()
    try:
        response, client = await open_sse(server, reg.token, log, headers={"Origin": ORIGIN})
        assert response.code == 200
        h = response.headers
        assert h.getRawHeaders("content-type") == ["text/event-stream; charset=utf-8"]
        assert h.getRawHeaders("cache-control") == ["no-cache, no-store"]
        assert h.getRawHeaders("x-accel-buffering") == ["no"]
        assert h.getRawHeaders("access-control-allow-origin") == [ORIGIN]
        await log.until(lambda: len(log.events) == 2)
        assert client.retry is not None and client.retry > 0
        assert log.types == ["extensionStatus", "queueCount"]

        hub.publish(live("1001", 3))
        await log.until(lambda: len(log.events) == 5)
        assert log.counts() == [0, 1, 2]

        await client.stop()
        await server.quiesce()
        seen = log.last_id
        hub.publish(live("1001", 4, start=3))

        again = EventLog()
        _, client = await open_sse(
            server, reg.token, again, headers={"Last-Event-ID": str(seen)}, query="since=1"
        )
        await again.until(lambda: len(again.events) == 4)
        assert again.ids == [seen + 1, seen + 2, seen + 3, seen + 4]
        assert again.counts() == [3, 4, 5, 6]
        hub.publish(live("1001", 1, start=7))
        await again.until(lambda: again.counts()[-1] == 7)
        assert again.ids == list(range(seen + 1, seen + 6))
        await client.stop()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_since_query_resumes_and_unknown_id_resets() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    hub.publish(live("1001", 2))
    try:
        _, client = await sse_past_snapshot(server, reg.token)
        await client.stop()
        resumed = EventLog()
        _, client = await open_sse(server, reg.token, resumed, query="since=3")
        hub.publish(live("1001", 1, start=9))
        await resumed.until(lambda: len(resumed.events) == 2)
        assert resumed.ids == [4, 5] and resumed.counts() == [9]  # id 4 is ext status
        await client.stop()
        reset = EventLog()
        _, client = await open_sse(server, reg.token, reset, query="since=999")
        await reset.until(lambda: len(reset.events) == 3)
        assert reset.types == ["reset", "extensionStatus", "queueCount"]
        await client.stop()
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "last_event_id",
    [b"bogus", b"-1", b"1.5", b"99999999999999999999", "\uff11".encode(), b"999", b"ab\xff"],
)
@pytest_twisted.ensureDeferred
async def test_unusable_last_event_id_gives_reset_and_snapshot_never_an_error(last_event_id: bytes) -> None:
    """An EventSource cannot recover from an error status: whatever its Last-Event-ID, the
    stream opens, says ``reset``, sends a fresh snapshot and goes on live, ids consecutive."""
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    hub.publish(live("1001", 2))
    try:
        log = EventLog()
        agent = Agent(reactor, pool=server.pool)
        response = await agent.request(
            b"GET", server.url(reg.token, "sse").encode(), Headers({b"Last-Event-ID": [last_event_id]})
        )
        assert response.code == 200
        client = SSEClient(log)
        response.deliverBody(client)
        await log.until(lambda: len(log.events) == 3)
        assert log.types == ["reset", "extensionStatus", "queueCount"]
        hub.publish(live("1001", 1, start=5))
        await log.until(lambda: len(log.events) == 4)
        first = log.ids[0]
        assert log.ids == [first, first + 1, first + 2, first + 3]
        await client.stop()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_heartbeat_comments() -> None:
    hub = make_hub()
    server = start_server(hub, heartbeat=0.02)
    reg = hub.register("1001", [])
    try:
        log = EventLog()
        _, client = await open_sse(server, reg.token, log)
        await log.until(lambda: len(client.comments) >= 2)
        await client.stop()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_unregister_sends_closed_then_ends_the_stream() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        log, client = await sse_past_snapshot(server, reg.token)
        hub.unregister("1001")
        await client.lost
        assert log.events[-1]["type"] == "closed" and log.events[-1]["reason"] == "unregistered"
        response = await treq.get(server.url(reg.token, "sse"), pool=server.pool)
        assert response.code == 404
        body = json.loads(await treq.content(response))
        assert body["error"]["code"] == "unknown_stream" and body["error"]["message"]
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_shutdown_ends_the_stream() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        _, client = await sse_past_snapshot(server, reg.token)
        server.routes.close_all()
        await client.lost
        assert server.routes.stats()["clients"]["sse"] == 0
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_bad_requests() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        for url, headers, status, code in [
            (server.url("nope", "sse"), {}, 404, "unknown_stream"),
            (server.url(reg.token, "sse", "since=-1"), {}, 400, "bad_since"),
            (server.url(reg.token, "sse", "since=abc"), {}, 400, "bad_since"),
        ]:
            response = await treq.get(url, headers=headers, pool=server.pool)
            assert response.code == status, url
            assert response.headers.getRawHeaders("content-type") == ["application/json"]
            body = json.loads(await treq.content(response))
            assert body["error"]["code"] == code
        assert hub.stats()["clients"] == {}
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_preflight() -> None:
    hub = make_hub()
    server = start_server(hub)
    try:
        response = await treq.request(
            "OPTIONS",
            server.url("any", "sse"),
            headers={"Origin": ORIGIN, "Access-Control-Request-Headers": "last-event-id"},
            pool=server.pool,
        )
        await treq.content(response)
        assert response.code == 204
        allowed = response.headers.getRawHeaders("access-control-allow-headers")[0]
        assert "Last-Event-ID" in allowed
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_grace_expiry_ends_the_token() -> None:
    clock = Clock()
    hub = make_hub(clock)
    expired: list[str] = []
    hub.on_expired = expired.append
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        _, client = await sse_past_snapshot(server, reg.token)
        await client.stop()
        await server.quiesce()
        clock.advance(29)
        resumed = EventLog()
        _, client = await open_sse(server, reg.token, resumed, query="since=2")
        await client.stop()
        await server.quiesce()
        clock.advance(30)
        assert expired == ["1001"]
        response, _ = await open_sse(server, reg.token, EventLog(), query="since=2")
        assert response.code == 404
    finally:
        await server.stop()
