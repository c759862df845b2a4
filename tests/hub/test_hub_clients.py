"""Issue #12 item 3: one token cannot slow everyone.

Each new client of an agent used to append a snapshot that every other client of the
agent received: N connects cost N snapshots to each of the others (O(N^2) in all).
Counted with a Clock: clients capped per registration, snapshots reused in a window.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from pbxis.events import AgentEvent
from pbxis.hub import Hub, TooManyClients
from tests.hub.test_hub_fanout import Client

GRACE = 30.0


def snapshot(agent: str) -> list[AgentEvent]:
    return [
        AgentEvent(agent, "extensionStatus", 0, {"status": "not_inuse"}),
        AgentEvent(agent, "queueMemberStatus", 0, {"queue": "sales", "status": "not_inuse"}),
        AgentEvent(agent, "queueCount", 0, {"queue": "sales", "count": 0}),
    ]


def phone(agent: str, n: int) -> AgentEvent:
    return AgentEvent(agent, "phoneNumber", 1, {"number": str(n)})


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_clients_per_registration_are_capped(clock: Clock) -> None:
    hub = Hub(clock, grace_period=GRACE, snapshot=snapshot, max_clients=5)
    reg = hub.register("1001", ["sales"])
    clients = [Client(hub, reg).connect() for _ in range(5)]
    with pytest.raises(TooManyClients):
        Client(hub, reg).connect()
    with pytest.raises(TooManyClients):
        Client(hub, reg).connect(since=clients[0].last_id)  # a resume counts as well
    clients[0].sub.stopProducing()
    Client(hub, reg).connect()  # a place was freed
    other = hub.register("1002", ["sales"])
    Client(hub, other).connect()  # the cap is per registration
    for _ in range(10):  # in-process listeners (the library's) are not held to it
        Client(hub, reg).connect(counted=False)
    with pytest.raises(TooManyClients):
        Client(hub, reg).connect()


def test_a_burst_of_new_clients_costs_the_others_one_snapshot(clock: Clock) -> None:
    """300 connects within the window: the first client receives one snapshot, not 300."""
    hub = Hub(clock, grace_period=GRACE, snapshot=snapshot, max_clients=1000, snapshot_window=1.0)
    reg = hub.register("1001", ["sales"])
    first = Client(hub, reg).connect()
    others = []
    for i in range(300):
        others.append(Client(hub, reg).connect())
        if i % 50 == 0:
            hub.publish([phone("1001", i)])
        clock.advance(0.001)
    assert len(first.events) == 3 + 6  # its snapshot and the six live events, nothing else
    assert len(hub.store.log("1001")) == 9  # type: ignore[arg-type]
    for c in others:
        # every new client still starts with the whole state, and resumes from any id it saw
        assert c.types[:3] == ["extensionStatus", "queueMemberStatus", "queueCount"]
        assert c.ids == list(range(c.ids[0], 10))
    assert hub.stats()["snapshots"] == 1


def test_a_new_client_after_the_window_gets_a_fresh_snapshot(clock: Clock) -> None:
    hub = Hub(clock, grace_period=GRACE, snapshot=snapshot, snapshot_window=1.0)
    reg = hub.register("1001", ["sales"])
    a = Client(hub, reg).connect()
    clock.advance(1.0)
    b = Client(hub, reg).connect()
    assert b.ids == [4, 5, 6] and a.ids == [1, 2, 3, 4, 5, 6]


def test_a_loop_of_resets_appends_one_reset_and_snapshot_per_window(clock: Clock) -> None:
    hub = Hub(clock, grace_period=GRACE, snapshot=snapshot, snapshot_window=1.0)
    reg = hub.register("1001", ["sales"])
    watcher = Client(hub, reg).connect()
    for _ in range(200):
        c = Client(hub, reg).connect(since=10_000)  # an id this log never had
        assert c.types == ["reset", "extensionStatus", "queueMemberStatus", "queueCount"]
        c.sub.stopProducing()
        clock.advance(0.001)
    assert watcher.types.count("reset") == 1
    # and a new client never sees a reset it did not ask for
    assert Client(hub, reg).connect().types == ["extensionStatus", "queueMemberStatus", "queueCount"]


def test_a_reused_snapshot_that_was_trimmed_is_not_reused(clock: Clock) -> None:
    hub = Hub(clock, grace_period=GRACE, snapshot=snapshot, snapshot_window=1.0, max_log=100)
    reg = hub.register("1001", ["sales"])
    Client(hub, reg).connect()
    hub.publish([phone("1001", n) for n in range(150)])  # the cap pushed the snapshot out
    late = Client(hub, reg).connect()
    assert late.types[:3] == ["extensionStatus", "queueMemberStatus", "queueCount"]
    assert late.ids[0] == 154
