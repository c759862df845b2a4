"""Thousands of events while clients on all three transports drop and resume at random.

Seeded, so a failure replays. Each client resumes with the last id it really parsed
(whatever was in flight when its connection died is lost, as in a browser); at the end
every client must hold every event exactly once, in order.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import pytest_twisted
import treq
from streams_helpers import EventLog, Server, live, open_sse, open_ws, snapshot, start_server
from twisted.internet import defer, reactor, task

from pbxis.hub import Hub

pytestmark = pytest.mark.timeout(60)


class Runner:
    """One simulated browser tab on one transport."""

    def __init__(self, server: Server, token: str, kind: str) -> None:
        self.server = server
        self.token = token
        self.kind = kind
        self.log = EventLog()
        self.connections = 0
        self._stop: Any = None
        self._poll_loop: defer.Deferred[None] | None = None

    @property
    def since(self) -> str:
        return "" if self.log.last_id is None else f"since={self.log.last_id}"

    async def connect(self) -> None:
        self.connections += 1
        if self.kind == "sse":
            headers = {} if self.log.last_id is None else {"Last-Event-ID": str(self.log.last_id)}
            _, client = await open_sse(self.server, self.token, self.log, headers=headers)
            self._stop = client.stop
        elif self.kind == "websocket":
            conn = await open_ws(self.server, self.token, self.log, self.since)
            self._stop = conn.stop
        else:
            self.log.connected = True
            self._poll_loop = defer.ensureDeferred(self._poll())

    async def _poll(self) -> None:
        while self.log.connected:
            query = "&".join(q for q in (self.since, "timeout=5") if q)
            request = treq.get(self.server.url(self.token, "poll", query), pool=self.server.pool)
            self._stop = request.cancel
            try:
                body = await treq.json_content(await request)
            except Exception:
                if self.log.connected:
                    raise
                return  # dropped: the answer in flight is lost (whatever stage it was in)
            for event in body["events"]:
                self.log.add(event)
            assert body["next"] == self.log.last_id

    async def drop(self) -> None:
        if self.kind == "longPoll":
            self.log.connected = False
            self._stop()
            assert self._poll_loop is not None
            await self._poll_loop
        else:
            await self._stop()


@pytest.mark.parametrize("seed", [1, 2])
@pytest_twisted.ensureDeferred
async def test_random_drops_lose_nothing_and_duplicate_nothing(seed: int) -> None:
    rng = random.Random(seed)
    hub = Hub(reactor, grace_period=60.0, snapshot=snapshot)
    server = start_server(hub)
    reg = hub.register("1001", [])
    runners = [Runner(server, reg.token, kind) for kind in ("sse", "websocket", "longPoll") * 2]
    try:
        for runner in runners:
            await runner.connect()
            await runner.log.until(lambda r=runner: len(r.log.events) >= 2)  # the snapshot
        sent = 0
        for _ in range(400):
            n = rng.randint(1, 12)
            hub.publish(live("1001", n, start=sent))
            sent += n
            runner = rng.choice(runners)
            if runner.log.connected and rng.random() < 0.15:
                await runner.drop()
            elif not runner.log.connected and rng.random() < 0.5:
                await runner.connect()
            if rng.random() < 0.5:
                await task.deferLater(reactor, 0, lambda: None)
        for runner in runners:
            if not runner.log.connected:
                await runner.connect()
        hub.publish(live("1001", 1, start=sent))
        sent += 1
        for runner in runners:
            await runner.log.until(lambda r=runner: r.log.counts()[-1:] == [sent - 1])

        assert sent > 2000
        last_id = hub._agents["1001"].log.last_id
        for runner in runners:
            ids = runner.log.ids
            assert ids == list(range(ids[0], last_id + 1)), runner.kind
            assert runner.log.counts() == list(range(sent)), runner.kind
            assert "reset" not in runner.log.types
        assert sum(r.connections for r in runners) > 3 * len(runners)
    finally:
        for runner in runners:
            if runner.log.connected:
                await runner.drop()
        await server.stop()
