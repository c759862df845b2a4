"""End to end on the daemon whose simulator plays Asterisk 22 with PJSIP endpoints.

The CRM's view does not change with the channel driver: the same API calls give the
same agent events; only the interfaces (``PJSIP/1002``) and what Asterisk sent differ.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_twisted

from tests.support.stack import Stack, start_stack, stop_stack
from tests.test_stack import collect, of


@pytest_twisted.async_yield_fixture
async def stack22() -> AsyncIterator[Stack]:
    s = await start_stack(simulator={"asterisk": "22"})
    try:
        yield s
    finally:
        await stop_stack(s)


@pytest_twisted.ensureDeferred
async def test_login_queue_call_and_click_to_call_on_pjsip(stack22: Stack) -> None:
    stack, sim = stack22, stack22.simulator
    _, reg = await stack.api("PUT", "/agents/1002", {"queues": ["support"], "name": "Bob"})
    token = reg["token"]
    first = await collect(stack, token, None, lambda ev: of(ev, "queueCount"))
    status, body = await stack.api("POST", "/agents/1002/queues/support/login", {"memberName": "Bob"})
    assert status == 200, body
    events = await collect(
        stack, token, first[-1]["id"], lambda ev: of(ev, "queueMemberStatus", loggedIn=True)
    )
    assert "PJSIP/1002" in sim.pbx.queues["support"].members

    sim.customer_call("support", number="385911234567", name="Customer", talk_time=0.5)
    events = await collect(stack, token, events[-1]["id"], lambda ev: of(ev, "agentComplete"), timeout=15)
    assert of(events, "phoneNumber", number="385911234567")[0]["queue"] == "support"
    assert of(events, "extensionStatus", status="ringing") and of(events, "phoneNumber", number=None)

    status, body = await stack.api("POST", "/agents/1002/originate", {"number": "0911234567"}, token=token)
    assert status == 202
    events = await collect(
        stack, token, events[-1]["id"], lambda ev: of(ev, "phoneNumber", number="0911234567")
    )
    assert of(events, "phoneNumber", number="0911234567")[0]["direction"] == "out"
    rang = [m for m in sim.history if m.event == "Newchannel" and m["Channel"].startswith("PJSIP/1002-")]
    assert rang, "the click-to-call rang PJSIP/1002"


@pytest_twisted.ensureDeferred
async def test_busy_pjsip_phone_is_busy_not_failed(stack22: Stack) -> None:
    """Asterisk 22 answers Reason 0: busy comes from the leg's DialEnd / Hangup Cause 17."""
    stack = stack22
    _, reg = await stack.api("PUT", "/agents/1003", {"queues": ["sales"]})
    token = reg["token"]
    first = await collect(stack, token, None, lambda ev: of(ev, "queueCount"))
    stack.simulator.set_phone("1003", "busy")
    status, body = await stack.api("POST", "/agents/1003/originate", {"number": "0911234567"}, token=token)
    assert status == 202
    events = await collect(stack, token, first[-1]["id"], lambda ev: of(ev, "originateFailed"))
    failed = of(events, "originateFailed")[0]
    assert (failed["reason"], failed["actionId"]) == ("busy", body["actionId"])
    assert not of(events, "extensionStatus", status="ringing")  # the phone never rang
    reasons = [m["Reason"] for m in stack.simulator.history if m.event == "OriginateResponse"]
    assert reasons == ["0"]
