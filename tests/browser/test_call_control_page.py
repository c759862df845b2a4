"""The agent page's call buttons in Chromium: pause and resume the recording, transfer to
1002, and hang up there; the events arrive on both agents' pages."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from playwright.sync_api import expect

from tests.support.stack import Stack

from .conftest import Browser, on_reactor

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_agent(page: Any, base_url: str, agent: str, *, login: bool) -> None:
    page.goto(f"{base_url}/client/sse/{agent}?queues=sales")
    expect(page.locator("#link")).to_have_attribute("data-state", "connected")
    row = page.locator('#queues tr[data-queue="sales"]')
    expect(row).to_be_visible()
    if login:
        row.get_by_role("button", name="Log in").click()
        expect(row.locator(".member")).to_have_text("Logged in")


@pytest_twisted.ensureDeferred
async def test_pause_recording_transfer_and_hang_up_from_the_page(browser: Browser, stack: Stack) -> None:
    sim = stack.simulator

    def script(page: Any) -> list[str]:
        bob = page.context.new_page()
        open_agent(bob, stack.base_url, "1002", login=False)
        open_agent(page, stack.base_url, "1001", login=True)
        on_reactor(sim.customer_call, "sales", number="0917654321", name="Ana Customer", talk_time=60.0)
        expect(page.locator("#call-phase")).to_have_text("In progress")

        page.get_by_role("button", name="Pause recording").click()
        expect(page.locator("#recording-state")).to_have_text("Recording paused")
        expect(page.locator("#recording-toggle")).to_have_attribute("aria-pressed", "true")
        page.get_by_role("button", name="Resume recording").click()
        expect(page.locator("#recording-state")).to_have_text("")
        expect(page.locator("#events")).to_contain_text("recording paused")

        page.fill("#transfer-to", "1002")
        page.get_by_role("button", name="Transfer", exact=True).click()
        expect(page.locator("#no-call")).to_be_visible()
        expect(page.locator("#completed tr").first.locator("td").nth(5)).to_have_text("transfer")
        expect(bob.locator("#call-number")).to_have_text("0917654321")
        expect(bob.locator("#call-phase")).to_have_text("In progress")
        expect(bob.locator("#call-queue")).to_have_text("Queue sales")

        bob.get_by_role("button", name="Hang up").click()
        expect(bob.locator("#no-call")).to_be_visible()
        return [t for t in page.evaluate("() => window.pbxisPage.client.state.completed.map(c => c.reason)")]

    reasons = await browser.run(script)
    assert reasons == ["transfer"]
    muted = [m.get("State") for m in sim.history if m.event == "MixMonitorMute"]
    assert muted == ["1", "0"]
