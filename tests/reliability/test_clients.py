"""Browsers coming and going by the thousand, and pbxis itself restarting under them."""

from __future__ import annotations

import gc

import pytest
import pytest_twisted
from conftest import start_fast
from rel_helpers import DEADLINE, LagMonitor, Recorder, object_count, open_sse, open_ws, poll_once
from twisted.internet import defer, reactor
from twisted.web.client import HTTPConnectionPool

from pbxis.testing import Stack, stop_stack

TARGET_CYCLES = 2000
CYCLE_DEADLINE = 90.0  # seconds; about 12 on an idle 2-core machine


async def churn(
    stack: Stack, token: str, since: int, kind: str, pool: object, done: list[int], target: int
) -> int:
    """Connect, read, disconnect, again, until the clients together made ``target`` cycles.

    Counting cycles rather than seconds keeps the test's work the same on a slow or busy
    machine; ``CYCLE_DEADLINE`` only bounds a run that stopped making progress.
    """
    cycles = 0
    deadline = reactor.seconds() + CYCLE_DEADLINE
    while done[0] < target and reactor.seconds() < deadline:
        rec = Recorder(kind)
        if kind == "sse":
            status, client = await open_sse(stack.base_url, token, rec, pool, since=since)
            assert status == 200 and client is not None
            await client.stop()
        elif kind == "ws":
            ws = await open_ws(stack.service.http_port, token, rec, since=since)
            assert ws.protocol is not None
            await ws.stop()
        else:
            status, body = await poll_once(stack.base_url, token, since, 0, pool)
            assert status == 200 and body["next"] == since, body
        assert not rec.of("reset")
        cycles += 1
        done[0] += 1
    return cycles


async def quiet(stack: Stack) -> None:
    await stack.wait_for(lambda: not any(stack.service.hub.stats()["clients"].values()), 5, "no clients")


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_thousands_of_connect_disconnect_cycles_leak_nothing_and_never_block() -> None:
    stack = await start_fast()
    pool = HTTPConnectionPool(reactor, persistent=False)
    monitor = LagMonitor()
    try:
        status, reg = await stack.api("PUT", "/agents/1001", {"queues": ["sales", "support"]})
        assert status == 200, reg
        token = reg["token"]
        _, first = await poll_once(stack.base_url, token, None, 0, pool)
        since = first["next"]

        async def round_(target: int) -> int:
            done = [0]
            counts = await defer.gatherResults(
                [
                    defer.ensureDeferred(churn(stack, token, since, kind, pool, done, target))
                    for kind in ("sse", "ws", "poll") * 3
                ]
            )
            await quiet(stack)
            await pool.closeCachedConnections()
            return sum(counts)

        await round_(150)  # warm up: imports, caches, first-use allocations
        baseline = object_count()
        # A full collection walks every object of the process, and this one holds pytest,
        # hypothesis and the clients too: freeze that long-lived heap, as a daemon would
        # after start, so the monitor measures pbxis and not the size of the test runner.
        gc.freeze()
        monitor.start()
        cycles = await round_(TARGET_CYCLES)
        monitor.stop()
        after = object_count()
        assert cycles >= TARGET_CYCLES, f"{cycles} cycles in {CYCLE_DEADLINE} s: connections stalled"
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
