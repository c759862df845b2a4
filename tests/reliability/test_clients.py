"""Browsers coming and going by the thousand, and pbxis itself restarting under them."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, utils
from twisted.web.client import HTTPConnectionPool

from tests.reliability.rel_helpers import (
    DEADLINE,
    LagMonitor,
    Recorder,
    object_count,
    open_sse,
    open_ws,
    poll_once,
)
from tests.reliability.rel_stack import start_fast
from tests.support.stack import Stack, stop_stack

TARGET_CYCLES = 2000
CYCLE_DEADLINE = 90.0  # seconds; about 12 on an idle 2-core machine
CHURN_CLIENT = Path(__file__).with_name("churn_client.py")


async def churn(stack: Stack, token: str, since: int, target: int) -> dict[str, Any]:
    """``target`` connect/resume/disconnect cycles from a separate process (churn_client.py).

    Counting cycles rather than seconds keeps the work the same on a slow or busy
    machine; ``CYCLE_DEADLINE`` only bounds a run that stopped making progress.
    """
    argv = [stack.base_url, stack.service.http_port, token, since, target, CYCLE_DEADLINE]
    out, err, code = await utils.getProcessOutputAndValue(
        sys.executable,
        [str(CHURN_CLIENT), *map(str, argv)],
        env=dict(os.environ),
        path=str(CHURN_CLIENT.parent),
    )
    assert code == 0, err.decode(errors="replace")
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    assert report["errors"] == [], report
    return report


async def quiet(stack: Stack) -> None:
    await stack.wait_for(lambda: not any(stack.service.hub.stats()["clients"].values()), 5, "no clients")


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_thousands_of_connect_disconnect_cycles_leak_nothing_and_never_block() -> None:
    """The clients run in their own process: what is measured here is pbxis alone."""
    stack = await start_fast()
    pool = HTTPConnectionPool(reactor, persistent=False)
    monitor = LagMonitor()
    try:
        status, reg = await stack.api("PUT", "/agents/1001", {"queues": ["sales", "support"]})
        assert status == 200, reg
        token = reg["token"]
        _, first = await poll_once(stack.base_url, token, None, 0, pool)
        await pool.closeCachedConnections()
        since = first["next"]

        await churn(stack, token, since, 150)  # warm up: imports, caches, first-use allocations
        await quiet(stack)
        # A full collection walks every object of the process, and this one holds pytest
        # and hypothesis too: freeze that long-lived heap, as the daemon does after start,
        # so that the monitor measures pbxis and the count below holds only what the
        # churn left behind.
        object_count()
        gc.freeze()
        baseline = object_count()
        monitor.start()
        report = await churn(stack, token, since, TARGET_CYCLES)
        await quiet(stack)
        monitor.stop()
        after = object_count()
        cycles = sum(report["cycles"].values())
        assert cycles >= TARGET_CYCLES, f"{report} in {CYCLE_DEADLINE} s: connections stalled"
        assert all(report["cycles"].values()), report  # every transport took part
        # Per-connection garbage would be thousands of objects; allow a little noise.
        assert after - baseline < 1000, (baseline, after, cycles)
        assert monitor.worst < 0.05, monitor
        hub = stack.service.hub
        assert hub.stats()["log_sizes"]["1001"] == first["next"]  # nothing appended by resumes
    finally:
        monitor.stop()
        gc.unfreeze()
        await stop_stack(stack)
        await pool.closeCachedConnections()


@pytest_twisted.ensureDeferred
async def test_pbxis_restart_ends_every_stream_and_old_tokens_are_refused() -> None:
    stack = await start_fast()
    pool = HTTPConnectionPool(reactor, persistent=False)
    try:
        _, reg = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]})
        token = reg["token"]
        sse_rec, ws_rec = Recorder("sse"), Recorder("ws")
        _, sse = await open_sse(stack.base_url, token, sse_rec, pool)
        ws = await open_ws(stack.service.http_port, token, ws_rec)
        _, first = await poll_once(stack.base_url, token, None, 0, pool)
        waiting = defer.ensureDeferred(poll_once(stack.base_url, token, first["next"], 30, pool))
        await stack.wait_for(lambda: stack.service.hub.stats()["clients"].get("longPoll"), 5, "poller")
        await sse_rec.until(lambda: bool(sse_rec.events))
        await ws_rec.until(lambda: bool(ws_rec.events))
        started = reactor.seconds()
        await stop_stack(stack)
        # Every client ends promptly, with the documented ending.
        assert sse is not None
        await sse.lost.addTimeout(2, reactor)
        assert sse_rec.ended == ["ResponseDone"]  # the SSE response completed
        assert await ws.closed.addTimeout(2, reactor) == 1001  # going away
        status, body = await waiting.addTimeout(2, reactor)
        assert status == 200 and body == {"events": [], "next": first["next"]}
        assert reactor.seconds() - started < 2
    finally:
        await pool.closeCachedConnections()

    # The new daemon knows nobody: old token 404 / 4404, registering gives a new token.
    stack = await start_fast()
    try:
        status, body = await poll_once(stack.base_url, token, first["next"], 0, pool)
        assert status == 404 and body["error"]["code"] == "unknown_stream"
        rec = Recorder("old ws")
        ws = await open_ws(stack.service.http_port, token, rec)
        assert await ws.closed.addTimeout(DEADLINE, reactor) == 4404
        status, reg = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]})
        assert status == 200 and reg["token"] != token
        status, body = await poll_once(stack.base_url, reg["token"], None, 0, pool)
        assert status == 200 and body["events"]
    finally:
        await stop_stack(stack)
        await pool.closeCachedConnections()
