"""The AMI lease (pbxis.store.redis_lease) on a real redis-server; the lease's own time is
a ``task.Clock``, so a "pause" is the clock moving on while no renewal is acknowledged."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from pbxis.store.redis_keys import Keys
from pbxis.store.redis_lease import CLAIM_HELD, Lease
from pbxis.store.redis_link import RedisLink, RedisUnavailable


class Seen:
    def __init__(self) -> None:
        self.won = 0
        self.lost: list[str] = []


def lease(link: RedisLink, prefix: str, node: str, clock: task.Clock, seen: Seen, time: float = 1.0) -> Lease:
    return Lease(
        link, Keys(prefix).collector, node, clock, time,
        on_won=lambda: setattr(seen, "won", seen.won + 1), on_lost=seen.lost.append,
    )  # fmt: skip


async def settle(predicate: Any, timeout: float = 5.0) -> None:
    """Wait (real time) for Redis's answers to arrive."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("timed out")


@pytest_twisted.ensureDeferred
async def test_one_holder_the_other_stands_by_and_takes_over_only_after_expiry(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    ca, cb = task.Clock(), task.Clock()
    sa, sb = Seen(), Seen()
    a, b = lease(link, prefix, "a", ca, sa), lease(second_link, prefix, "b", cb, sb)
    a.start()
    await settle(lambda: sa.won == 1)
    assert a.valid() and a.holder == "a" and a.takeovers == 1
    b.start()
    await settle(lambda: b.holder == "a")
    assert not b.valid() and sb.won == 0
    # a renews its own lease; b's attempts do not take it
    for _ in range(3):
        ca.advance(1 / 3)
        cb.advance(1 / 3)
        await settle(lambda: not a._asking and not b._asking)
    assert a.valid() and sb.won == 0 and not sa.lost
    # a is paused past its lease: it knows at once, before any timer or answer
    ca.advance(0.5)  # renewal sent...
    ca.advance(0.6)  # ...and the clock is past the last acknowledged one's end
    assert not a.valid()
    ca.advance(0)
    assert sa.lost and "paused" in sa.lost[0]
    # b takes it once Redis lets it expire (real time: the key's PX), never before
    await task.deferLater(reactor, 1.1, lambda: None)
    cb.advance(1 / 3)
    await settle(lambda: sb.won == 1)
    assert b.valid() and await link.command("GET", Keys(prefix).collector) == "b"
    # a never competes again; a command is claimed only by the holder, in the same script
    ca.advance(5)
    await task.deferLater(reactor, 0.05, lambda: None)
    assert sa.won == 1 and len(sa.lost) == 1
    keys = Keys(prefix)
    claim_a = await link.script(CLAIM_HELD, [keys.command("x"), keys.collector], ["a", 60_000, 0])
    claim_b = await link.script(CLAIM_HELD, [keys.command("x"), keys.collector], ["b", 60_000, 0])
    assert (int(claim_a), int(claim_b)) == (0, 1)
    await b.stop()  # a clean stop lets it go at once
    assert await link.command("GET", keys.collector) is None
    a.stop()


@pytest_twisted.ensureDeferred
async def test_a_holder_whose_lease_another_took_steps_down_at_its_next_renewal(
    link: RedisLink, prefix: str
) -> None:
    clock, seen = task.Clock(), Seen()
    a = lease(link, prefix, "a", clock, seen, time=3.0)
    a.start()
    await settle(lambda: seen.won == 1)
    await link.command("SET", Keys(prefix).collector, "b", "PX", 3000)  # e.g. an operator
    clock.advance(1.0)
    await settle(lambda: bool(seen.lost))
    assert seen.lost == ["another node holds the lease now"] and not a.valid()
    assert await link.command("GET", Keys(prefix).collector) == "b"  # only its own is renewed
    assert a.stop() is None  # nothing of its own to let go


@pytest_twisted.ensureDeferred
async def test_an_all_node_stands_by_serves_once_it_holds_the_lease_and_drops_ami_when_it_loses_it(
    link: RedisLink, redis_config: Any, prefix: str
) -> None:
    """In one process: an ``all`` daemon (embedded simulator) while another node holds the
    lease: ``/health`` 200 ``standby``, the API 503, no AMI link; the lease free: it takes
    over (AMI logged in, the API served); the lease taken from it: AMI socket dropped at
    once, it asks to exit."""
    from pbxis.service import PbxisService
    from tests.support.stack import Stack, stack_config, stop_stack

    key = Keys(prefix).collector
    await link.command("SET", key, "other", "PX", 60_000)
    config = stack_config(
        redis={"url": redis_config.url, "key_prefix": prefix}, node={"lease_time": 1, "name": "me"}
    )
    service = PbxisService(config, reactor)
    exits: list[int] = []
    service.exit = lambda: exits.append(1)
    service.startService()
    stack = Stack(service, None)
    try:
        await stack.wait_for(lambda: service.http_port, 5, "listening")
        await stack.wait_for(lambda: service.redis.lease.holder == "other", 5, "the holder seen")
        status, body = await stack.api("GET", "/health")
        assert status == 200 and body["status"] == "standby" and body["lease"]["holder"] == "other", body
        status, body = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]})
        assert status == 503 and body["error"]["code"] == "pbx_unavailable", body
        assert service.ami.protocol_instance is None and not service.center._started
        await link.command("DEL", key)
        await stack.ready(timeout=10)
        status, body = await stack.api("GET", "/health")
        assert status == 200 and body["status"] == "ok" and body["redis"]["commandLease"], body
        status, _ = await stack.api("PUT", "/agents/1001", {"queues": ["sales"]})
        assert status == 200
        transport = service.ami.protocol_instance.transport
        await link.command("SET", key, "other", "PX", 60_000)
        await stack.wait_for(lambda: exits, 5, "the step-down")
        assert service.redis.lease.lost == "another node holds the lease now"
        assert transport.disconnected and service.ami.protocol_instance is None
        assert not service.redis.store.writable()
        # nor does it claim a log (a claim would make the new holder's log stale)
        with pytest.raises(RedisUnavailable):
            await service.redis.store.prepare_register("1002", ["sales"], None)
        assert int(await link.command("HGET", Keys(prefix).reg("1002"), "fence") or 0) == 0  # not claimed
        assert not service.redis.queries.serving() and not service.redis.feed.serving()
        status, body = await stack.api("GET", "/health")
        assert status == 503 and body["status"] == "stepped_down", body
    finally:
        await stop_stack(stack)


@pytest_twisted.ensureDeferred
async def test_a_lease_left_in_this_nodes_name_counts_as_free_to_it(link: RedisLink, prefix: str) -> None:
    """A take acknowledged too late (a pause) leaves the key in this node's name while it
    does not hold it here; with a spread asking first (may_take: only a lease seen free),
    the node must not wait out the key's TTL with nobody holding the PBX."""
    key = Keys(prefix).collector
    await link.command("SET", key, "me", "PX", 60_000)
    clock = task.Clock()
    seen = Seen()
    lease_ = Lease(
        link, key, "me", clock, 1.0,
        on_won=lambda: setattr(seen, "won", seen.won + 1), may_take=lambda free: free > 0,
    )  # fmt: skip
    lease_.start()
    try:
        for _ in range(3):
            await settle(lambda: not lease_._asking)
            clock.advance(1 / 3)
        await settle(lambda: not lease_._asking)
        assert lease_.valid() and seen.won == 1
    finally:
        lease_.stop()
