"""The wallboard in Chromium against the whole daemon and its simulated Asterisk.

A caller waits with a running timer (the tile turning amber, then red, at thresholds
given in the URL), is answered, and the counters move to what the simulated Asterisk's
QueueParams say; members show their state with colours.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import pytest_twisted
from playwright.sync_api import expect

from tests.support.stack import Stack

from .conftest import Browser, on_reactor

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("transport", ["websocket", "sse"])
@pytest_twisted.ensureDeferred
async def test_wallboard_caller_waits_is_answered_and_counters_move(
    browser: Browser, stack: Stack, transport: str
) -> None:
    sim = stack.simulator
    sim.queue_add("support", "SIP/1001", name="Alice", paused=True, reason="Briefing")
    status, reg = await stack.api("PUT", "/supervisors/boss", {"queues": ["support"]})
    assert status == 200, reg
    url = f"{stack.base_url}/wallboard?token={reg['token']}&transport={transport}&waitAmber=1&waitRed=3"

    def script(page: Any) -> dict[str, Any]:
        page.goto(url)
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        board = page.locator('section.queue[data-queue="support"]')
        expect(board.get_by_role("heading", name="support")).to_be_visible()
        member = board.locator(".members li").first
        expect(member).to_have_attribute("data-status", "paused")
        expect(member.locator(".state")).to_have_text("Paused (Briefing)")
        expect(board.locator('[data-stat="completed"]')).to_have_text("0")

        on_reactor(sim.customer_call, "support", number="385917777777", name="Carol", talk_time=0.5)
        caller = board.locator(".callers li").first
        expect(caller.locator(".who")).to_have_text("1. Carol 385917777777")
        expect(board.locator('[data-stat="waiting"]').first).to_have_text("1")
        timer = caller.locator(".timer")
        expect(timer).to_have_text(re.compile(r"^0:0[0-1]$"))
        expect(timer).to_have_text("0:02", timeout=5000)  # it runs, once a second
        wait_tile = board.locator('[data-tile="wait"]')
        expect(wait_tile).to_have_attribute("data-level", "amber")
        expect(wait_tile).to_have_attribute("data-level", "red", timeout=5000)
        expect(board).to_have_attribute("data-level", "red")

        on_reactor(sim.queue_pause, "SIP/1001", False, "support")
        expect(board.locator(".callers li.empty")).to_have_text("No one waiting")
        expect(wait_tile).to_have_attribute("data-level", "ok")
        expect(board.locator('[data-stat="completed"]')).to_have_text("1", timeout=8000)
        expect(member).to_have_attribute("data-status", "available")
        return {
            "completed": board.locator('[data-stat="completed"]').inner_text(),
            "abandoned": board.locator('[data-stat="abandoned"]').inner_text(),
            "holdTime": board.locator('[data-stat="holdTime"]').inner_text(),
        }

    shown = await browser.run(script)
    q = sim.pbx.queue("support")
    assert shown["completed"] == str(q.completed) == "1"
    assert shown["abandoned"] == str(q.abandoned)
    assert shown["holdTime"] == f"0:{q.holdtime:02d}"


@pytest_twisted.ensureDeferred
async def test_demo_wallboard_registers_itself_with_an_open_api(browser: Browser, stack: Stack) -> None:
    def script(page: Any) -> list[str]:
        page.goto(f"{stack.base_url}/client")
        page.get_by_role("link", name="sales and support").click()
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        expect(page.locator("section.queue")).to_have_count(2)
        expect(page.locator("#who")).to_have_text("wallboard")
        return page.locator("section.queue h2").all_inner_texts()

    assert [t.lower() for t in await browser.run(script)] == ["sales", "support"]
    assert stack.service.hub.get("supervisor:wallboard") is not None


@pytest_twisted.ensureDeferred
async def test_wallboard_without_or_with_a_bad_token_says_so(browser: Browser, stack: Stack) -> None:
    def script(page: Any) -> None:
        page.goto(f"{stack.base_url}/wallboard")
        expect(page.locator("#notice")).to_contain_text("?token=")
        page.goto(f"{stack.base_url}/wallboard?token=nope&transport=sse")
        expect(page.locator("#link")).to_have_attribute("data-state", "failed", timeout=10_000)

    await browser.run(script)
