"""Long-poll over real loopback sockets."""

from __future__ import annotations

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor, task
from twisted.web._newclient import ResponseNeverReceived

from pbxis.web.streams.poll import MAX_EVENTS
from tests.web.streams_helpers import ORIGIN, live, make_hub, poll, start_server

pytestmark = pytest.mark.timeout(30)


@pytest_twisted.ensureDeferred
async def test_snapshot_live_and_resume() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        code, body = await poll(server, reg.token)
        assert code == 200
        assert [e["type"] for e in body["events"]] == ["extensionStatus", "queueCount"]
        assert body["next"] == body["events"][-1]["id"] == 2

        # nothing due: waits, and the first live events end the wait
        waiting = defer.ensureDeferred(poll(server, reg.token, "since=2&timeout=10"))
        while not hub.stats()["clients"].get("longPoll"):
            await task.deferLater(reactor, 0.005, lambda: None)
        hub.publish(live("1001", 3))
        code, body = await waiting
        assert [e["count"] for e in body["events"]] == [0, 1, 2]
        assert [e["id"] for e in body["events"]] == [3, 4, 5] and body["next"] == 5

        # missed while away: exactly those, at once
        hub.publish(live("1001", 2, start=3))
        code, body = await poll(server, reg.token, "since=5&timeout=10")
        assert [e["id"] for e in body["events"]] == [6, 7] and body["next"] == 7

        # an old client that saw less gets the rest again, exactly once
        code, body = await poll(server, reg.token, "since=4&timeout=0")
        assert [e["id"] for e in body["events"]] == [5, 6, 7]
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_timeout_answers_empty_with_the_same_next() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    hub.publish(live("1001", 1))
    try:
        code, body = await poll(server, reg.token, "since=1&timeout=0.05")
        assert (code, body) == (200, {"events": [], "next": 1})
        code, body = await poll(server, reg.token, "since=1&timeout=0")
        assert (code, body) == (200, {"events": [], "next": 1})
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_impossible_replay_resets() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        _code, body = await poll(server, reg.token, "since=42&timeout=0")
        assert [e["type"] for e in body["events"]] == ["reset", "extensionStatus", "queueCount"]
        assert body["next"] == 3
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_large_backlog_comes_in_bounded_answers() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        _, body = await poll(server, reg.token, "timeout=0")
        since, seen = body["next"], [e["id"] for e in body["events"]]
        hub.publish(live("1001", 2 * MAX_EVENTS + 10))
        for _ in range(4):
            _code, body = await poll(server, reg.token, f"since={since}&timeout=0")
            assert len(body["events"]) <= MAX_EVENTS + 100
            seen += [e["id"] for e in body["events"]]
            since = body["next"]
        assert seen == list(range(1, len(seen) + 1))
        assert seen[-1] == 2 * MAX_EVENTS + 12
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_unregister_answers_closed_then_404() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        await poll(server, reg.token, "timeout=0")
        waiting = defer.ensureDeferred(poll(server, reg.token, "since=2&timeout=10"))
        while not hub.stats()["clients"].get("longPoll"):
            await task.deferLater(reactor, 0.005, lambda: None)
        hub.unregister("1001")
        code, body = await waiting
        assert [e["type"] for e in body["events"]] == ["closed"]
        assert body["events"][0]["reason"] == "unregistered"
        code, body = await poll(server, reg.token, "since=3")
        assert code == 404 and body["error"]["code"] == "unknown_stream"
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_client_gone_mid_wait_leaves_nothing_behind() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        waiting = treq.get(server.url(reg.token, "poll", "since=0&timeout=0"), pool=server.pool)
        await treq.content(await waiting)
        waiting = treq.get(server.url(reg.token, "poll", "since=2&timeout=60"), pool=server.pool)
        while not hub.stats()["clients"].get("longPoll"):
            await task.deferLater(reactor, 0.005, lambda: None)
        waiting.cancel()
        with pytest.raises(ResponseNeverReceived):
            await waiting
        await server.quiesce()
        hub.publish(live("1001", 1))
        _code, body = await poll(server, reg.token, "since=2&timeout=0")
        assert [e["id"] for e in body["events"]] == [3]
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_bad_parameters_and_cors() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        for query, code in [
            ("since=x", "bad_since"),
            ("since=1.5", "bad_since"),
            ("timeout=x", "bad_timeout"),
            ("timeout=-1", "bad_timeout"),
            ("timeout=121", "bad_timeout"),
            ("timeout=nan", "bad_timeout"),
        ]:
            status, body = await poll(server, reg.token, query)
            assert (status, body["error"]["code"]) == (400, code), query
        status, body = await poll(server, "unknown", "")
        assert (status, body["error"]["code"]) == (404, "unknown_stream")
        response = await treq.get(
            server.url(reg.token, "poll", "timeout=0"), headers={"Origin": ORIGIN},
            pool=server.pool,
        )  # fmt: skip
        await treq.content(response)
        assert response.headers.getRawHeaders("access-control-allow-origin") == [ORIGIN]
        response = await treq.get(
            server.url(reg.token, "poll", "timeout=0"),
            headers={"Origin": "https://evil.example"},
            pool=server.pool,
        )
        await treq.content(response)
        assert response.headers.getRawHeaders("access-control-allow-origin") is None
    finally:
        await server.stop()
