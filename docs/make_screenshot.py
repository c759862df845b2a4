"""Take docs/screenshot.png: the agent page mid-call, on demo data.

Runs the daemon in demo mode in-process (random load off, so the picture is the same
each time), drives a completed call, a pause reason and a live call with a caller
waiting, and photographs the page with headless Chromium::

    python docs/make_screenshot.py [output.png]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, task, threads

from pbxis.config import parse_config
from pbxis.service import PbxisService

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for tests.support
from tests.support.chromium import CHROMIUM_ARGS

AGENT = "1001"


def shoot(reactor: Any, service: PbxisService, output: Path) -> None:
    """The browser side, in a worker thread; reaches the simulator through the reactor."""
    from playwright.sync_api import expect, sync_playwright

    sim = service.simulator_service.simulator  # type: ignore[union-attr]

    def on_reactor(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return threads.blockingCallFromThread(reactor, fn, *args, **kwargs)

    base = f"http://127.0.0.1:{service.http_port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=list(CHROMIUM_ARGS)
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1000}, device_scale_factor=1)
        page.set_default_timeout(15_000)
        page.goto(f"{base}/client/websocket/{AGENT}?queues=sales,support")
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        for queue in ("sales", "support"):
            row = page.locator(f'#queues tr[data-queue="{queue}"]')
            expect(row).to_be_visible()
            if row.get_by_role("button", name="Log in").count():  # the demo may have logged them in
                row.get_by_role("button", name="Log in").click()
            expect(row.get_by_role("button", name="Log off")).to_be_visible()

        on_reactor(sim.customer_call, "sales", number="+385915550142", name="Marko Horvat", talk_time=1.0)
        expect(page.locator("#completed tr .caller").first).to_contain_text("Marko Horvat")

        page.fill("#dial-number", "0800123")
        on_reactor(sim.set_number, "0800123", "busy")
        page.get_by_role("button", name="Call").click()
        expect(page.locator("#failures li").first).to_contain_text("0800123")

        support = page.locator('#queues tr[data-queue="support"]')
        page.fill("#pause-reason", "back office")
        support.get_by_role("button", name="Pause").click()
        expect(support.locator(".member")).to_contain_text("back office")

        on_reactor(sim.customer_call, "sales", number="+442079460958", name="Alice Jones", talk_time=120.0)
        expect(page.locator("#call-phase")).to_have_text("In progress")
        on_reactor(sim.customer_call, "sales", number="+4930901820", name="Jonas Weber", talk_time=60.0)
        expect(page.locator('#queues tr[data-queue="sales"] .count')).to_have_text("1")
        page.fill("#dial-number", "")
        page.fill("#pause-reason", "")
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        expect(page.locator("#call-timer")).to_have_text(re.compile(r"0:0[3-9]"))
        page.screenshot(path=str(output), full_page=True)
        browser.close()


async def main(reactor: Any, output: Path) -> None:
    config = parse_config(
        {
            "http": {"listen": "tcp:0:interface=127.0.0.1"},
            "simulator": {"enabled": True, "calls_per_minute": 0.0, "seed": 1},
        }
    )
    service = PbxisService(config, reactor)
    service.startService()
    try:
        for _ in range(500):
            if service.ami.connected and service.sync.ready:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        await threads.deferToThread(shoot, reactor, service, output)
    finally:
        await defer.maybeDeferred(service.stopService)
    print(f"wrote {output}")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("screenshot.png")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, target)))
