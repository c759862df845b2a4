"""Several PBXes' leases spread over the live collectors (pbxis.store.redis_spread) on a
real redis-server. Each node is a Spread and one Lease per PBX on its own ``task.Clock``;
the clocks move in rounds of a third of ``lease_time`` (the ticks), while Redis's key
expiry (membership, leases) runs in real time, as on a deployment."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import reactor, task

from pbxis.store.redis_keys import NodeKeys, pbx_keys
from pbxis.store.redis_lease import Lease
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_spread import Spread

PBXES = ("p1", "p2", "p3", "p4")
LEASE = 1.0


class Node:
    """A collector as far as the leases go: a Spread and one lease per PBX."""

    def __init__(self, link: RedisLink, prefix: str, name: str) -> None:
        self.clock = task.Clock()
        self.spread = Spread(link, NodeKeys(prefix), name, self.clock, LEASE, PBXES)
        self.spread.on_surplus = self.hand_over
        self.leases: dict[str, Lease] = {}
        self.link, self.prefix, self.name = link, prefix, name
        self.handed: list[str] = []
        for pbx in PBXES:
            self.leases[pbx] = self._lease(pbx)

    def _lease(self, pbx: str) -> Lease:
        spread = self.spread
        return Lease(
            self.link, pbx_keys(self.prefix, pbx).collector, self.name, self.clock, LEASE,
            on_won=lambda: spread.won(pbx), may_take=lambda free: spread.may_take(pbx, free),
        )  # fmt: skip

    def hand_over(self, pbx: str) -> None:
        """What the daemon does (PbxisService._hand_over): let it go, stand by again."""
        self.handed.append(pbx)
        self.leases[pbx].stop()
        self.spread.released(pbx)
        self.leases[pbx] = self._lease(pbx)
        self.leases[pbx].start()

    def start(self) -> None:
        self.spread.start()
        for lease in self.leases.values():
            lease.start()

    def held(self) -> set[str]:
        return {pbx for pbx, lease in self.leases.items() if lease.valid()}

    def busy(self) -> bool:
        return self.spread._asking or any(lease._asking for lease in self.leases.values())

    def stop(self) -> None:
        for lease in self.leases.values():
            lease.stop()
        self.spread.stop()


async def rounds(nodes: list[Node], n: int, real: float = 0.0) -> None:
    """``n`` ticks on every live node's clock, each answered by Redis before the next."""
    for _ in range(n):
        for node in nodes:
            node.clock.advance(LEASE / 3)
        for _ in range(500):
            if not any(node.busy() for node in nodes):
                break
            await task.deferLater(reactor, 0.005, lambda: None)
        if real:
            await task.deferLater(reactor, real, lambda: None)


async def until(nodes: list[Node], predicate: Any, most: int = 40, real: float = 0.0) -> int:
    for i in range(most):
        if predicate():
            return i
        await rounds(nodes, 1, real)
    raise AssertionError(f"not reached: {[sorted(n.held()) for n in nodes]}")


@pytest_twisted.ensureDeferred
async def test_nodes_started_together_hold_two_each(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    a, b = Node(link, prefix, "a"), Node(second_link, prefix, "b")
    a.start()
    b.start()
    try:
        await until([a, b], lambda: len(a.held()) + len(b.held()) == 4)
        await until([a, b], lambda: len(a.held()) == len(b.held()) == 2)
        assert not a.held() & b.held()
        # and it stays so: nobody hands over or takes anything more
        await rounds([a, b], 6)
        assert len(a.held()) == len(b.held()) == 2
    finally:
        a.stop()
        b.stop()


@pytest_twisted.ensureDeferred
async def test_a_node_started_late_gets_its_share_handed_over(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    a = Node(link, prefix, "a")
    a.start()
    b = Node(second_link, prefix, "b")
    try:
        await until([a], lambda: len(a.held()) == 4)  # alone: it takes them all
        b.start()
        await until([a, b], lambda: len(a.held()) == len(b.held()) == 2)
        assert len(a.handed) == 2 and not b.handed
        assert not a.held() & b.held()
    finally:
        a.stop()
        b.stop()


@pytest_twisted.ensureDeferred
async def test_the_survivor_takes_a_dead_nodes_pbxes_at_its_first_look(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    a, b = Node(link, prefix, "a"), Node(second_link, prefix, "b")
    a.start()
    b.start()
    try:
        await until([a, b], lambda: len(a.held()) == len(b.held()) == 2)
        # b dies (kill -9): its clock stops, nothing of it is renewed, Redis lets it lapse
        b.clock = task.Clock()  # its timers never run again
        for lease in b.leases.values():
            lease._loop.stop()
        b.spread._loop.stop()
        # its membership lapses before its leases, so once they are free a takes all at once
        took = await until([a], lambda: len(a.held()) == 4, real=LEASE / 3)
        assert took <= 6  # within lease_time (3 ticks) and a tick or two more
    finally:
        a.stop()


def test_a_pbx_handed_over_and_taken_is_no_longer_held_back_when_its_taker_dies() -> None:
    """The giver leaves a PBX it handed over to the others for a while (HANDED_ROUNDS); once
    another node took it, that is over: when the taker dies at once, the giver takes it back
    at its first look, like any dead node's PBX (the takeover bound)."""
    import json

    spread = Spread(None, NodeKeys("x:"), "a", task.Clock(), LEASE, ["p1", "p2"])  # type: ignore[arg-type]

    def beat(*others: tuple[str, list[str]]) -> None:
        reply = ["a", json.dumps({"held": sorted(spread.held), "can": ["p1", "p2"]})]
        for name, held in others:
            reply += [name, json.dumps({"held": held, "can": ["p1", "p2"]})]
        spread._answered(reply)

    spread.won("p1")
    spread.won("p2")
    for _ in range(4):
        beat(("b", []))
    spread.released("p2")  # handed over to b
    assert not spread.may_take("p2", 1)  # b's turn first
    beat(("b", ["p2"]))  # b took it
    beat()  # b died: its membership lapsed, then its lease
    assert spread.may_take("p2", 1)


def test_a_pbx_handed_over_to_a_node_that_died_before_announcing_it_is_not_held_back() -> None:
    """The taker may die before its next heartbeat says it holds the PBX: once no live node
    but this one may hold it, there is nobody to leave it to."""
    import json

    spread = Spread(None, NodeKeys("x:"), "a", task.Clock(), LEASE, ["p1", "p2"])  # type: ignore[arg-type]

    def beat(*others: str) -> None:
        reply = ["a", json.dumps({"held": sorted(spread.held), "can": ["p1", "p2"]})]
        for name in others:
            reply += [name, json.dumps({"held": [], "can": ["p1", "p2"]})]
        spread._answered(reply)

    spread.won("p1")
    spread.won("p2")
    for _ in range(4):
        beat("b")
    spread.released("p2")
    assert not spread.may_take("p2", 1)
    beat()  # b is gone, never having said it took p2
    assert spread.may_take("p2", 1)
