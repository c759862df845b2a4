"""Take docs/wallboard.png: a supervisor's wallboard for sales and support, on demo data.

Runs the daemon in demo mode in-process (random load off, so the picture is the same
each time), registers a supervisor, drives answered calls, an abandon, a pause with a
reason, callers waiting past the thresholds, and photographs the page::

    python docs/make_wallboard_screenshot.py [output.png]
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from twisted.internet import defer, task, threads

from pbxis.config import parse_config
from pbxis.service import PbxisService

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for tests.support
from tests.support.chromium import CHROMIUM_ARGS


def shoot(reactor: Any, service: PbxisService, output: Path) -> None:
    """The browser side, in a worker thread; reaches the simulator through the reactor."""
    from playwright.sync_api import expect, sync_playwright

    sim = service.simulator_service.simulator  # type: ignore[union-attr]

    def on_reactor(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return threads.blockingCallFromThread(reactor, fn, *args, **kwargs)

    def wait(seconds: float) -> None:
        on_reactor(task.deferLater, reactor, seconds, lambda: None)

    base = f"http://127.0.0.1:{service.http_port}"
    request = urllib.request.Request(
        f"{base}/supervisors/floor",
        data=json.dumps({"queues": ["sales", "support"], "name": "Floor"}).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request) as answer:
        token = json.load(answer)["token"]

    # A morning so far: answered calls in both queues, one caller who gave up.
    for number, name in (("+385915550142", "Marko Horvat"), ("+385915550177", "Ivana Kovač")):
        on_reactor(sim.customer_call, "sales", number=number, name=name, talk_time=9.0)
        wait(12.0)
    on_reactor(sim.customer_call, "support", number="+442079460958", name="Alice Jones", talk_time=7.0)
    wait(10.0)
    on_reactor(sim.queue_pause, "SIP/1003", True, "support", "Lunch")
    on_reactor(sim.queue_pause, "SIP/1002", True, "support", "Training")
    on_reactor(sim.queue_pause, "SIP/1001", True, "support", "Meeting")
    on_reactor(sim.customer_call, "support", number="+4930901820", name="Jonas Weber", hangup_after=1.0)
    wait(1.5)
    # Now: sales talking, support waiting.
    on_reactor(sim.customer_call, "sales", number="+33142685300", name="Claire Martin", talk_time=300.0)
    on_reactor(sim.customer_call, "support", number="+12025550143", name="Sam Lee", max_wait=600.0)
    wait(0.5)
    on_reactor(sim.customer_call, "support", number="+390612345678", name="Giulia Rossi", max_wait=600.0)

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=list(CHROMIUM_ARGS)
        )
        page = browser.new_page(viewport={"width": 1400, "height": 560}, device_scale_factor=1)
        page.set_default_timeout(15_000)
        page.goto(f"{base}/wallboard?token={token}&waitAmber=5&waitRed=10")
        expect(page.locator("#link")).to_have_attribute("data-state", "connected")
        support = page.locator('section.queue[data-queue="support"]')
        expect(support.locator(".callers li")).to_have_count(2)
        expect(support.locator('[data-tile="wait"]')).to_have_attribute("data-level", "red", timeout=15_000)
        page.wait_for_timeout(800)  # past the colour transition
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
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("wallboard.png")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, target)))
