"""Call control end to end: the daemon, its simulated Asterisk 20, real HTTP and streams."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from tests.support.stack import Stack
from tests.test_stack import collect, of


async def register(stack: Stack, agent: str, *, login: bool) -> tuple[str, int]:
    status, reg = await stack.api("PUT", f"/agents/{agent}", {"queues": ["support"]})
    assert status == 200, reg
    first = await collect(stack, reg["token"], None, lambda ev: of(ev, "queueCount"))
    if login:
        status, body = await stack.api("POST", f"/agents/{agent}/queues/support/login", {})
        assert status == 200, body
    return reg["token"], first[-1]["id"]


async def answered_call(
    stack: Stack, token: str, since: int, number: str, talk: float = 30.0
) -> list[dict[str, Any]]:
    """A customer call to the support queue, until the agent's phone is in use."""
    stack.simulator.customer_call("support", number=number, name="Customer", talk_time=talk)
    return await collect(
        stack,
        token,
        since,
        lambda ev: of(ev, "phoneNumber", number=number) and of(ev, "extensionStatus", status="inuse"),
    )


@pytest_twisted.ensureDeferred
async def test_pause_recording_transfer_to_1002_and_hang_up(stack: Stack) -> None:
    alice, a_since = await register(stack, "1001", login=True)
    bob, b_since = await register(stack, "1002", login=False)
    events = await answered_call(stack, alice, a_since, "385911111111")
    a_since = events[-1]["id"]
    call = of(events, "phoneNumber", number="385911111111")[0]

    status, body = await stack.api("POST", "/agents/1001/recording/pause", token=alice)
    assert status == 200, body
    assert body["paused"] is True and body["recording"].endswith(".wav")
    status, body = await stack.api("POST", "/agents/1001/recording/resume", token=alice)
    assert status == 200 and body["paused"] is False
    events = await collect(stack, alice, a_since, lambda ev: len(of(ev, "recordingStatus")) == 2)
    paused, resumed = of(events, "recordingStatus")
    assert paused["paused"] is True and resumed["paused"] is False
    assert paused["uniqueId"] == call["uniqueId"] and paused["recording"] == body["recording"]
    assert [m for m in stack.simulator.history if m.event == "MixMonitorMute"][-1].get("State") == "0"
    a_since = events[-1]["id"]

    status, body = await stack.api("POST", "/agents/1001/transfer", {"to": "1002"}, token=alice)
    assert status == 202 and body["actionId"].startswith("transfer-"), body
    mine = await collect(stack, alice, a_since, lambda ev: of(ev, "phoneNumber", number=None))
    done = of(mine, "agentComplete")
    assert done and done[0]["reason"] == "transfer" and done[0]["recording"] == paused["recording"]
    theirs = await collect(stack, bob, b_since, lambda ev: of(ev, "extensionStatus", status="inuse"))
    rang = of(theirs, "phoneNumber", number="385911111111")
    assert rang and rang[0]["queue"] == "support" and rang[0]["uniqueId"] == call["uniqueId"]
    b_since = theirs[-1]["id"]

    status, body = await stack.api("POST", "/agents/1002/hangup", token=bob)
    assert status == 200, body
    ended = await collect(stack, bob, b_since, lambda ev: of(ev, "phoneNumber", number=None))
    assert of(ended, "phoneNumber", number=None)[0]["uniqueId"] == call["uniqueId"]

    for route in ("hangup", "recording/pause", "transfer"):
        status, body = await stack.api(
            "POST", f"/agents/1002/{route}", {"to": "1001"} if route == "transfer" else None, token=bob
        )
        assert status == 409 and body["error"]["code"] == "no_call", (route, body)


@pytest_twisted.ensureDeferred
async def test_a_transfer_to_a_busy_phone_reports_transfer_failed(stack: Stack) -> None:
    alice, since = await register(stack, "1001", login=True)
    events = await answered_call(stack, alice, since, "385912222222")
    since = events[-1]["id"]
    stack.simulator.set_phone("1002", "busy")
    status, body = await stack.api(
        "POST", "/agents/1001/transfer", {"to": "1002", "mode": "blind"}, token=alice
    )
    assert status == 202, body
    events = await collect(stack, alice, since, lambda ev: of(ev, "transferFailed"))
    failed = of(events, "transferFailed")[0]
    assert failed == {**failed, "actionId": body["actionId"], "to": "1002", "reason": "busy"}


@pytest_twisted.ensureDeferred
async def test_attended_transfer_completes_when_the_agent_hangs_up(stack: Stack) -> None:
    alice, a_since = await register(stack, "1001", login=True)
    bob, b_since = await register(stack, "1002", login=False)
    events = await answered_call(stack, alice, a_since, "385915555555")
    a_since = events[-1]["id"]
    caller = of(events, "phoneNumber", number="385915555555")[0]
    status, body = await stack.api(
        "POST", "/agents/1001/transfer", {"to": "1002", "mode": "attended"}, token=alice
    )
    assert status == 202, body
    # 1002 first talks to 1001 (the consultation), then gets the caller.
    consult = await collect(stack, bob, b_since, lambda ev: of(ev, "extensionStatus", status="inuse"))
    assert of(consult, "phoneNumber", number="1001")
    b_since = consult[-1]["id"]
    status, body = await stack.api("POST", "/agents/1001/hangup", token=alice)
    assert status == 200, body
    mine = await collect(stack, alice, a_since, lambda ev: of(ev, "phoneNumber", number=None))
    assert of(mine, "agentComplete")[0]["reason"] == "transfer"
    assert not of(mine, "transferFailed")
    theirs = await collect(stack, bob, b_since, lambda ev: of(ev, "phoneNumber", number="385915555555"))
    now = of(theirs, "phoneNumber", number="385915555555")[0]
    assert now["uniqueId"] == caller["uniqueId"] and now["queue"] == "support"
    status, body = await stack.api("POST", "/agents/1002/recording/pause", token=bob)
    assert status == 200 and body["recording"], body  # the caller's MixMonitor goes on
    status, _ = await stack.api("POST", "/agents/1002/hangup", token=bob)
    assert status == 200
    await collect(stack, bob, theirs[-1]["id"], lambda ev: of(ev, "phoneNumber", number=None))


@pytest_twisted.ensureDeferred
async def test_attended_transfer_fails_on_busy_and_can_be_cancelled(stack: Stack) -> None:
    alice, since = await register(stack, "1001", login=True)
    events = await answered_call(stack, alice, since, "385913333333")
    since = events[-1]["id"]
    stack.simulator.set_phone("1002", "busy")
    status, first = await stack.api(
        "POST", "/agents/1001/transfer", {"to": "1002", "mode": "attended"}, token=alice
    )
    assert status == 202, first
    events = await collect(stack, alice, since, lambda ev: of(ev, "transferFailed"))
    assert of(events, "transferFailed")[0]["reason"] == "busy"
    since = events[-1]["id"]

    stack.simulator.set_phone("1002", "no_answer")
    status, second = await stack.api(
        "POST", "/agents/1001/transfer", {"to": "1002", "mode": "attended"}, token=alice
    )
    assert status == 202
    await stack.wait_for(
        lambda: any(c.name.startswith("SIP/1002-") for c in stack.simulator.pbx.channels.values())
    )
    status, body = await stack.api("POST", "/agents/1001/transfer/cancel", token=alice)
    assert status == 200 and body == {"actionId": second["actionId"], "cancelled": True}
    events = await collect(stack, alice, since, lambda ev: of(ev, "transferFailed", reason="cancelled"))
    assert of(events, "transferFailed", reason="cancelled")[0]["actionId"] == second["actionId"]
    await stack.wait_for(
        lambda: not any(c.name.startswith("SIP/1002-") for c in stack.simulator.pbx.channels.values())
    )
    status, body = await stack.api("POST", "/agents/1001/transfer/cancel", token=alice)
    assert status == 409 and body["error"]["code"] == "no_transfer"


@pytest_twisted.ensureDeferred
async def test_a_supervisor_spies_through_the_spy_context(stack: Stack) -> None:
    alice, since = await register(stack, "1001", login=True)
    await answered_call(stack, alice, since, "385914444444")
    agent_channel = next(
        c.name for c in stack.simulator.pbx.channels.values() if c.name.startswith("SIP/1001-")
    )
    status, body = await stack.api("POST", "/agents/1001/spy", {"supervisor": "1003", "mode": "whisper"})
    assert status == 202 and body["actionId"].startswith("spy-"), body
    start = await stack.wait_for(
        lambda: [m for m in stack.simulator.history if m.event == "ChanSpyStart"],
        timeout=8,
        what="ChanSpyStart",
    )
    assert start[0].get("SpyeeChannel") == agent_channel
    assert start[0].get("SpyerChannel").startswith("SIP/1003-")
    spyer = stack.simulator.pbx.find_channel(start[0].get("SpyerChannel"))
    assert spyer is not None and spyer.app_data == f"{agent_channel},qwE"
    status, body = await stack.api("POST", "/agents/1001/spy", {"supervisor": "1003", "mode": "spy"})
    assert status == 400 and body["error"]["code"] == "invalid_field"


@pytest_twisted.ensureDeferred
async def test_bad_input_is_refused_before_asterisk(stack: Stack) -> None:
    alice, _ = await register(stack, "1001", login=True)
    for body in (
        {"to": "1002\r\nAction: Hangup"},
        {"to": ""},
        {"to": "1002", "mode": "warm"},
        {},
        {"to": 1002},
    ):
        status, answer = await stack.api("POST", "/agents/1001/transfer", body, token=alice)
        assert status == 400 and answer["error"]["code"] == "invalid_field", (body, answer)
    status, answer = await stack.api("POST", "/agents/1001/spy", {"supervisor": "10\n03"})
    assert status == 400
    status, answer = await stack.api("POST", "/agents/9999/hangup")
    assert status == 404 and answer["error"]["code"] == "unknown_agent"
    status, answer = await stack.api("POST", "/agents/1001/hangup", token=alice)
    assert status == 409 and answer["error"]["code"] == "no_call"


@pytest_twisted.ensureDeferred
async def test_spying_takes_the_crm_key_not_the_agent_token(secured_stack: Stack) -> None:
    status, reg = await secured_stack.api("PUT", "/agents/1001", {"queues": ["support"]})
    assert status == 200
    status, body = await secured_stack.api(
        "POST", "/agents/1001/spy", {"supervisor": "1003"}, token=reg["token"]
    )
    assert status == 403, body
    status, body = await secured_stack.api("POST", "/agents/1001/hangup", token=reg["token"])
    assert status == 409 and body["error"]["code"] == "no_call"  # its own call: the token may
