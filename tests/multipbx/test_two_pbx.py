"""Two PBXes in one process, no Redis: two simulated Asterisks standing for ``east`` and
``west`` under one daemon, over real HTTP and real AMI sockets (tests.support.multi)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted

from tests.support.multi import TwoPbx, start_two, stop_two
from tests.test_stack import of

KEY = "multi-api-key-0123456789"


@pytest_twisted.async_yield_fixture
async def two() -> AsyncIterator[TwoPbx]:
    t = await start_two(api_keys=[KEY])
    try:
        yield t
    finally:
        await stop_two(t)


async def collect(
    two: TwoPbx, token: str, since: int | None, until: Any, timeout: float = 10.0
) -> list[dict]:
    seen: list[dict] = []
    deadline = two.service.reactor.seconds() + timeout
    while not until(seen):
        if two.service.reactor.seconds() > deadline:
            raise AssertionError(f"condition not met; events: {seen}")
        resume = "" if since is None else f"since={since}&"
        status, body = await two.stack.api("GET", f"/stream/{token}/poll?{resume}timeout=1", token=token)
        assert status == 200, body
        seen.extend(body["events"])
        since = body["next"]
    return seen


async def drain(two: TwoPbx, token: str, since: int) -> list[dict]:
    """Whatever is in the log after ``since`` right now (no wait)."""
    status, body = await two.stack.api("GET", f"/stream/{token}/poll?since={since}&timeout=0", token=token)
    assert status == 200, body
    return list(body["events"])


async def register(two: TwoPbx, pbx: str, agent: str = "1001") -> dict[str, Any]:
    status, reg = await two.stack.api("PUT", f"/pbx/{pbx}/agents/{agent}", {"queues": ["sales"]})
    assert status == 200, reg
    assert reg["pbx"] == pbx
    return reg


@pytest_twisted.ensureDeferred
async def test_same_extension_on_two_pbxes_is_two_agents_and_calls_never_cross(two: TwoPbx) -> None:
    east, west = await register(two, "east"), await register(two, "west")
    assert east["token"] != west["token"]
    first = {
        pbx: await collect(two, reg["token"], None, lambda ev: of(ev, "queueCount"))
        for pbx, reg in (("east", east), ("west", west))
    }
    for pbx, events in first.items():
        assert {e["pbx"] for e in events} == {pbx}, events  # the snapshot too
    since = {pbx: events[-1]["id"] for pbx, events in first.items()}

    for pbx in ("east", "west"):
        status, body = await two.stack.api("POST", f"/pbx/{pbx}/agents/1001/queues/sales/login", {})
        assert status == 200, body
    # a call on east: only east's 1001 gets it
    two.sims["east"].customer_call("sales", number="0911000001", talk_time=0.3)
    events = await collect(two, east["token"], since["east"], lambda ev: of(ev, "agentComplete"), timeout=15)
    assert of(events, "phoneNumber", number="0911000001")
    assert {e["pbx"] for e in events} == {"east"}
    # then one on west: west's 1001 gets it, and had nothing of east's call
    two.sims["west"].customer_call("sales", number="0922000002", talk_time=0.3)
    west_events = await collect(
        two, west["token"], since["west"], lambda ev: of(ev, "agentComplete"), timeout=15
    )
    assert {e["pbx"] for e in west_events} == {"west"}
    numbers = {e["number"] for e in of(west_events, "phoneNumber") if e["number"]}
    assert numbers == {"0922000002"}
    east_after = await drain(two, east["token"], events[-1]["id"])
    assert not [e for e in east_after if e.get("number") == "0922000002" or e["type"] == "agentComplete"]
    # the state documents are each PBX's own: a pause on west shows on west only
    status, _ = await two.stack.api(
        "POST", "/pbx/west/agents/1001/queues/sales/pause", {"reason": "west-lunch"}
    )
    assert status == 200
    await collect(
        two, west["token"], west_events[-1]["id"], lambda ev: of(ev, "queueMemberStatus", paused=True)
    )

    def member(doc: Any) -> dict[str, Any]:
        return {m["agent"]: m for m in doc["queues"]["sales"]["members"]}["1001"]

    _, queues_east = await two.stack.api("GET", "/pbx/east/queues")
    _, queues_west = await two.stack.api("GET", "/pbx/west/queues")
    assert member(queues_west)["pausedReason"] == "west-lunch" and member(queues_west)["paused"] is True
    assert member(queues_east)["paused"] is False
    _, state_east = await two.stack.api("GET", "/pbx/east/agents/1001")
    assert all(not q["paused"] for q in state_east["queues"].values()), state_east


@pytest_twisted.ensureDeferred
async def test_a_token_resolves_to_its_own_pbx_only(two: TwoPbx) -> None:
    east = await register(two, "east")
    await register(two, "west")
    status, doc = await two.stack.api("GET", "/pbx/east/agents/1001", token=east["token"])
    assert status == 200 and doc["agent"] == "1001"
    for method, path in (
        ("GET", "/pbx/west/agents/1001"),
        ("POST", "/pbx/west/agents/1001/queues/sales/login"),
        ("POST", "/pbx/west/agents/1001/originate"),
    ):
        status, doc = await two.stack.api(method, path, {"number": "0911"}, token=east["token"])
        assert status == 404 and doc["error"]["code"] == "unknown_pbx", (path, doc)
    # no PBX is named default: the unprefixed routes say how to address one
    status, doc = await two.stack.api("GET", "/agents/1001")
    assert status == 404 and doc["error"]["code"] == "unknown_pbx" and "/pbx/{pbx}" in doc["error"]["message"]
    status, doc = await two.stack.api("GET", "/pbx/north/queues")
    assert status == 404 and doc["error"]["code"] == "unknown_pbx"


@pytest_twisted.ensureDeferred
async def test_one_link_down_only_its_agents_hear_it_and_its_health_is_503(two: TwoPbx) -> None:
    regs = {pbx: await register(two, pbx) for pbx in ("east", "west")}
    since = {}
    for pbx, reg in regs.items():
        events = await collect(two, reg["token"], None, lambda ev: of(ev, "queueCount"))
        since[pbx] = events[-1]["id"]
    for pbx in ("east", "west"):
        status, body = await two.stack.api("GET", f"/health/pbx/{pbx}", headers={"Authorization": ""})
        assert status == 200 and body["pbx"] == pbx and body["connected"] is True, body

    await two.stop_link("east")
    down = await collect(
        two, regs["east"]["token"], since["east"], lambda ev: of(ev, "pbxStatus", connected=False)
    )
    assert {e["pbx"] for e in down} == {"east"}
    status, body = await two.stack.api("GET", "/health/pbx/east")
    assert status == 503 and body["connected"] is False
    status, body = await two.stack.api("GET", "/health/pbx/west")
    assert status == 200 and body["connected"] is True
    status, body = await two.stack.api("GET", "/health")
    assert status == 503
    assert body["pbx"]["east"]["connected"] is False and body["pbx"]["west"]["connected"] is True
    # west's agent heard nothing of it
    assert not of(await drain(two, regs["west"]["token"], since["west"]), "pbxStatus")
    # a command to the PBX that is down: 503; the other PBX's still work
    status, body = await two.stack.api("POST", "/pbx/east/agents/1001/queues/sales/login", {})
    assert status == 503, body
    status, body = await two.stack.api("POST", "/pbx/west/agents/1001/queues/sales/login", {})
    assert status == 200, body

    await two.restore_link("east")
    up = await collect(
        two, regs["east"]["token"], down[-1]["id"], lambda ev: of(ev, "pbxStatus", connected=True), timeout=15
    )
    assert of(up, "pbxStatus", connected=True)
    status, _ = await two.stack.api("GET", "/health/pbx/east")
    assert status == 200
    assert not of(await drain(two, regs["west"]["token"], since["west"]), "pbxStatus")


@pytest_twisted.ensureDeferred
async def test_metrics_are_labelled_by_pbx(two: TwoPbx) -> None:
    await register(two, "east")
    status, text = await two.stack.api("GET", "/metrics")
    assert status == 200
    assert 'pbxis_pbx_up{pbx="east"} 1.0' in text and 'pbxis_pbx_up{pbx="west"} 1.0' in text
    assert 'pbxis_pbx_agents{pbx="east"} 1.0' in text and 'pbxis_pbx_agents{pbx="west"} 0.0' in text
    assert 'pbxis_pbx_rebuild_actions{pbx="west"}' in text
    assert 'pbxis_pbx_ami_events_total{pbx="east"}' in text


@pytest_twisted.ensureDeferred
async def test_sse_and_websocket_clients_read_their_own_pbxs_log(two: TwoPbx) -> None:
    """The stream transports over several hubs (pbxis.hub.hubs.HubSet): a token opens
    its own PBX's log on SSE and WebSocket alike, and an unknown token is still a 404."""
    from twisted.internet import reactor
    from twisted.web.client import HTTPConnectionPool

    from tests.reliability.rel_helpers import Recorder, open_sse, open_ws

    east, west = await register(two, "east"), await register(two, "west")
    pool = HTTPConnectionPool(reactor, persistent=False)
    sse_rec, ws_rec = Recorder(), Recorder()
    status, sse = await open_sse(two.stack.base_url, east["token"], sse_rec, pool)
    assert status == 200 and sse is not None
    ws = await open_ws(two.service.http_port, west["token"], ws_rec)
    try:
        await sse_rec.until(lambda: bool(of(sse_rec.events, "queueCount")))
        await ws_rec.until(lambda: bool(of(ws_rec.events, "queueCount")))
        two.sims["west"].customer_call("sales", number="0944000004", talk_time=0.2)
        status, _ = await two.stack.api("POST", "/pbx/west/agents/1001/queues/sales/login", {})
        assert status == 200
        await ws_rec.until(lambda: bool(of(ws_rec.events, "phoneNumber", number="0944000004")), 15)
        assert {e["pbx"] for e in sse_rec.events} == {"east"}
        assert {e["pbx"] for e in ws_rec.events} == {"west"}
        assert not of(sse_rec.events, "phoneNumber")
        status, _ = await open_sse(two.stack.base_url, "no-such-token-0123456789", Recorder(), pool)
        assert status == 404
    finally:
        await sse.stop()
        await ws.stop()
        await pool.closeCachedConnections()
