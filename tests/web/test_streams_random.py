"""Thousands of events while clients on all three transports drop and resume at random.

The same for an agent's stream and for a supervisor's (hub key ``supervisor:<name>``,
events from a real :class:`~pbxis.supervisors.QueueBoard`). Seeded, so a failure
replays. Each client resumes with the last id it really parsed
(whatever was in flight when its connection died is lost, as in a browser); at the end
every client must hold every event exactly once, in order.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor, task

from pbxis.ami.message import Message
from pbxis.events import AgentEvent
from pbxis.hub import Hub
from pbxis.supervisors import QueueBoard, supervisor_key
from tests.web.streams_helpers import EventLog, Server, live, open_sse, open_ws, snapshot, start_server

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


class Subject:
    """Whose stream: an agent (``live`` events) or a supervisor (a board's queueMember
    events, one per QueueMemberStatus whose CallsTaken moved on)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.board = QueueBoard(lambda interface: None)
        self.key = supervisor_key("boss") if kind == "supervisor" else "1001"
        if kind == "supervisor":
            self.board.register(self.key, ["q"], 0)

    def snapshot(self, key: str) -> list[AgentEvent]:
        return self.board.snapshot(key, 0) if self.kind == "supervisor" else snapshot(key)

    def live(self, n: int, start: int) -> list[AgentEvent]:
        if self.kind != "supervisor":
            return live(self.key, n, start=start)
        events: list[AgentEvent] = []
        for i in range(start, start + n):
            message = Message(
                {
                    "Event": "QueueMemberStatus",
                    "Queue": "q",
                    "Interface": "SIP/7",
                    "Status": "1",
                    "Paused": "0",
                    "CallsTaken": str(i),
                }
            )
            events.extend(e for e in self.board.handle(message, 1) if e.type == "queueMember")
        assert len(events) == n
        return events

    def counts(self, log: EventLog) -> list[int]:
        if self.kind != "supervisor":
            return log.counts()
        assert all(e["supervisor"] == "boss" for e in log.events)
        return [e["callsTaken"] for e in log.events if e["type"] == "queueMember"]


@pytest.mark.parametrize(("seed", "kind"), [(1, "agent"), (2, "agent"), (3, "supervisor")])
@pytest_twisted.ensureDeferred
async def test_random_drops_lose_nothing_and_duplicate_nothing(seed: int, kind: str) -> None:
    rng = random.Random(seed)
    subject = Subject(kind)
    hub = Hub(reactor, grace_period=60.0, snapshot=subject.snapshot)
    server = start_server(hub)
    reg = hub.register(subject.key, [])
    runners = [Runner(server, reg.token, kind) for kind in ("sse", "websocket", "longPoll") * 2]
    try:
        for runner in runners:
            await runner.connect()
            await runner.log.until(lambda r=runner: len(r.log.events) >= 2)  # the snapshot
        sent = 0
        for _ in range(400):
            n = rng.randint(1, 12)
            hub.publish(subject.live(n, start=sent))
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
        hub.publish(subject.live(1, start=sent))
        sent += 1
        for runner in runners:
            await runner.log.until(lambda r=runner: subject.counts(r.log)[-1:] == [sent - 1])

        assert sent > 2000
        last_id = hub._agents[subject.key].log.last_id
        for runner in runners:
            ids = runner.log.ids
            assert ids == list(range(ids[0], last_id + 1)), runner.kind
            assert subject.counts(runner.log) == list(range(sent)), runner.kind
            assert "reset" not in runner.log.types
        assert sum(r.connections for r in runners) > 3 * len(runners)
    finally:
        for runner in runners:
            if runner.log.connected:
                await runner.drop()
        await server.stop()
