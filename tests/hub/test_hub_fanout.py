"""Issue #20: queue-level state costs O(1) per AMI event, not O(agents on the queue).

Counted, not timed: what the store wrote, what each log holds, what each client got.
Driven with a Clock (``clock.advance(0)`` is the end of a reactor turn).
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from pbxis.events import AgentEvent, QueueEvent
from pbxis.hub import Hub, HubStore, LogEntry, MemoryStore, Registration, RegistrationLog, StaleFence
from tests.support.streams import StreamRecorder

GRACE = 30.0


def snapshot(agent: str) -> list[AgentEvent]:
    return [AgentEvent(agent, "extensionStatus", 0, {"status": "not_inuse"})]


def count(queue: str, n: int, time: int = 5) -> QueueEvent:
    return QueueEvent(queue, "queueCount", time, {"queue": queue, "count": n})


def member(agent: str, queue: str = "sales") -> AgentEvent:
    return AgentEvent(agent, "queueMemberStatus", 7, {"queue": queue, "status": "inuse"})


class Client(StreamRecorder):
    def __init__(self, hub: Hub, registration: Registration) -> None:
        super().__init__()
        self.hub = hub
        self.registration = registration

    def connect(self, since: int | None = None, **kwargs: Any) -> Client:
        reg = self.registration
        self.sub = self.hub.subscribe(reg, since, "test", self.deliver, self.ended.append, **kwargs)
        self.sub.resumeProducing()
        return self

    def deliver(self, batch: list[LogEntry]) -> None:
        for entry in batch:
            self.add(entry.json)

    def counts(self, queue: str = "sales") -> list[int]:
        return [e["count"] for e in self.events if e["type"] == "queueCount" and e["queue"] == queue]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_hub(clock: Clock, **kwargs: Any) -> Hub:
    kwargs.setdefault("snapshot_window", 0)
    kwargs.setdefault("queue_tick", 0)
    return Hub(clock, grace_period=GRACE, snapshot=snapshot, **kwargs)


def test_a_queue_change_writes_nothing_to_the_logs_of_agents_without_clients(clock: Clock) -> None:
    hub = make_hub(clock)
    regs = [hub.register(str(1000 + i), ["sales", "support"]) for i in range(1000)]
    clients = [Client(hub, reg).connect() for reg in regs[:10]]
    before = hub.store.bytes_used()
    for n in range(1, 51):
        hub.publish([count("sales", n)])
    store = hub.store
    assert store.queue_state("sales", "queueCount").version == 50  # type: ignore[union-attr]
    # nothing appended anywhere yet: the states wait for the end of the turn
    assert hub.store.bytes_used() == before
    clock.advance(0)
    # one queueCount per listening agent (the latest: 50 changes coalesced), none elsewhere
    for c in clients:
        assert c.counts() == [50]
        agent = c.registration.agent
        assert c.events[-1] == {
            "id": 2, "type": "queueCount", "agent": agent, "time": 5, "queue": "sales", "count": 50,
        }  # fmt: skip
    assert {len(hub.store.log(r.agent)) for r in regs[10:]} == {0}  # type: ignore[arg-type]


def test_flushes_are_a_queue_tick_apart_under_a_flood(clock: Clock) -> None:
    hub = make_hub(clock, queue_tick=0.05)
    c = Client(hub, hub.register("1001", ["sales"])).connect()
    hub.publish([count("sales", 1)])
    clock.advance(0)
    assert c.counts() == [1]  # after a quiet spell: at the end of the turn
    for n in range(2, 200):
        hub.publish([count("sales", n)])
        clock.advance(0.001)  # a new reactor turn each time, within the tick
    assert len(c.counts()) <= 1 + 199 * 0.001 / 0.05 + 1
    clock.advance(0.05)
    assert c.counts()[-1] == 199  # the latest state always arrives


def test_a_state_that_came_back_between_two_flushes_is_no_change(clock: Clock) -> None:
    """0, 1, 0 within a tick (a caller joined and left) or the same count again (a rebuild
    after a link cut): the clients already have 0, so nothing is sent. Found by the link-cut
    reliability test in CI: ``queueCount 0`` repeated what the client had."""
    hub = make_hub(clock, queue_tick=0.05)
    c = Client(hub, hub.register("1001", ["sales"])).connect()
    hub.publish([count("sales", 0)])
    clock.advance(0)
    assert c.counts() == [0]
    hub.publish([count("sales", 1)])
    hub.publish([count("sales", 0, time=9)])  # same content, a later time
    clock.advance(0.05)
    hub.publish([count("sales", 0, time=11)])  # a rebuild says it again
    clock.advance(0.05)
    assert c.counts() == [0]
    hub.publish([count("sales", 2)])
    clock.advance(0.05)
    assert c.counts() == [0, 2]  # a real change still goes out
    assert [e["type"] for e in c.events].count("queueCount") == 2


def test_a_queue_state_is_logged_before_the_agents_next_event(clock: Clock) -> None:
    """Order holds without a client: what happened to the queue first is logged first."""
    hub = make_hub(clock)
    reg = hub.register("1001", ["sales"])
    c = Client(hub, reg).connect()
    c.sub.stopProducing()
    hub.publish([count("sales", 3)])
    hub.publish([member("1001")])
    back = Client(hub, reg).connect(since=c.last_id)
    assert back.types == ["queueCount", "queueMemberStatus"]
    assert back.ids == [2, 3] and back.counts() == [3]


def test_an_agent_back_from_absence_catches_up_once_with_the_latest_state(clock: Clock) -> None:
    hub = make_hub(clock)
    reg = hub.register("1001", ["sales", "support"])
    c = Client(hub, reg).connect()
    c.sub.stopProducing()
    for n in range(100):
        hub.publish([count("sales", n), count("support", 100 - n)])
        clock.advance(0)
    assert len(hub.store.log("1001")) == 1  # type: ignore[arg-type]
    back = Client(hub, reg).connect(since=c.last_id)
    assert back.ids == [2, 3]
    assert back.counts("sales") == [99] and back.counts("support") == [1]
    clock.advance(0)
    assert back.ids == [2, 3]  # and never again


def test_a_snapshot_carries_the_queue_versions(clock: Clock) -> None:
    """A snapshot shows the latest counts: the flush adds no duplicate after it."""
    queue_counts = {"sales": 0}

    def with_counts(agent: str) -> list[AgentEvent]:
        return [AgentEvent(agent, "queueCount", 0, {"queue": "sales", "count": queue_counts["sales"]})]

    hub = Hub(clock, grace_period=GRACE, snapshot=with_counts, snapshot_window=0, queue_tick=0)
    reg = hub.register("1001", ["sales"])
    queue_counts["sales"] = 4
    hub.publish([count("sales", 4)])
    c = Client(hub, reg).connect()
    clock.advance(0)
    assert c.counts() == [4]


def test_ids_stay_consecutive_and_every_client_gets_every_entry(clock: Clock) -> None:
    hub = make_hub(clock)
    reg = hub.register("1001", ["sales"])
    a, b = Client(hub, reg).connect(), Client(hub, reg).connect()
    for n in range(20):
        hub.publish([count("sales", n), member("1001")])
        if n % 3 == 0:
            clock.advance(0)
    clock.advance(0)
    assert a.ids == list(range(1, a.ids[-1] + 1))
    assert b.ids == [i for i in a.ids if i >= b.ids[0]]
    assert a.counts()[-1] == 19


def test_re_registration_moves_the_agent_between_queues(clock: Clock) -> None:
    hub = make_hub(clock)
    reg = hub.register("1001", ["sales"])
    c = Client(hub, reg).connect()
    hub.register("1001", ["support"])
    hub.publish([count("sales", 1), count("support", 2)])
    clock.advance(0)
    assert c.counts("sales") == [] and c.counts("support") == [2]


def test_all_logs_together_are_bounded_in_bytes(clock: Clock) -> None:
    limit = 1024 * 1024
    hub = make_hub(clock, max_log_bytes=limit, max_log=100_000)
    regs = [hub.register(str(1000 + i), ["sales"]) for i in range(50)]
    first = Client(hub, regs[0]).connect()
    first.sub.pauseProducing()  # a client that stopped reading: its log must be kept...
    pad = "x" * 500
    for _ in range(100):
        hub.publish([AgentEvent(r.agent, "phoneNumber", 1, {"number": pad}) for r in regs])
        assert hub.store.bytes_used() <= limit
    # ...until the byte limit takes what it needs: that client is ended, and resets on return
    assert first.ended == ["overflow"]
    back = Client(hub, regs[0]).connect(since=first.last_id)
    assert back.types[0] == "reset"


def test_the_byte_budget_is_returned_when_registrations_end(clock: Clock) -> None:
    hub = make_hub(clock)
    for i in range(10):
        reg = hub.register(str(i), ["sales"])
        Client(hub, reg).connect()
        hub.publish([member(str(i))] * 5)
    assert hub.store.bytes_used() > 0
    for i in range(10):
        hub.unregister(str(i))
    assert hub.store.bytes_used() == 0


def test_an_append_with_a_stale_fence_is_refused() -> None:
    store = MemoryStore()
    reg = Registration("1001", ("sales",), None, "t" * 43, 0)
    elog = store.add(reg)
    old = store.claim("1001")
    new = store.claim("1001")  # another writer took the registration over
    assert elog.append([member("1001")], 0.0, new) > 0
    with pytest.raises(StaleFence):
        elog.append([member("1001")], 0.0, old)
    assert elog.last_id == 1


def test_the_memory_store_implements_the_store_interface(clock: Clock) -> None:
    store: HubStore = MemoryStore(max_log=50, max_log_bytes=1024 * 1024)
    hub = make_hub(clock, store=store)
    assert hub.store is store
    reg = hub.register("1001", ["sales"])
    assert isinstance(store.log("1001"), RegistrationLog)
    assert store.by_token(reg.token) is reg and store.get("1001") is reg
    hub.publish([member("1001")] * 80)
    assert len(store.log("1001")) == 50  # type: ignore[arg-type]  # the store's own cap


def test_a_wall_clock_stepped_back_does_not_hold_queue_counts(clock: Clock) -> None:
    """Twisted's clock is the wall clock: after an NTP step back of an hour, the next
    flush was scheduled an hour (plus the tick) away, so every listening agent kept
    showing the last count it had before the step as final."""
    hub = make_hub(clock, queue_tick=0.2)
    c = Client(hub, hub.register("1001", ["sales"])).connect()
    clock.advance(10_000)
    hub.publish([count("sales", 1)])
    clock.advance(0)
    assert c.counts() == [1]
    clock.rightNow -= 3600  # the wall clock steps back
    hub.publish([count("sales", 2)])
    clock.advance(0.2)
    assert c.counts() == [1, 2]


def test_queue_states_are_kept_only_for_queues_someone_is_registered_on(clock: Clock) -> None:
    hub = make_hub(clock)
    reg = hub.register("1001", ["sales"])
    hub.publish([count("elsewhere", 3), count("sales", 1)])
    assert hub.store.queue_state("elsewhere", "queueCount") is None
    c = Client(hub, reg).connect()
    hub.register("1001", ["support"])  # nobody on sales now: its state goes
    assert hub.store.queue_state("sales", "queueCount") is None
    hub.register("1001", ["sales"])  # back: a new state must reach the log (versions never reused)
    hub.publish([count("sales", 2)])
    clock.advance(0)
    assert c.counts() == [2]
    hub.unregister("1001")
    assert hub.store.queue_state("sales", "queueCount") is None


def test_a_batch_is_one_delivery_per_client_in_the_events_order(clock: Clock) -> None:
    """Issue #20: the events of one AMI read are one publish; each client is handed what
    it concerns in one call (one socket write), and a queue change inside the batch
    stands between the agent's events before and after it."""
    hub = make_hub(clock)
    a, b = hub.register("1001", ["sales"]), hub.register("1002", ["sales"])
    ca, cb = Client(hub, a).connect(), Client(hub, b).connect()
    calls: list[int] = []
    real = ca.deliver
    ca.sub._deliver = lambda batch: (calls.append(len(batch)), real(batch))  # type: ignore[attr-defined]
    before = len(ca.events)
    hub.publish([member("1001"), member("1002"), count("sales", 3), member("1001"), member("1002")])
    assert calls == [3]  # member, queueCount 3, member: one delivery
    assert [e["type"] for e in ca.events[before:]] == ["queueMemberStatus", "queueCount", "queueMemberStatus"]
    assert [e["type"] for e in cb.events[-3:]] == ["queueMemberStatus", "queueCount", "queueMemberStatus"]
    assert ca.ids == list(range(ca.ids[0], ca.ids[0] + len(ca.ids)))  # consecutive
    clock.advance(0)
    assert ca.counts() == [3]  # the tick has nothing more to add


def test_stats_keep_client_counts_as_clients_come_and_go(clock: Clock) -> None:
    """stats() is O(1) in agents: its counts are kept, and must match the subscriptions."""
    hub = make_hub(clock)
    a, b = hub.register("1001", ["sales"]), hub.register("1002", ["sales"])
    noop: Any = lambda *_: None  # noqa: E731
    s1 = hub.subscribe(a, None, "sse", noop, noop)
    hub.subscribe(a, None, "websocket", noop, noop)
    hub.subscribe(b, None, "sse", noop, noop)
    assert hub.stats()["clients"] == {"sse": 2, "websocket": 1}
    s1.stopProducing()
    s1.stopProducing()  # twice: counted once
    assert hub.stats()["clients"] == {"sse": 1, "websocket": 1}
    hub.unregister("1001")
    assert hub.stats()["clients"] == {"sse": 1}
    sizes = hub.stats()["log_sizes"]
    assert dict(sizes) == {"1002": len(hub.store.log("1002"))}  # type: ignore[arg-type]
    hub.publish([member("1002")])
    assert sizes["1002"] == len(hub.store.log("1002"))  # type: ignore[arg-type]
    hub.close_all()
    assert hub.stats()["clients"] == {}
