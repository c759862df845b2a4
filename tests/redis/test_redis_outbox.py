"""The webhook outbox on a real Redis: written on offer, removed after a 2xx or a give-up,
loaded back in order by a new process, bounded, and delivering through a Redis outage."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, succeed

from pbxis.config import RedisConfig, parse_config
from pbxis.store.redis_keys import Keys
from pbxis.store.redis_link import RedisLink
from pbxis.webhooks.config import WebhookConfig
from pbxis.webhooks.delivery import Answer, Endpoint
from pbxis.webhooks.redis_outbox import RedisOutbox
from pbxis.webhooks.signing import decode_secret
from tests.redis.redis_proc import RedisServer

KEY = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


class CRM:
    """A PostFn answering ``status`` at once (or holding every request while ``hold``)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.hold = False
        self.ids: list[str] = []
        self.held: list[Deferred[Answer]] = []

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Deferred[Answer]:
        self.ids.append(headers["webhook-id"])
        if self.hold:
            d: Deferred[Answer] = Deferred()
            self.held.append(d)
            return d
        return succeed(Answer(self.status))


def make(link: RedisLink, prefix: str, crm: CRM, **overrides: object) -> tuple[RedisOutbox, Endpoint]:
    config = WebhookConfig(url="http://crm/hooks", name="crm", key=KEY, **overrides)  # type: ignore[arg-type]
    box = RedisOutbox(link, Keys(prefix), "crm", reactor)
    ep = Endpoint(config, reactor, crm, wall=reactor.seconds, rng=random.Random(1), outbox=box)
    return box, ep


async def stored(link: RedisLink, prefix: str) -> list[str]:
    """The webhook-ids in Redis, in sequence order."""
    import json

    fields = await link.command("HGETALL", Keys(prefix).webhook("crm"))
    pairs = fields.items() if isinstance(fields, dict) else zip(fields[::2], fields[1::2], strict=True)
    return [json.loads(v)[1] for _, v in sorted(pairs, key=lambda p: int(p[0]))]


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached")


@pytest_twisted.ensureDeferred
async def test_pending_deliveries_survive_a_new_process_in_order_per_agent(
    link: RedisLink, prefix: str
) -> None:
    crm = CRM()
    crm.hold = True  # the CRM never answers: everything stays pending
    box, ep = make(link, prefix, crm)
    for n in range(3):
        ep.offer("1001", f"a{n}", b'{"n":%d}' % n)
        ep.offer("1002", f"b{n}", b'{"n":%d}' % n)
    await box.drain(5)
    assert await stored(link, prefix) == ["a0", "b0", "a1", "b1", "a2", "b2"]
    ep.stop()  # the process dies with a0 and b0 in flight

    crm2 = CRM()
    box2, ep2 = make(link, prefix, crm2)
    assert await box2.load() == 6
    ep2.resume()
    await until(lambda: len(crm2.ids) == 6)
    assert [i for i in crm2.ids if i.startswith("a")] == ["a0", "a1", "a2"]
    assert [i for i in crm2.ids if i.startswith("b")] == ["b0", "b1", "b2"]
    await box2.drain(5)
    assert await stored(link, prefix) == []  # removed after the 2xx
    # new items go after the loaded ones (sequence numbers continue)
    ep2.offer("1001", "a3", b"{}")
    await box2.drain(5)
    assert box2.oldest() is None or box2.oldest().seq > 6  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_a_given_up_event_is_removed_from_redis(link: RedisLink, prefix: str) -> None:
    crm = CRM(status=400)
    box, ep = make(link, prefix, crm)
    ep.offer("1001", "x", b"{}")
    await until(lambda: ep.stats.given_up == 1)
    await box.drain(5)
    assert await stored(link, prefix) == []


@pytest_twisted.ensureDeferred
async def test_max_pending_bounds_redis_too(link: RedisLink, prefix: str) -> None:
    crm = CRM()
    crm.hold = True
    box, ep = make(link, prefix, crm, max_pending=3, max_in_flight=1)
    for n in range(6):
        ep.offer(f"{n}", f"m{n}", b"{}")
    await box.drain(5)
    # m0 is in flight (never dropped); m1..m3 were the oldest waiting
    assert ep.stats.dropped == 3
    assert await stored(link, prefix) == ["m0", "m4", "m5"]


@pytest_twisted.ensureDeferred
async def test_delivery_goes_on_while_redis_is_down_and_writes_catch_up(prefix: str) -> None:
    server = RedisServer().start()
    try:
        config = parse_config(
            {"redis": {"url": server.url, "key_prefix": prefix, "command_timeout": 1}}
        ).redis
        assert isinstance(config, RedisConfig)
        lk = RedisLink(config, reactor)
        lk.start()
        await lk.when_connected(timeout=10)
        crm = CRM()
        crm.hold = True
        box, ep = make(lk, prefix, crm, max_in_flight=1)
        ep.offer("1001", "before", b"{}")
        await box.drain(5)
        assert await stored(lk, prefix) == ["before"]

        server.stop()  # Redis is gone (and, without persistence, its data too)
        await until(lambda: not lk.connected)
        crm.held.pop().callback(Answer(200))  # "before" delivered: its delete waits
        ep.offer("1001", "during1", b"{}")
        ep.offer("1001", "during2", b"{}")
        await until(lambda: len(crm.ids) == 2)  # delivery from memory goes on
        assert crm.ids == ["before", "during1"]
        writes = box.writes
        await task.deferLater(reactor, 1.5, lambda: None)
        assert box.writes == writes  # nothing acknowledged, no crash
        assert box.pending_writes() <= 3  # bounded by the items, not by the attempts

        server.start()
        await lk.when_connected(timeout=20)
        await box.drain(10)
        assert await stored(lk, prefix) == ["during1", "during2"]
        crm.hold = False
        crm.held.pop().callback(Answer(200))
        await until(lambda: ep.pending == 0)
        await box.drain(5)
        assert await stored(lk, prefix) == []
        ep.stop()
        await lk.stop()
    finally:
        server.close()
