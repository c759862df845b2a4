"""Any interleaving of publish, connect, resume, pause, drop and time: no loss, no dups.

Each simulated client checks, as events arrive, what a browser could check itself: ids
are consecutive within a connection, a resume continues right after the id it passed
(or starts with ``reset``), ``reset`` and a new connection are followed by exactly the
snapshot, and an id means the same event for every client. With a log large enough
(``STRICT``), a client that comes back within the grace period never gets ``reset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from twisted.internet.task import Clock

from pbxis.events import AgentEvent
from pbxis.hub import Hub, LogEntry, Subscription

GRACE = 10.0
SNAPSHOT_TYPES = ["extensionStatus", "queueCount"]
CLIENTS = 2


def snapshot(agent: str) -> list[AgentEvent]:
    return [AgentEvent(agent, t, 0, {"snapshot": True}) for t in SNAPSHOT_TYPES]


@dataclass
class ModelClient:
    sub: Subscription | None = None
    seen: list[tuple[int, float]] = field(default_factory=list)  # (id, clock when received)
    last_in_connection: int | None = None
    expect_first: int | None = None
    expect_types: list[str] = field(default_factory=list)
    left_at: float | None = None
    lost_to_overflow: bool = False
    ended: list[str] = field(default_factory=list)
    resets: int = 0
    #: id X -> when the events after X were lost in flight (a drop took them): the log
    #: keeps them for the grace period from *then*, not from the client's last drop.
    gap_since: dict[int, float] = field(default_factory=dict)

    @property
    def last_seen(self) -> int | None:
        return self.seen[-1][0] if self.seen else None


class HubMachine(RuleBasedStateMachine):
    MAX_LOG = 10_000
    STRICT = True

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.hub = Hub(self.clock, grace_period=GRACE, snapshot=snapshot, max_log=self.MAX_LOG)
        self.expired: list[str] = []
        self.hub.on_expired = self.expired.append
        self.clients = [ModelClient() for _ in range(CLIENTS)]
        self.counter = 0
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.registration = self.hub.register("a", [])
        self.texts: dict[int, str] = {}
        for c in self.clients:
            assert c.sub is None
            c.seen.clear()
            c.gap_since.clear()
            c.left_at = None

    # the client side

    def _deliver(self, client: ModelClient, batch: list[LogEntry]) -> None:
        assert client.sub is not None and client.sub.active
        for entry in batch:
            assert self.texts.setdefault(entry.id, entry.text) == entry.text
            if client.last_in_connection is None and client.expect_first is not None:
                if entry.type == "reset":
                    client.resets += 1
                    client.expect_types = list(SNAPSHOT_TYPES)
                else:
                    assert entry.id == client.expect_first, (entry.id, client.expect_first)
            elif client.last_in_connection is not None:
                assert entry.id == client.last_in_connection + 1
            if entry.type != "reset" and client.expect_types:
                assert entry.type == client.expect_types.pop(0)
            client.last_in_connection = entry.id
            client.gap_since.pop(entry.id - 1, None)  # the gap after entry.id - 1 is filled
            client.seen.append((entry.id, self.clock.seconds()))

    def _end(self, client: ModelClient, reason: str) -> None:
        client.ended.append(reason)
        assert reason in ("overflow", "unregistered", "expired")
        client.sub = None
        client.left_at = self.clock.seconds()
        client.lost_to_overflow = reason == "overflow"

    def _subscribe(self, i: int, since: int | None) -> None:
        client = self.clients[i]
        client.last_in_connection = None
        client.expect_first = None if since is None else since + 1
        client.expect_types = list(SNAPSHOT_TYPES) if since is None else []
        client.sub = self.hub.subscribe(
            self.registration,
            since,
            "model",
            lambda batch: self._deliver(client, batch),
            lambda reason: self._end(client, reason),
        )
        client.sub.resumeProducing()

    # rules

    @rule(n=st.integers(1, 30))
    def publish(self, n: int) -> None:
        events = []
        for _ in range(n):
            self.counter += 1
            events.append(AgentEvent("a", "queueCount", 0, {"n": self.counter}))
        self.hub.publish(events)

    @rule(i=st.integers(0, CLIENTS - 1))
    def connect_new(self, i: int) -> None:
        if self.clients[i].sub is None:
            self._subscribe(i, None)

    @rule(i=st.integers(0, CLIENTS - 1))
    def resume(self, i: int) -> None:
        client = self.clients[i]
        if client.sub is not None or client.last_seen is None:
            return
        resets = client.resets
        # Since when the client has missed the event after its last id: its last drop, or an
        # earlier one that took that event in flight (a later connection's events lost too
        # bring it back to an id whose successor it lost long ago).
        missed_since = client.gap_since.get(client.last_seen, client.left_at)
        within_grace = missed_since is not None and self.clock.seconds() - missed_since < GRACE
        self._subscribe(i, client.last_seen)
        if self.STRICT and within_grace and not client.lost_to_overflow:
            assert client.resets == resets, "a resume within the grace period was reset"
        client.lost_to_overflow = False

    @rule(i=st.integers(0, CLIENTS - 1), lose=st.integers(0, 3))
    def drop(self, i: int, lose: int) -> None:
        """The connection dies; events handed over this very instant may be lost."""
        client = self.clients[i]
        if client.sub is None:
            return
        client.sub.stopProducing()
        client.sub = None
        now = self.clock.seconds()
        client.left_at = now
        while lose and client.seen and client.seen[-1][1] == now:
            client.seen.pop()
            lose -= 1
            if client.last_seen is not None:
                client.gap_since.setdefault(client.last_seen, now)

    @rule(i=st.integers(0, CLIENTS - 1))
    def pause(self, i: int) -> None:
        if self.clients[i].sub is not None:
            self.clients[i].sub.pauseProducing()

    @rule(i=st.integers(0, CLIENTS - 1))
    def unpause(self, i: int) -> None:
        if self.clients[i].sub is not None:
            self.clients[i].sub.resumeProducing()

    @rule(dt=st.sampled_from([0.5, 3.0, 9.0, 12.0]))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)
        if self.hub.get("a") is None:  # expired: clients start over with a new token
            assert self.expired[-1] == "a"
            assert all(c.sub is None for c in self.clients)
            self._new_epoch()

    @precondition(lambda self: self.counter % 7 == 3)
    @rule()
    def unregister(self) -> None:
        connected = [c for c in self.clients if c.sub is not None and not c.sub.paused]
        assert self.hub.unregister("a")
        for c in connected:
            assert c.ended[-1] == "unregistered"
            assert self.texts[c.seen[-1][0]].find('"type":"closed"') > 0
        assert all(c.sub is None for c in self.clients)
        self._new_epoch()

    # invariants

    @invariant()
    def unpaused_clients_are_caught_up(self) -> None:
        state = self.hub._agents["a"]
        for c in self.clients:
            if c.sub is not None and not c.sub.paused:
                assert c.sub.cursor == state.log.last_id
                assert c.last_in_connection in (None, state.log.last_id)

    @invariant()
    def log_is_bounded(self) -> None:
        assert len(self.hub._agents["a"].log) <= self.MAX_LOG

    @invariant()
    def grace_timer_runs_exactly_when_nobody_is_connected(self) -> None:
        connected = any(c.sub is not None for c in self.clients)
        assert (self.hub._agents["a"].timer is None) == connected


class TightHubMachine(HubMachine):
    """A log so small that paused clients overflow: bounded, never a silent gap."""

    MAX_LOG = 40
    STRICT = False


HubMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TightHubMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestHub = HubMachine.TestCase
TestTightHub = TightHubMachine.TestCase
