"""Webhooks over real HTTP (treq) to a Twisted receiver on loopback that fails, stalls and recovers."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from pbxis.webhooks.config import WebhookConfig
from pbxis.webhooks.delivery import Webhooks, treq_post
from pbxis.webhooks.signing import decode_secret
from tests.support.stack import Stack, stack_config

from .receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = decode_secret(SECRET)
README = Path(__file__).resolve().parents[2] / "README.rst"


async def until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll until truthy. Generous: each retry backs off 1, 2, 4 s..., so a loaded machine
    that delays one step pushes the next delivery seconds later."""
    deadline = reactor.seconds() + timeout
    while not (value := predicate()):
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await task.deferLater(reactor, 0.02, lambda: None)
    return value


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(KEY)
    r.start()
    try:
        yield r
    finally:
        await r.stop()


def event(
    n: int, agent: str = "1001", type: str = "phoneNumber"
) -> tuple[str, str, list[str], int, int, str, str]:
    text = f'{{"id":{n},"type":"{type}","agent":"{agent}","time":0,"number":"09{n}"}}'
    return ("default", agent, ["sales"], 1700, n, type, text)


def got(receiver: Receiver) -> set[int]:
    """The event ids received so far: delivery is at least once (a retry may repeat one,
    e.g. a request the receiver took but whose answer our timeout cut), so counts would
    overshoot; the ids say what arrived."""
    return {int(r.event["id"]) for r in receiver.received}


@pytest_twisted.ensureDeferred
async def test_delivery_survives_failures_stalls_and_a_restart(receiver: Receiver) -> None:
    config = WebhookConfig(url=receiver.url, name="crm", key=KEY, timeout=0.5)
    hooks = Webhooks([config], reactor, treq_post(reactor))
    endpoint = hooks.endpoints[0]
    try:
        for n in (1, 2):
            hooks.offer(*event(n))
        await until(lambda: got(receiver) >= {1, 2}, what="two deliveries")

        receiver.mode = "fail"  # 503 + Retry-After: 1
        hooks.offer(*event(3))
        await until(lambda: endpoint.stats.retried >= 1, what="a retry after 503")
        receiver.mode = "ok"
        await until(lambda: 3 in got(receiver), what="delivery after the 503")

        receiver.mode = "stall"  # accepts, never answers: our timeout ends it
        hooks.offer(*event(4))
        hooks.offer(*event(5))
        await until(lambda: endpoint.stats.retried >= 2, what="a retry after the stall")
        receiver.mode = "ok"
        await until(lambda: got(receiver) >= {4, 5}, what="delivery after the stall")

        await receiver.stop()  # gone: connection refused
        hooks.offer(*event(6))
        await until(lambda: endpoint.stats.retried >= 3, what="a retry after refusal")
        receiver.start()  # back on the same port
        await until(lambda: 6 in got(receiver), what="delivery after the restart")
        await until(lambda: endpoint.stats.delivered == 6, what="the 2xx of the last delivery")
    finally:
        hooks.stop()

    numbers = [r.event["id"] for r in receiver.received]
    assert numbers == sorted(numbers)  # in order; a retry may repeat one (at least once)
    assert set(numbers) == {1, 2, 3, 4, 5, 6}
    assert receiver.ids()[0] == "default:1001:1700:1"
    assert endpoint.stats.delivered == 6 and endpoint.pending == 0 and endpoint.stats.given_up == 0


@pytest_twisted.ensureDeferred
async def test_an_event_signed_with_another_key_is_not_accepted(receiver: Receiver) -> None:
    config = WebhookConfig(url=receiver.url.replace("/hooks", "/hooks?x=1"), name="crm", key=b"w" * 32)
    hooks = Webhooks([config], reactor, treq_post(reactor))
    try:
        hooks.offer(*event(1))  # signed with another key: the receiver's verify fails -> 500
        await until(lambda: hooks.endpoints[0].stats.retried >= 1)
    finally:
        hooks.stop()
    assert receiver.received == []


@pytest_twisted.ensureDeferred
async def test_the_daemon_pushes_signed_call_events(receiver: Receiver) -> None:
    """From the demo: a queue call to 1002 reaches the receiver as phoneNumber and agentComplete."""
    from pbxis.service import PbxisService
    from pbxis.webhooks.config import parse_webhooks

    hooks = parse_webhooks([{"url": receiver.url, "secret": SECRET}], environ={})
    config = dataclasses.replace(stack_config(), webhooks=hooks)
    service = PbxisService(config, reactor)
    service.startService()
    stack = Stack(service, None)
    try:
        await stack.ready()
        status, _ = await stack.api("PUT", "/agents/1002", {"queues": ["support"]})
        assert status == 200
        status, _ = await stack.api("POST", "/agents/1002/queues/support/login", {})
        assert status == 200
        stack.simulator.customer_call("support", number="385911234567", name="Customer", talk_time=0.3)
        await until(
            lambda: any(r.event["type"] == "agentComplete" for r in receiver.received), 15, "agentComplete"
        )
        status, metrics = await stack.api("GET", "/metrics")
        assert re.search(r'pbxis_webhook_delivered_total\{endpoint="127.0.0.1:\d+"\} [1-9]', metrics)
        assert "pbxis_webhook_oldest_pending_seconds" in metrics
    finally:
        await defer.maybeDeferred(service.stopService)
    types = [r.event["type"] for r in receiver.received]
    assert types[0] == "phoneNumber" and "agentComplete" in types
    numbers = [r.event.get("number") for r in receiver.received if r.event["type"] == "phoneNumber"]
    assert numbers[0] == "385911234567" and numbers[-1] is None
    assert all(r.headers["webhook-id"].startswith("default:1002:") for r in receiver.received)


def readme_receiver() -> str:
    text = README.read_text("utf-8")
    match = re.search(r"\.\. webhook-receiver-begin\n\n.*?::\n\n(.*?)\n\.\. webhook-receiver-end", text, re.S)
    assert match, "README lost its webhook receiver example"
    code = "\n".join(line[4:] for line in match.group(1).splitlines())
    assert len(code.strip().splitlines()) <= 24
    return code


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_the_readme_receiver_verifies_and_prints_deliveries(tmp_path: Path) -> None:
    script = tmp_path / "webhook_receiver.py"
    script.write_text(readme_receiver())
    free = Receiver(KEY)
    free.start()
    port = free.number
    await free.stop()
    env = {**os.environ, "PBXIS_WEBHOOK_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    good = WebhookConfig(url=f"http://127.0.0.1:{port}/", name="good", key=KEY)
    forged = WebhookConfig(url=f"http://127.0.0.1:{port}/", name="forged", key=b"f" * 32)
    hooks = Webhooks([good, forged], reactor, treq_post(reactor))
    try:
        # Delivered once the script listens (connection refused until then: retried).
        hooks.offer(*event(1, type="phoneNumber"))
        hooks.offer(*event(2, type="agentComplete"))
        await until(lambda: hooks.endpoints[0].stats.delivered == 2, 15, "README receiver deliveries")
        await until(lambda: hooks.endpoints[1].stats.given_up == 2, 15, "forged deliveries refused (401)")
    finally:
        hooks.stop()
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    lines = out.decode().splitlines()
    assert len(lines) == 2 and "'phoneNumber'" in lines[0] and "'agentComplete'" in lines[1]
