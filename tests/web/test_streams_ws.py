"""WebSocket (Autobahn on the Klein port) over real loopback sockets."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
import treq

from pbxis.web.streams.ws import (
    CLOSE_BAD_SINCE,
    CLOSE_ENDED,
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_SHUTDOWN,
    CLOSE_UNKNOWN_TOKEN,
)
from tests.web.streams_helpers import EventLog, live, make_hub, open_ws, start_server

pytestmark = pytest.mark.timeout(30)


@pytest_twisted.ensureDeferred
async def test_snapshot_live_drop_and_resume() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        log = EventLog()
        conn = await open_ws(server, reg.token, log)
        await log.until(lambda: len(log.events) == 2)
        assert log.types == ["extensionStatus", "queueCount"]
        hub.publish(live("1001", 3))
        await log.until(lambda: len(log.events) == 5)
        assert log.counts() == [0, 1, 2] and log.ids == [1, 2, 3, 4, 5]

        await conn.stop()
        await server.quiesce()
        hub.publish(live("1001", 2, start=3))
        again = EventLog()
        conn = await open_ws(server, reg.token, again, f"since={log.last_id}")
        await again.until(lambda: len(again.events) == 2)
        hub.publish(live("1001", 1, start=5))
        await again.until(lambda: len(again.events) == 3)
        assert again.ids == [6, 7, 8] and again.counts() == [3, 4, 5]
        await conn.stop()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_impossible_replay_resets() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        log = EventLog()
        conn = await open_ws(server, reg.token, log, "since=77")
        await log.until(lambda: len(log.events) == 3)
        assert log.types == ["reset", "extensionStatus", "queueCount"]
        await conn.stop()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_close_codes() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        for token, query, origin, expected in [
            ("nope", "", None, CLOSE_UNKNOWN_TOKEN),
            (reg.token, "", "https://evil.example", CLOSE_FORBIDDEN_ORIGIN),
            (reg.token, "since=x", None, CLOSE_BAD_SINCE),
        ]:
            log = EventLog()
            conn = await open_ws(server, token, log, query, origin=origin)
            code, _ = await conn.closed
            assert code == expected
            assert log.events == []

        own_page = server.base  # pbxis's own client page needs no allowed_origins entry
        log = EventLog()
        conn = await open_ws(server, reg.token, log, origin=own_page)
        await log.until(lambda: len(log.events) == 2)
        server.routes.close_all()
        code, _ = await conn.closed
        assert code == CLOSE_SHUTDOWN

        log = EventLog()
        conn = await open_ws(server, reg.token, log, "since=2")
        assert server.routes.stats()["clients"]["websocket"] == 1
        hub.unregister("1001")
        code, reason = await conn.closed
        assert code == CLOSE_ENDED and reason == "unregistered"
        assert log.types == ["closed"] and log.events[0]["reason"] == "unregistered"
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_plain_http_get_is_refused_in_the_error_shape() -> None:
    hub = make_hub()
    server = start_server(hub)
    reg = hub.register("1001", [])
    try:
        response = await treq.get(server.url(reg.token, "ws"), pool=server.pool)
        body = json.loads(await treq.content(response))
        assert response.code == 426 and body["error"]["code"] == "upgrade_required"
        response = await treq.get(server.url("nope", "ws"), pool=server.pool)
        body = json.loads(await treq.content(response))
        assert response.code == 404 and body["error"]["code"] == "unknown_stream"
    finally:
        await server.stop()
