"""pbxis.js in Chromium against a fake stream server: the reducer, URLs, resume, fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted

from .conftest import Browser, on_reactor
from .fake import TOKEN, FakeStreams

pytestmark = pytest.mark.browser


@pytest_twisted.async_yield_fixture
async def fake() -> AsyncIterator[FakeStreams]:
    streams = FakeStreams()
    streams.listen()
    try:
        yield streams
    finally:
        await streams.stop()


def with_library(page: Any, base_url: str) -> None:
    page.goto(base_url + "/client")
    page.add_script_tag(url=base_url + "/static/pbxis.js")


SNAPSHOT = [
    {"id": 1, "type": "extensionStatus", "status": "not_inuse", "time": 1000},
    {
        "id": 2,
        "type": "queueMemberStatus",
        "queue": "sales",
        "loggedIn": True,
        "status": "not_inuse",
        "paused": False,
        "pausedReason": "",
        "time": 1000,
    },
    {"id": 3, "type": "queueCount", "queue": "sales", "count": 2, "time": 1000},
    {
        "id": 4,
        "type": "phoneNumber",
        "number": "0911234567",
        "name": "Ana",
        "direction": "in",
        "uniqueId": "u1",
        "queue": "sales",
        "time": 2000,
    },
    {"id": 5, "type": "extensionStatus", "status": "ringing", "time": 2000},
]


@pytest_twisted.ensureDeferred
async def test_reducer_follows_a_call(browser: Browser, fake: FakeStreams) -> None:
    def script(page: Any) -> dict[str, Any]:
        with_library(page, fake.base_url)
        return page.evaluate(
            """(snapshot) => {
              const R = Pbxis.reduce;
              let s = snapshot.reduce(R, Pbxis.initialState());
              const ringing = s;
              s = R(s, {id: 6, type: "extensionStatus", status: "inuse", time: 3000});
              const talking = s;
              s = R(s, {id: 7, type: "agentComplete", uniqueId: "u1", queue: "sales", talkTime: 65,
                        holdTime: 3, recording: "/rec/u1.wav", reason: "caller", time: 9000});
              s = R(s, {id: 8, type: "phoneNumber", number: null, name: "", direction: "in",
                        uniqueId: "u1", queue: "sales", time: 9000});
              s = R(s, {id: 9, type: "queueMemberStatus", queue: "sales", loggedIn: true, status: "not_inuse",
                        paused: true, pausedReason: "lunch", time: 9500});
              s = R(s, {id: 10, type: "originateFailed", actionId: "a1", number: "0800", reason: "busy",
                        time: 9600});
              s = R(s, {id: 11, type: "pbxStatus", connected: false, time: 9700});
              const before = s;
              s = R(s, {id: 12, type: "surpriseType", time: 9800});
              const unknown = s;
              s = R(s, {id: 13, type: "reset", time: 9900});
              return {ringing, talking, before, unknown, reset: s};
            }""",
            SNAPSHOT,
        )

    out = await browser.run(script)
    ringing, talking, before, reset = out["ringing"], out["talking"], out["before"], out["reset"]
    assert ringing["call"]["number"] == "0911234567" and ringing["call"]["answered"] is None
    assert ringing["queues"]["sales"] == {**ringing["queues"]["sales"], "loggedIn": True, "count": 2}
    assert talking["call"]["answered"] == 3000 and talking["extension"]["status"] == "inuse"
    assert before["call"] is None
    done = before["completed"][0]
    assert done == {
        **done,
        "number": "0911234567",
        "name": "Ana",
        "talkTime": 65,
        "holdTime": 3,
        "recording": "/rec/u1.wav",
        "reason": "caller",
    }
    assert (
        before["queues"]["sales"]["paused"] is True and before["queues"]["sales"]["pausedReason"] == "lunch"
    )
    assert before["failures"][0]["reason"] == "busy" and before["pbxConnected"] is False
    assert out["unknown"]["lastId"] == 12 and out["unknown"]["queues"] == before["queues"]
    assert reset["queues"] == {} and reset["extension"]["status"] == "unknown"
    assert reset["completed"] == before["completed"] and reset["lastId"] == 13


@pytest_twisted.ensureDeferred
async def test_stream_urls_derive_every_transport(browser: Browser, fake: FakeStreams) -> None:
    def script(page: Any) -> Any:
        with_library(page, fake.base_url)
        return page.evaluate(
            """() => [
              Pbxis.streamUrls("https://pbx.example.com/p/stream/T/sse"),
              Pbxis.streamUrls("wss://pbx.example.com/stream/T/ws?since=4"),
              Pbxis.streamUrls({longPoll: "/stream/T/poll"}),
            ]"""
        )

    a, b, c = await browser.run(script)
    assert a == {
        "sse": "https://pbx.example.com/p/stream/T/sse",
        "longPoll": "https://pbx.example.com/p/stream/T/poll",
        "websocket": "wss://pbx.example.com/p/stream/T/ws",
    }
    assert b["longPoll"] == "https://pbx.example.com/stream/T/poll" and b["websocket"].endswith("/T/ws")
    assert c["websocket"] == fake.base_url.replace("http:", "ws:") + "/stream/T/ws"


def collect_until(page: Any, count: int) -> list[int]:
    page.wait_for_function("(n) => window.ids.length >= n", arg=count)
    return page.evaluate("window.ids")


@pytest_twisted.ensureDeferred
async def test_long_poll_delivers_each_event_once_when_the_server_repeats(
    browser: Browser, fake: FakeStreams
) -> None:
    for event in SNAPSHOT:
        fake.publish(event["type"], **{k: v for k, v in event.items() if k not in ("id", "type", "time")})
    fake.overlap = 3

    def script(page: Any) -> tuple[list[int], str]:
        with_library(page, fake.base_url)
        page.evaluate(
            """(url) => {
              window.ids = [];
              window.client = Pbxis.connect(url, {transport: "long-poll", pollTimeout: 2});
              window.client.on("event", (ev) => window.ids.push(ev.id));
            }""",
            f"{fake.base_url}/stream/{TOKEN}/poll",
        )
        collect_until(page, 5)
        on_reactor(lambda: [fake.publish("queueCount", queue="sales", count=n) for n in range(3)])
        ids = collect_until(page, 8)
        status = page.evaluate("window.client.state.queues.sales.count + '/' + window.client.connection")
        page.evaluate("window.client.close()")
        return ids, status

    ids, status = await browser.run(script)
    assert ids == list(range(1, 9))
    assert status == "2/connected"


@pytest_twisted.ensureDeferred
async def test_falls_back_when_the_preferred_transport_never_connects(
    browser: Browser, fake: FakeStreams
) -> None:
    fake.publish("extensionStatus", status="not_inuse")

    def script(page: Any) -> dict[str, Any]:
        with_library(page, fake.base_url)
        page.evaluate(
            """(url) => {
              window.ids = [];
              window.client = Pbxis.connect({websocket: url}, {transport: "websocket", minDelay: 0.05});
              window.client.on("event", (ev) => window.ids.push(ev.id));
              window.statuses = [];
              window.client.on("status", (s) => window.statuses.push(
                s.connection + ":" + s.transport + ":" + s.error));
            }""",
            f"{fake.base_url.replace('http:', 'ws:')}/stream/{TOKEN}/ws",
        )
        collect_until(page, 1)
        out = page.evaluate("({s: window.statuses})")
        page.evaluate("window.client.close()")
        return out

    # The fake has no WebSocket route: after two refusals the client moves on to SSE.
    out = await browser.run(script)
    assert out["s"] == ["reconnecting:websocket:closed"] * 2 + ["connected:sse:null"]


@pytest_twisted.ensureDeferred
async def test_an_unknown_token_fails_for_good(browser: Browser, fake: FakeStreams) -> None:
    def script(page: Any) -> Any:
        with_library(page, fake.base_url)
        page.evaluate(
            """(url) => {
              window.statuses = [];
              window.client = Pbxis.connect(url, {transport: "sse", minDelay: 0.05});
              window.client.on("status", (s) => window.statuses.push(s.connection));
            }""",
            f"{fake.base_url}/stream/not-a-token/sse",
        )
        page.wait_for_function("() => window.client.connection === 'failed'")
        return page.evaluate("({statuses: window.statuses, error: window.client.error})")

    out = await browser.run(script)
    assert out["statuses"][-1] == "failed" and "unknown" in out["error"]


@pytest_twisted.ensureDeferred
async def test_supervisor_reducer_files_whole_queues(browser: Browser, fake: FakeStreams) -> None:
    def script(page: Any) -> dict[str, Any]:
        with_library(page, fake.base_url)
        return page.evaluate(
            """() => {
              const R = Pbxis.reduceBoard;
              const member = (id, status, loggedIn) => ({id, type: "queueMember", supervisor: "boss",
                queue: "sales", agent: "1001", interface: "SIP/1001", name: "Alice", status, loggedIn,
                paused: false, pausedReason: "", inCall: false, since: 1000, callsTaken: 0, lastCall: null,
                time: 1000});
              let s = Pbxis.initialBoard();
              s = R(s, {id: 1, type: "queueStats", queue: "sales", waiting: 1, completed: 4, time: 1000});
              s = R(s, {id: 2, type: "queueCallers", queue: "sales",
                        callers: [{position: 1, number: "0911", name: "Ana", since: 900}], time: 1000});
              s = R(s, member(3, "not_inuse", true));
              const full = JSON.parse(JSON.stringify(s));
              s = R(s, member(4, "unknown", false));
              const left = s;
              s = R(s, {id: 5, type: "reset", time: 2000});
              return {full, left, reset: s, input: Pbxis.EVENT_TYPES.includes("queueCallers")};
            }"""
        )

    out = await browser.run(script)
    sales = out["full"]["queues"]["sales"]
    assert sales["stats"]["completed"] == 4 and sales["callers"][0]["name"] == "Ana"
    assert sales["members"]["SIP/1001"]["name"] == "Alice"
    assert out["left"]["queues"]["sales"]["members"] == {}
    assert out["left"]["queues"]["sales"]["callers"][0]["number"] == "0911"  # untouched
    assert out["reset"]["queues"] == {} and out["reset"]["lastId"] == 5
    assert out["input"]  # SSE listens for the supervisor event types too
