"""Keep-alives: one shared timer spreading SSE comments and WebSocket pings over the interval."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from pbxis.web.streams._common import HEARTBEAT_TICK, Heartbeat
from tests.support.streams import WSClient
from tests.web.streams_helpers import EventLog, make_hub, open_ws, start_server

pytestmark = pytest.mark.timeout(30)


class Beater:
    def __init__(self, clock: Clock, fail: bool = False) -> None:
        self.clock = clock
        self.beats: list[float] = []
        self.fail = fail

    def beat(self) -> None:
        self.beats.append(self.clock.seconds())
        if self.fail:
            raise RuntimeError("broken stream")


def run(clock: Clock, seconds: float) -> None:
    for _ in range(round(seconds / HEARTBEAT_TICK)):
        clock.advance(HEARTBEAT_TICK)


def test_every_stream_beats_once_per_interval_and_the_work_is_spread() -> None:
    clock = Clock()
    heartbeat = Heartbeat(clock, 15.0)
    streams = [Beater(clock) for _ in range(600)]
    for stream in streams:
        heartbeat.add(stream)
    per_tick: dict[float, int] = {}
    run(clock, 45.0)
    for stream in streams:
        # first beat within one interval of joining, then exactly every interval
        assert 0 < stream.beats[0] <= 15.0
        assert [round(b - a, 6) for a, b in zip(stream.beats, stream.beats[1:], strict=False)] == [15.0, 15.0]
        for t in stream.beats:
            per_tick[t] = per_tick.get(t, 0) + 1
    # 600 streams over 60 ticks: 10 per tick, never all at once
    assert max(per_tick.values()) == 10


def test_removed_streams_stop_beating_and_the_timer_stops_with_the_last() -> None:
    clock = Clock()
    heartbeat = Heartbeat(clock, 1.0)
    a, b = Beater(clock), Beater(clock)
    heartbeat.add(a)
    heartbeat.add(b)
    run(clock, 1.0)
    heartbeat.remove(a)
    run(clock, 2.0)
    assert len(a.beats) == 1 and len(b.beats) == 3
    heartbeat.remove(b)
    heartbeat.remove(b)  # twice is harmless
    assert clock.getDelayedCalls() == []
    heartbeat.add(a)  # and it starts again
    run(clock, 1.0)
    assert len(a.beats) == 2


def test_a_failing_stream_does_not_stop_the_others() -> None:
    clock = Clock()
    heartbeat = Heartbeat(clock, HEARTBEAT_TICK)  # one group: both beat on every tick
    broken, fine = Beater(clock, fail=True), Beater(clock)
    heartbeat.add(broken)
    heartbeat.add(fine)
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        run(clock, 3 * HEARTBEAT_TICK)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert len(fine.beats) == 3 and len(broken.beats) == 3
    assert sum(1 for e in logged if e.get("log_failure") is not None) == 3
    heartbeat.remove(broken)
    heartbeat.remove(fine)


# WebSocket pings over real loopback sockets


PINGS = {"deaf": 0, "answering": 0}


class DeafClient(WSClient):
    """Receives pings and never answers them."""

    def onPing(self, payload: bytes) -> None:
        PINGS["deaf"] += 1
        self.recorder.changed()


class AnsweringClient(WSClient):
    def onPing(self, payload: bytes) -> None:
        PINGS["answering"] += 1
        super().onPing(payload)  # Autobahn's default: pong
        self.recorder.changed()


@pytest_twisted.ensureDeferred
async def test_a_peer_that_answers_pings_stays_and_one_that_does_not_is_dropped() -> None:
    PINGS.update(deaf=0, answering=0)
    hub = make_hub()
    server = start_server(hub, ws_ping_interval=0.1)
    reg = hub.register("1001", [])
    try:
        alive, deaf = EventLog(), EventLog()
        answering = await open_ws(server, reg.token, alive, client=AnsweringClient)
        silent = await open_ws(server, reg.token, deaf, client=DeafClient)
        code, _reason = await silent.closed
        assert code == 1006  # dropped without a close frame, after ignoring a ping
        assert PINGS["deaf"] == 1
        await alive.until(lambda: PINGS["answering"] >= 3)
        assert alive.connected
        await answering.stop()
    finally:
        await server.stop()
