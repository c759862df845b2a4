"""End to end: the daemon in demo mode, its simulator, real HTTP — what a CRM and a browser see."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from tests.support.stack import API_KEY, Stack


async def poll(stack: Stack, token: str, since: int | None = None, timeout: float = 0) -> dict[str, Any]:
    resume = "" if since is None else f"since={since}&"
    status, body = await stack.api("GET", f"/stream/{token}/poll?{resume}timeout={timeout}", token=token)
    assert status == 200, body
    return body


async def collect(
    stack: Stack, token: str, since: int | None, until: Any, timeout: float = 8.0
) -> list[dict]:
    """Long-poll from ``since`` (``None``: as a new client) until ``until(events)`` holds."""
    seen: list[dict] = []
    deadline = stack.service.reactor.seconds() + timeout
    while not until(seen):
        if stack.service.reactor.seconds() > deadline:
            raise AssertionError(f"condition not met; events: {seen}")
        body = await poll(stack, token, since, timeout=1)
        seen.extend(body["events"])
        since = body["next"]
    return seen


def of(events: list[dict], type_: str, **fields: Any) -> list[dict]:
    return [e for e in events if e["type"] == type_ and all(e.get(k) == v for k, v in fields.items())]


@pytest_twisted.ensureDeferred
async def test_register_and_snapshot(stack: Stack) -> None:
    status, reg = await stack.api("PUT", "/agents/1001", {"queues": ["sales", "support"], "name": "Alice"})
    assert status == 200, reg
    assert reg["agent"] == "1001" and reg["queues"] == ["sales", "support"]
    assert len(reg["token"]) >= 22
    assert reg["streams"]["sse"].startswith("http://") and reg["streams"]["sse"].endswith("/sse")
    assert reg["streams"]["websocket"].startswith("ws://")
    body = await collect(stack, reg["token"], None, lambda ev: len(of(ev, "queueCount")) >= 2)
    assert of(body, "extensionStatus")
    assert {e["queue"] for e in of(body, "queueMemberStatus")} == {"sales", "support"}
    # Registering again keeps the token.
    status, again = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]})
    assert status == 200 and again["token"] == reg["token"] and again["queues"] == ["sales"]


@pytest_twisted.ensureDeferred
async def test_agent_day_through_the_api(stack: Stack) -> None:
    """Login, pause with a reason, unpause, a queue call, click-to-call, logoff: each shows in the stream."""
    _, reg = await stack.api("PUT", "/agents/1002", {"queues": ["support"], "name": "Bob"})
    token = reg["token"]
    first = await collect(stack, token, None, lambda ev: of(ev, "queueCount"))
    since = first[-1]["id"]

    status, body = await stack.api("POST", "/agents/1002/queues/support/login", {"memberName": "Bob"})
    assert status == 200, body
    events = await collect(stack, token, since, lambda ev: of(ev, "queueMemberStatus", loggedIn=True))
    since = events[-1]["id"]
    status, body = await stack.api("POST", "/agents/1002/queues/support/login", {})
    assert status == 409 and body["error"]["code"]

    status, _ = await stack.api("POST", "/agents/1002/queues/support/pause", {"reason": "lunch"}, token=token)
    assert status == 200
    events = await collect(stack, token, since, lambda ev: of(ev, "queueMemberStatus", paused=True))
    assert of(events, "queueMemberStatus", paused=True)[-1]["pausedReason"] == "lunch"
    since = events[-1]["id"]
    status, _ = await stack.api("POST", "/agents/1002/queues/support/unpause", token=token)
    assert status == 200
    events = await collect(stack, token, since, lambda ev: of(ev, "queueMemberStatus", paused=False))
    since = events[-1]["id"]

    stack.simulator.customer_call("support", number="385911234567", name="Customer", talk_time=0.5)
    events = await collect(stack, token, since, lambda ev: of(ev, "agentComplete"), timeout=15)
    rang = of(events, "phoneNumber", number="385911234567")
    assert rang and rang[0]["direction"] == "in" and rang[0]["queue"] == "support"
    done = of(events, "agentComplete")[0]
    assert done["queue"] == "support" and done["reason"] in ("caller", "agent")
    assert isinstance(done["talkTime"], int)
    assert of(events, "phoneNumber", number=None)
    since = events[-1]["id"]

    status, body = await stack.api("POST", "/agents/1002/originate", {"number": "0911234567"}, token=token)
    assert status == 202 and body["actionId"]
    events = await collect(stack, token, since, lambda ev: of(ev, "phoneNumber", number="0911234567"))
    assert of(events, "phoneNumber", number="0911234567")[0]["direction"] == "out"

    status, _ = await stack.api("POST", "/agents/1002/queues/support/logoff")
    assert status == 200
    status, body = await stack.api("POST", "/agents/1002/queues/support/logoff")
    assert status == 409


@pytest_twisted.ensureDeferred
async def test_originate_to_busy_phone_fails_on_the_stream(stack: Stack) -> None:
    _, reg = await stack.api("PUT", "/agents/1003", {"queues": ["sales"]})
    token = reg["token"]
    first = await collect(stack, token, None, lambda ev: of(ev, "queueCount"))
    stack.simulator.set_phone("1003", "busy")
    status, body = await stack.api("POST", "/agents/1003/originate", {"number": "0911234567"}, token=token)
    assert status == 202
    events = await collect(stack, token, first[-1]["id"], lambda ev: of(ev, "originateFailed"))
    failed = of(events, "originateFailed")[0]
    assert failed == {**failed, "actionId": body["actionId"], "number": "0911234567", "reason": "busy"}


@pytest_twisted.ensureDeferred
async def test_header_injection_is_refused(stack: Stack) -> None:
    _, reg = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]})
    evil = "123\r\nAction: Command\r\nCommand: core stop now"
    status, body = await stack.api("POST", "/agents/1001/originate", {"number": evil}, token=reg["token"])
    assert status == 400 and body["error"]["code"]
    status, body = await stack.api("POST", "/agents/1001/queues/sales/pause", {"reason": evil})
    assert status == 400


@pytest_twisted.ensureDeferred
async def test_api_key_required_when_configured(secured_stack: Stack) -> None:
    stack = secured_stack
    status, body = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]}, token="wrong-key-wrong-key")
    assert status == 401 and body["error"]["code"]
    status, reg = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]}, token=API_KEY)
    assert status == 200
    _, other = await stack.api("PUT", "/agents/1002", {"queues": ["sales"]}, token=API_KEY)
    # A stream token acts for its own agent only.
    status, _ = await stack.api("POST", "/agents/1002/queues/sales/pause", {}, token=reg["token"])
    assert status == 403
    status, _ = await stack.api("GET", f"/stream/{other['token']}/poll?timeout=0", token=reg["token"])
    assert status in (200, 403)  # the URL's token itself authorizes the stream
    status, _ = await stack.api("GET", "/health", token=None, headers={"Authorization": ""})
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_health_and_link_loss(stack: Stack) -> None:
    status, body = await stack.api("GET", "/health")
    assert status == 200, body
    _, reg = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]})
    token = reg["token"]
    first = await collect(stack, token, None, lambda ev: of(ev, "queueCount"))
    stack.simulator.drop_connections()
    events = await collect(
        stack, token, first[-1]["id"], lambda ev: of(ev, "pbxStatus", connected=True), timeout=10
    )
    flips = [e["connected"] for e in of(events, "pbxStatus")]
    assert flips == [False, True]
    status, _ = await stack.api("GET", "/health")
    assert status == 200
