"""The hub's contract, driven with a Clock: no reactor, no sockets."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from pbxis.events import AgentEvent
from pbxis.hub import CHUNK, Hub, LogEntry, Registration, RegistrationEnded, Subscription
from tests.support.streams import StreamRecorder

GRACE = 30.0


class Snapshots:
    """A stand-in tracker: the state of an agent is one extension status and one count."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, agent: str) -> list[AgentEvent]:
        self.calls.append(agent)
        return [
            AgentEvent(agent, "extensionStatus", 0, {"status": "not_inuse"}),
            AgentEvent(agent, "queueCount", 0, {"queue": "sales", "count": 0}),
        ]


class Client(StreamRecorder):
    """Records what a subscription delivers and how it ends (``ended``: the reasons)."""

    def __init__(self, hub: Hub, registration: Registration, transport: str = "test") -> None:
        super().__init__(transport)
        self.hub = hub
        self.registration = registration
        self.transport = transport
        self.sub: Subscription | None = None
        self.pause_after: int | None = None

    def connect(self, since: int | None = None, **kwargs: Any) -> Client:
        self.sub = self.hub.subscribe(
            self.registration, since, self.transport, self.deliver, self.ended.append, **kwargs
        )
        self.sub.resumeProducing()
        return self

    def deliver(self, batch: list[LogEntry]) -> None:
        self.events.extend(entry.json for entry in batch)
        if self.pause_after is not None and len(self.events) >= self.pause_after:
            assert self.sub is not None
            self.sub.pauseProducing()

    def disconnect(self) -> None:
        assert self.sub is not None
        self.sub.stopProducing()


def live(agent: str, n: int, start: int = 0) -> list[AgentEvent]:
    return [AgentEvent(agent, "queueCount", 1, {"queue": "q", "count": start + i}) for i in range(n)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def snapshots() -> Snapshots:
    return Snapshots()


@pytest.fixture
def hub(clock: Clock, snapshots: Snapshots) -> Hub:
    return Hub(clock, grace_period=GRACE, snapshot=snapshots, max_log=1000, snapshot_window=0)


def counts(client: Client) -> list[int]:
    return [e["count"] for e in client.events if e["type"] == "queueCount" and e["queue"] == "q"]


def test_new_client_gets_snapshot_then_live_events(hub: Hub) -> None:
    reg = hub.register("1001", ["sales"], "Alice")
    c = Client(hub, reg).connect()
    assert c.types == ["extensionStatus", "queueCount"]
    assert c.ids == [1, 2]
    hub.publish(live("1001", 3))
    assert c.ids == [1, 2, 3, 4, 5]
    assert counts(c) == [0, 1, 2]
    assert c.events[2] == {"id": 3, "type": "queueCount", "agent": "1001", "time": 1,
                           "queue": "q", "count": 0}  # fmt: skip


def test_subscription_starts_paused_until_the_transport_resumes_it(hub: Hub) -> None:
    reg = hub.register("1001", [])
    got: list[LogEntry] = []
    sub = hub.subscribe(reg, None, "test", got.extend, lambda reason: None)
    assert got == [] and sub.paused
    sub.resumeProducing()
    assert [e.id for e in got] == [1, 2]


def test_events_of_unregistered_agents_are_dropped(hub: Hub) -> None:
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect()
    hub.publish(live("2002", 2) + live("1001", 1))
    assert c.ids == [1, 2, 3]
    assert hub.stats()["events_published"] == 1


def test_every_client_of_an_agent_gets_the_full_stream(hub: Hub) -> None:
    reg = hub.register("1001", [])
    a = Client(hub, reg).connect()
    hub.publish(live("1001", 1))
    b = Client(hub, reg).connect()
    hub.publish(live("1001", 2, start=1))
    # b's snapshot (ids 4, 5) is absolute state: a sees it too, in the same numbering.
    assert a.ids == [1, 2, 3, 4, 5, 6, 7]
    assert b.ids == [4, 5, 6, 7]
    assert a.events[3:] == b.events


def test_resume_gets_exactly_the_missed_events(hub: Hub, clock: Clock) -> None:
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect()
    hub.publish(live("1001", 2))
    seen = c.last_id
    c.disconnect()
    hub.publish(live("1001", 3, start=2))
    clock.advance(GRACE - 1)
    again = Client(hub, reg).connect(since=seen)
    assert again.ids == [5, 6, 7]
    assert counts(again) == [2, 3, 4]
    hub.publish(live("1001", 1, start=5))
    assert again.ids == [5, 6, 7, 8]


def test_resume_at_the_last_id_gets_nothing_old_and_no_snapshot(hub: Hub, snapshots: Snapshots) -> None:
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect()
    c.disconnect()
    again = Client(hub, reg).connect(since=c.last_id)
    assert again.events == []
    assert snapshots.calls == ["1001"]


@pytest.mark.parametrize("since", [0, None])
def test_since_zero_is_a_new_client(hub: Hub, since: int | None) -> None:
    reg = hub.register("1001", [])
    hub.publish(live("1001", 3))  # logged before anyone listened; not the state
    c = Client(hub, reg).connect(since=since)
    assert c.types == ["extensionStatus", "queueCount"]
    assert c.ids == [4, 5]


def test_replay_from_the_future_gets_reset_and_snapshot(hub: Hub) -> None:
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect(since=500)  # e.g. ids from before a daemon restart
    assert c.types == ["reset", "extensionStatus", "queueCount"]
    assert c.ids == [1, 2, 3]


def test_replay_of_a_trimmed_id_gets_reset_and_snapshot(hub: Hub, clock: Clock) -> None:
    reg = hub.register("1001", [])
    a = Client(hub, reg).connect()
    hub.publish(live("1001", 5))
    clock.advance(GRACE + 1)
    hub.publish(live("1001", 1, start=5))  # trimming happens as the log grows
    assert hub.stats()["log_sizes"]["1001"] == 1
    b = Client(hub, reg).connect(since=3)
    assert b.types == ["reset", "extensionStatus", "queueCount"]
    assert b.ids == [9, 10, 11]
    assert a.ids[-3:] == [9, 10, 11]


def test_retention_keeps_what_an_absent_client_may_ask_for(hub: Hub, clock: Clock) -> None:
    reg = hub.register("1001", [])
    fast = Client(hub, reg).connect()
    slow = Client(hub, reg).connect()
    assert slow.sub is not None
    slow.sub.pauseProducing()  # its socket is full
    hub.publish(live("1001", 10))  # fast has all ten at once; slow none
    clock.advance(GRACE - 1)
    slow.disconnect()
    left_at = slow.last_id
    clock.advance(GRACE - 1)  # the ten were handed to fast long ago...
    hub.publish(live("1001", 1, start=10))  # ...yet trimming spares slow's cursor
    back = Client(hub, reg).connect(since=left_at)
    assert back.ids == list(range(left_at + 1, fast.last_id + 1))
    assert "reset" not in back.types


def test_lost_in_flight_events_are_kept_for_the_grace_period(hub: Hub, clock: Clock) -> None:
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect()
    hub.publish(live("1001", 5))
    c.disconnect()
    clock.advance(GRACE / 2)
    other = Client(hub, reg).connect()  # keeps the registration alive
    clock.advance(GRACE / 2 - 1)
    hub.publish(live("1001", 1, start=5))
    # the client really saw only id 3: ids 4.. were on the wire when it dropped
    back = Client(hub, reg).connect(since=3)
    assert back.ids[0] == 4 and "reset" not in back.types
    assert back.ids == list(range(4, other.last_id + 1))


def test_log_is_trimmed_once_everybody_has_it_and_grace_passed(hub: Hub, clock: Clock) -> None:
    reg = hub.register("1001", [])
    Client(hub, reg).connect()
    hub.publish(live("1001", 50))
    assert hub.stats()["log_sizes"]["1001"] == 52
    clock.advance(GRACE)
    hub.publish(live("1001", 1))
    assert hub.stats()["log_sizes"]["1001"] == 1


def test_grace_expiry_ends_the_registration(hub: Hub, clock: Clock) -> None:
    expired: list[str] = []
    hub.on_expired = expired.append
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect()
    c.disconnect()
    clock.advance(GRACE - 0.1)
    assert expired == [] and hub.by_token(reg.token) is reg
    clock.advance(0.1)
    assert expired == ["1001"]
    assert hub.get("1001") is None and hub.by_token(reg.token) is None
    with pytest.raises(RegistrationEnded):
        hub.subscribe(reg, c.last_id, "test", lambda b: None, lambda r: None)
    assert clock.getDelayedCalls() == []


def test_grace_starts_at_registration(hub: Hub, clock: Clock) -> None:
    expired: list[str] = []
    hub.on_expired = expired.append
    hub.register("1001", [])
    clock.advance(GRACE)
    assert expired == ["1001"]


def test_a_connected_client_keeps_the_registration(hub: Hub, clock: Clock) -> None:
    expired: list[str] = []
    hub.on_expired = expired.append
    reg = hub.register("1001", [])
    clock.advance(GRACE - 1)
    c = Client(hub, reg).connect()
    clock.advance(GRACE * 10)
    assert expired == []
    c.disconnect()
    clock.advance(GRACE - 1)
    Client(hub, reg).connect(since=c.last_id).disconnect()  # came back in time
    clock.advance(GRACE - 1)
    assert expired == []
    clock.advance(1)
    assert expired == ["1001"]


def test_a_failing_on_expired_does_not_break_the_clock(hub: Hub, clock: Clock) -> None:
    def boom(agent: str) -> None:
        raise RuntimeError(agent)

    hub.on_expired = boom
    hub.register("1001", [])
    clock.advance(GRACE)
    assert hub.get("1001") is None


def test_unregister_sends_closed_then_ends_the_streams(hub: Hub) -> None:
    reg = hub.register("1001", [])
    a = Client(hub, reg).connect()
    b = Client(hub, reg).connect()
    assert hub.unregister("1001") is True
    for c in (a, b):
        assert c.events[-1]["type"] == "closed"
        assert c.events[-1]["reason"] == "unregistered"
        assert c.ended == ["unregistered"]
    assert hub.by_token(reg.token) is None
    assert hub.unregister("1001") is False
    assert hub.stats()["clients"] == {}


def test_reregistering_keeps_the_token_and_updates_queues_and_name(hub: Hub) -> None:
    reg = hub.register("1001", ["sales"], "Alice")
    again = hub.register("1001", ["sales", "support"], "Alice B")
    assert again is reg and again.token == reg.token
    assert again.queues == ("sales", "support") and again.name == "Alice B"


def test_tokens_are_long_random_and_exact(hub: Hub) -> None:
    a = hub.register("1001", [])
    b = hub.register("1002", [])
    assert a.token != b.token and len(a.token) >= 22  # >= 128 bits of url-safe base64
    assert hub.by_token(a.token) is a
    assert hub.by_token(a.token[:-1]) is None
    assert hub.by_token(a.token + "x") is None
    assert hub.by_token("") is None
    assert hub.by_token("\udcff") is None


def test_backlog_is_delivered_in_chunks_and_stops_when_paused(hub: Hub) -> None:
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect()
    assert c.sub is not None
    c.sub.pauseProducing()
    hub.publish(live("1001", 3 * CHUNK))
    assert len(c.events) == 2
    c.pause_after = 2 + CHUNK
    c.sub.resumeProducing()
    assert len(c.events) == 2 + CHUNK
    c.pause_after = None
    c.sub.resumeProducing()
    assert c.ids == list(range(1, 3 + 3 * CHUNK))


def test_a_stuck_client_is_ended_and_the_log_stays_bounded(clock: Clock) -> None:
    hub = Hub(clock, grace_period=GRACE, snapshot=Snapshots(), max_log=100)
    reg = hub.register("1001", [])
    fast = Client(hub, reg).connect()
    stuck = Client(hub, reg).connect()
    assert stuck.sub is not None
    stuck.sub.pauseProducing()
    for i in range(30):
        hub.publish(live("1001", 10, start=10 * i))
        assert hub.stats()["log_sizes"]["1001"] <= 100
    assert stuck.ended == ["overflow"] and fast.ended == []
    assert counts(fast) == list(range(300))
    back = Client(hub, reg).connect(since=stuck.last_id)
    assert back.types == ["reset", "extensionStatus", "queueCount"]


def test_backlog_bytes_bound_ends_a_paused_client(hub: Hub) -> None:
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect(max_backlog_bytes=2000)
    assert c.sub is not None
    c.sub.pauseProducing()
    hub.publish(live("1001", 5))
    assert c.ended == []
    hub.publish(live("1001", 50))
    assert c.ended == ["overflow"]
    assert hub.stats()["clients"] == {}


def test_close_all_ends_every_stream_and_every_timer(hub: Hub, clock: Clock) -> None:
    reg = hub.register("1001", [])
    hub.register("1002", [])
    c = Client(hub, reg).connect()
    hub.close_all()
    assert c.ended == ["shutdown"]
    assert clock.getDelayedCalls() == []
    with pytest.raises(RegistrationEnded):
        hub.subscribe(reg, None, "test", lambda b: None, lambda r: None)


def test_stats(hub: Hub) -> None:
    reg = hub.register("1001", [])
    hub.register("1002", [])
    Client(hub, reg, "sse").connect()
    Client(hub, reg, "sse").connect()
    Client(hub, reg, "ws").connect()
    hub.publish(live("1001", 2))
    stats = hub.stats()
    assert stats["agents"] == 2
    assert stats["clients"] == {"sse": 2, "ws": 1}
    assert stats["events_published"] == 2
    assert stats["log_sizes"] == {"1001": 8, "1002": 0}


def test_stopping_a_subscription_twice_is_harmless(hub: Hub, clock: Clock) -> None:
    reg = hub.register("1001", [])
    c = Client(hub, reg).connect()
    c.disconnect()
    c.disconnect()
    assert hub.stats()["clients"] == {}
    assert len(clock.getDelayedCalls()) == 1


def test_a_reader_that_unregisters_inside_its_deliver_still_gets_closed_last(hub: Hub) -> None:
    """A library sink that ends the registration from its own callback (hang up on the
    first event it sees) was handed the rest of its batch and never ``closed``: the hub
    skipped the pump of a reader already inside ``deliver``."""
    reg = hub.register("1001", [])
    other = Client(hub, reg).connect()
    seen: list[dict[str, Any]] = []
    ended: list[str] = []

    def deliver(batch: list[LogEntry]) -> None:
        for entry in batch:
            seen.append(entry.json)
            if len(seen) == 1:
                hub.unregister("1001")

    hub.publish([AgentEvent("1001", "extensionStatus", 1, {"status": "inuse"})] * 3)
    sub = hub.subscribe(reg, 0, "sink", deliver, ended.append)
    sub.resumeProducing()
    assert seen[-1]["type"] == "closed" and seen[-1]["reason"] == "unregistered"
    ids = [e["id"] for e in seen]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "in order, exactly once"
    assert ended == ["unregistered"]
    assert other.events[-1]["type"] == "closed" and other.ended == ["unregistered"]
    assert not sub.active and hub.stats()["clients"] == {}
