"""The agent page in Chromium on the daemon whose simulator plays Asterisk 22 with PJSIP.

``[simulator] asterisk = "22"`` (what ``make demo CONFIG=docs/demo-pjsip22.toml``
runs): agents are ``PJSIP/<agent>``, a queue call shows ringing, in progress and
completed, a click-to-call rings ``PJSIP/1001`` and dials ``<number>@pstn``, and a
busy phone's failed originate (Reason 0 on 22) shows as busy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from playwright.sync_api import expect

from tests.support.stack import Stack, start_stack, stop_stack

from .conftest import Browser, on_reactor

pytestmark = [pytest.mark.browser, pytest.mark.slow]
AGENT = "1001"


@pytest_twisted.async_yield_fixture
async def stack22() -> AsyncIterator[Stack]:
    s = await start_stack(simulator={"asterisk": "22"})
    try:
        yield s
    finally:
        await stop_stack(s)


@pytest_twisted.ensureDeferred
async def test_queue_call_click_to_call_and_busy_on_pjsip(browser: Browser, stack22: Stack) -> None:
    sim = stack22.simulator
    assert sim.config.personality.tech == "PJSIP"
    assert stack22.service.tracker.interface_of(AGENT) == "PJSIP/1001"

    def script(page: Any) -> None:
        page.goto(f"{stack22.base_url}/client/sse/{AGENT}?queues=sales")
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        row = page.locator('#queues tr[data-queue="sales"]')
        row.get_by_role("button", name="Log in").click()
        expect(row.locator(".member")).to_have_text("Logged in")
        assert "PJSIP/1001" in on_reactor(lambda: list(sim.pbx.queues["sales"].members))

        on_reactor(sim.customer_call, "sales", number="0911234567", name="Ana Customer", talk_time=1.0)
        expect(page.locator("#call-number")).to_have_text("0911234567")
        expect(page.locator("#call-phase")).to_have_text("Ringing")
        expect(page.locator("#call-phase")).to_have_text("In progress")
        expect(page.locator("#extension")).to_have_attribute("data-status", "inuse")
        done = page.locator("#completed tr").first
        expect(done.locator(".caller")).to_have_text("0911234567 · Ana Customer")
        expect(page.locator("#no-call")).to_be_visible()

        page.fill("#dial-number", "0998887777")
        page.locator("#dial-form").evaluate("f => f.requestSubmit()")
        expect(page.locator("#call-number")).to_have_text("0998887777")
        expect(page.locator("#call-direction")).to_contain_text("ut")  # outgoing
        expect(page.locator("#call-phase")).to_have_text("In progress")
        expect(page.locator("#no-call")).to_be_visible(timeout=20_000)

        on_reactor(sim.set_phone, AGENT, "busy")
        page.fill("#dial-number", "0911111111")
        page.locator("#dial-form").evaluate("f => f.requestSubmit()")
        failure = page.locator("#failures li").first
        expect(failure).to_contain_text("0911111111")
        expect(failure.locator(".why")).to_have_text("busy")

    await browser.run(script)
    dials = [m for m in sim.history if m.event == "DialBegin" and m.get("DialString") == "0998887777@pstn"]
    assert dials and dials[0]["Channel"].startswith("PJSIP/1001-")
    busy = [m for m in sim.history if m.event == "OriginateResponse" and m.get("Response") == "Failure"]
    assert [m["Reason"] for m in busy] == ["0"]
