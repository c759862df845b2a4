"""The agent page in Chromium against the whole daemon and its simulated Asterisk.

For each transport: a customer's number shows while the phone rings, then the call in
progress, then the completed call; a pause with a reason shows; and after pbxis drops
the connection the page resumes without losing an event.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from playwright.sync_api import expect

from tests.support.stack import Stack

from .conftest import Browser, on_reactor
from .proxy import DroppingProxy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TECHS = ["websocket", "sse", "long-poll"]
TRANSPORT_LABELS = {"websocket": "WebSocket", "sse": "Server-Sent Events", "long-poll": "long-poll"}
AGENT = "1001"


def open_page(page: Any, base_url: str, tech: str) -> None:
    """Open the page (it registers the agent itself: the API is open) and log in to sales."""
    page.goto(f"{base_url}/client/{tech}/{AGENT}?queues=sales")
    expect(page.locator("#link")).to_have_attribute("data-state", "connected")
    expect(page.locator("#transport")).to_have_text(TRANSPORT_LABELS[tech])
    row = page.locator('#queues tr[data-queue="sales"]')
    expect(row).to_be_visible()
    row.get_by_role("button", name="Log in").click()
    expect(row.locator(".member")).to_have_text("Logged in")


def seen_ids(page: Any) -> list[int]:
    return page.evaluate("() => window.pbxisPage.seen.slice()")


def assert_contiguous(ids: list[int]) -> None:
    assert ids, "no event delivered"
    assert ids == list(range(ids[0], ids[0] + len(ids))), f"lost or repeated events: {ids}"


@pytest.mark.parametrize("tech", TECHS)
@pytest_twisted.ensureDeferred
async def test_call_flow_and_pause(browser: Browser, stack: Stack, tech: str) -> None:
    sim = stack.simulator

    def script(page: Any) -> None:
        open_page(page, stack.base_url, tech)
        # The demo's phone rings for 2 s before answering: long enough to see the number.
        on_reactor(sim.customer_call, "sales", number="0911234567", name="Ana Customer", talk_time=1.0)
        expect(page.locator("#call-number")).to_have_text("0911234567")
        expect(page.locator("#call-name")).to_have_text("Ana Customer")
        expect(page.locator("#call-phase")).to_have_text("Ringing")
        expect(page.locator("#call-phase")).to_have_text("In progress")
        expect(page.locator("#extension")).to_have_attribute("data-status", "inuse")
        done = page.locator("#completed tr").first
        expect(done.locator(".caller")).to_have_text("0911234567 · Ana Customer")
        expect(page.locator("#no-call")).to_be_visible()
        assert done.locator(".talk").inner_text().startswith("0:0")

        page.fill("#pause-reason", "lunch")
        row = page.locator('#queues tr[data-queue="sales"]')
        row.get_by_role("button", name="Pause").click()
        expect(row.locator(".member")).to_have_text("Paused (lunch)")
        row.get_by_role("button", name="Unpause").click()
        expect(row.locator(".member")).to_have_text("Logged in")
        expect(page.locator("#transport")).to_have_text(TRANSPORT_LABELS[tech])
        assert_contiguous(seen_ids(page))

    await browser.run(script)


@pytest.mark.parametrize("tech", TECHS)
@pytest_twisted.ensureDeferred
async def test_resumes_after_the_server_drops_the_connection(
    browser: Browser, stack: Stack, tech: str
) -> None:
    proxy = DroppingProxy("127.0.0.1", stack.service.http_port)
    base_url = proxy.listen()

    async def drop_and_pause() -> None:
        proxy.refusing = True
        assert proxy.drop_all() > 0
        # Published while the page cannot reach pbxis: only a resume can deliver it.
        stack.simulator.queue_pause(f"SIP/{AGENT}", True, "sales", "coffee")
        await stack.wait_for(
            lambda: stack.service.tracker.agent_state(AGENT)["queues"]["sales"]["paused"],
            what="pause tracked",
        )
        proxy.refusing = False

    def script(page: Any) -> tuple[list[int], list[int], str]:
        open_page(page, base_url, tech)
        before = seen_ids(page)
        on_reactor(drop_and_pause)
        row = page.locator('#queues tr[data-queue="sales"]')
        expect(row.locator(".member")).to_have_text("Paused (coffee)")
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        expect(page.locator("#transport")).to_have_text(TRANSPORT_LABELS[tech])
        expect(page.locator("#last-id")).to_have_text(str(seen_ids(page)[-1]))
        token = page.evaluate(f"() => JSON.parse(sessionStorage.getItem('pbxis.token.{AGENT}')).token")
        return before, seen_ids(page), token

    try:
        before, after, token = await browser.run(script)
    finally:
        await proxy.stop()
    assert after[: len(before)] == before
    assert_contiguous(after)
    # What the page got after the drop is exactly what the log holds after its last id:
    # a resume, not a fresh start (which would have appended a new snapshot).
    status, body = await stack.api("GET", f"/stream/{token}/poll?since={before[-1]}&timeout=0", token=token)
    assert status == 200, body
    logged = [e for e in body["events"] if e["id"] <= after[-1]]
    assert [e["id"] for e in logged] == after[len(before) :]
    assert any(e["type"] == "queueMemberStatus" and e["pausedReason"] == "coffee" for e in logged)
    assert not any(e["type"] == "extensionStatus" for e in logged), logged


@pytest_twisted.ensureDeferred
async def test_with_api_keys_the_page_needs_a_token(browser: Browser, secured_stack: Stack) -> None:
    stack = secured_stack
    status, reg = await stack.api("PUT", f"/agents/{AGENT}", {"queues": ["sales"]})
    assert status == 200, reg

    def script(page: Any) -> str:
        page.goto(f"{stack.base_url}/client/sse/{AGENT}")
        expect(page.locator("#notice")).to_contain_text("needs a stream token")
        page.goto(f"{stack.base_url}/client/sse/{AGENT}?token={reg['token']}")
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        expect(page.locator('#queues tr[data-queue="sales"]')).to_be_visible()
        expect(page.locator("#notice")).to_be_hidden()
        return page.url

    url = await browser.run(script)
    assert reg["token"] not in url and url.endswith(f"/client/sse/{AGENT}")


@pytest_twisted.ensureDeferred
async def test_shows_when_the_pbx_link_is_down(browser: Browser, stack: Stack) -> None:
    sim = stack.simulator

    def link_down() -> None:
        sim.stall(True)  # the reconnection will not get through until stall(False)
        sim.drop_connections()

    def script(page: Any) -> None:
        page.goto(f"{stack.base_url}/client/sse/{AGENT}?queues=sales")
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        on_reactor(link_down)
        expect(page.locator("#link")).to_have_attribute("data-state", "pbx-down")
        expect(page.locator("#link-text")).to_have_text("PBX link down")
        on_reactor(sim.stall, False)
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        expect(page.locator("#events")).to_contain_text("PBX connected")

    await browser.run(script)
