"""Issue #16, "no holder": a PBX nobody held for lease_time gets pbxStatus false once, in the
holder's own numbering and JSON; the next holder's rebuild then logs pbxStatus true."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import defer, reactor, task

from pbxis.config import RedisConfig, parse_config
from pbxis.events import AGENT_COMPLETE, PBX_STATUS, AgentEvent
from pbxis.hub import Hub
from pbxis.hub.log import encode_compact
from pbxis.store.redis_keys import Keys, pbx_keys
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_reader import RawEntry, StreamReader, log_entries
from pbxis.store.redis_store import RedisStore
from pbxis.store.redis_vacancy import VacancyWatch, rebuilt
from tests.redis.redis_proc import RedisServer
from tests.redis.test_redis_store import Node, _until, reader

PBX = "east"
LEASE = 60.0  # long: Redis's real clock never ends a vacancy by itself here; tests age it


class Holder(Node):
    """A holder of PBX ``east`` (its keys, its name in every event): the store tests' node."""

    def __init__(self, config: RedisConfig, max_log: int = 100) -> None:
        self.link = RedisLink(config, reactor)
        self.store = RedisStore(self.link, pbx_keys(config.key_prefix, PBX), reactor, max_log=max_log)
        self.hub = Hub(reactor, grace_period=60, snapshot=self.snapshot, store=self.store, pbx=PBX)


def status(agent: str, connected: bool, t: int = 5) -> AgentEvent:
    return AgentEvent(agent, PBX_STATUS, t, {"connected": connected})


def watch(link: RedisLink, keys: Keys, clock: task.Clock, max_log: int = 100) -> VacancyWatch:
    return VacancyWatch(link, keys, clock, LEASE, pbx=PBX, max_log=max_log)


async def age_vacancy(link: RedisLink, keys: Keys, ms: int) -> None:
    """``vacant`` as if nobody had held the lease for ``ms`` (Redis's clock)."""
    seconds, micros = await link.command("TIME")
    await link.command("SET", keys.vacant, int(seconds) * 1000 + int(micros) // 1000 - ms)


async def last_ids(link: RedisLink, keys: Keys, agents: list[str]) -> dict[str, int]:
    return {a: int(await link.command("HGET", keys.reg(a), "last")) for a in agents}


async def entries(link: RedisLink, keys: Keys, agent: str, after: int) -> list[tuple[int, str, str]]:
    reply = await link.command("XRANGE", keys.log(agent), f"({after}-0", "+")
    out = []
    for stream_id, fields in reply:
        f = dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields
        out.append((int(str(stream_id).split("-")[0]), str(f["t"]), str(f["j"])))
    return out


async def crashed_holder(config: RedisConfig) -> tuple[str, str]:
    """A holder that logged events for 1001 (a client saw them), 1002 (whose PBX link it saw
    go down: pbxStatus false already) and supervisor boss, then died; their tokens."""
    holder = await Holder(config).start()
    alice = holder.hub.register("1001", ["sales"], "Alice")
    reader(holder.hub, alice.token, None)
    holder.publish([AgentEvent("1001", AGENT_COMPLETE, 3, {"n": 1})])
    holder.hub.register("1002", ["sales"], None)
    holder.publish([status("1002", False)])
    holder.hub.register("supervisor:boss", [], None)
    holder.hub.publish([AgentEvent("supervisor:boss", AGENT_COMPLETE, 4, {"n": 2})])
    await holder.store.drain(5)
    assert not holder.store.pending()
    await holder.link.stop()  # kill -9: no release, no pbxStatus false from it
    return alice.token, holder.store.keys.prefix


@pytest_twisted.ensureDeferred
async def test_nobody_holds_for_lease_time_each_log_gets_pbx_status_false_once(
    link: RedisLink, second_link: RedisLink, redis_config: RedisConfig
) -> None:
    token, _ = await crashed_holder(redis_config)
    keys = pbx_keys(redis_config.key_prefix, PBX)
    agents = ["1001", "1002", "supervisor:boss"]
    before = await last_ids(link, keys, agents)
    # a web node follows 1001's log with its one read loop
    reading = RedisLink(redis_config, reactor, name="reader")
    reading.start()
    loop = StreamReader(reading, link, keys, "web-1", block_ms=20_000)
    followed: list[int] = []

    def got(stream: str, items: list[RawEntry]) -> None:
        followed.extend(e.id for e in log_entries(items))

    loop.follow(keys.log("1001"), before["1001"], got)
    loop.start()
    # two nodes watch the PBX
    clock = task.Clock()
    one, two = watch(link, keys, clock), watch(second_link, keys, clock)
    one.start()
    two.start()
    await _until(lambda: one.checks == 1 and two.checks == 1)
    assert {one.last.state, two.last.state} == {"started", "waiting"}  # type: ignore[union-attr]
    clock.advance(LEASE / 3)  # less than lease_time: nothing
    await _until(lambda: one.checks == 2 and two.checks == 2)
    assert one.last is not None and one.last.state == "waiting"
    assert await last_ids(link, keys, agents) == before
    await _until(lambda: loop._blocked)  # the web node's read is blocked on the log

    await age_vacancy(link, keys, int(LEASE * 1000))
    # both notice at once: Redis lets one write
    found = await defer.gatherResults([defer.ensureDeferred(one.check()), defer.ensureDeferred(two.check())])
    assert sorted(f.state for f in found) == ["already", "orphaned"]
    assert sum(f.written for f in found) == 2 and one.orphanings + two.orphanings == 1
    clock.advance(LEASE / 3)  # later ticks write nothing more
    await _until(lambda: one.checks == 4 and two.checks == 4)
    assert one.last is not None and one.last.state == "already"

    after = await last_ids(link, keys, agents)
    assert after == {
        "1001": before["1001"] + 1,
        "1002": before["1002"],
        "supervisor:boss": before["supervisor:boss"] + 1,
    }
    for agent in ("1001", "supervisor:boss"):
        [(id_, kind, text)] = await entries(link, keys, agent, before[agent])
        t = json.loads(text)["time"]
        # the very text the holder's hub would have logged for the tracker's link_down
        assert (id_, kind) == (after[agent], PBX_STATUS)
        assert text == encode_compact(status(agent, False, t).to_json(id_, PBX))
    assert await entries(link, keys, "1002", before["1002"]) == []
    await _until(lambda: followed == [after["1001"]])  # the web node delivers it
    await loop.stop()
    await reading.stop()

    # a new holder takes the lease: the vacancy ends, nothing is written
    await link.command("SET", keys.collector, "node-2", "PX", 60_000)
    clock.advance(LEASE / 3)
    await _until(lambda: one.checks == 5 and two.checks == 5)
    assert one.last is not None and one.last.state == "held"
    assert await link.command("EXISTS", keys.vacant) == 0
    assert await last_ids(link, keys, agents) == after
    # its load numbers on; its rebuild's pbxStatus true is a real change now
    holder = await Holder(redis_config).start()
    resumed = reader(holder.hub, token, before["1001"])
    holder.publish([status("1001", True, 9), status("1002", True, 9)])  # the tracker's finish_rebuild
    assert [(e["id"], e["type"], e["connected"]) for e in resumed] == [
        (after["1001"], PBX_STATUS, False),
        (after["1001"] + 1, PBX_STATUS, True),
    ]
    await holder.store.drain(5)
    now = await last_ids(link, keys, ["1001", "1002"])
    assert now == {"1001": after["1001"] + 1, "1002": after["1002"] + 1}
    # done rebuilding: the next vacancy tells the agents again (only the holder may say so)
    assert await rebuilt(second_link, keys, "node-3") is False
    assert await link.command("EXISTS", keys.orphaned) == 1
    assert await rebuilt(link, keys, "node-2") is True
    assert await link.command("EXISTS", keys.orphaned) == 0
    one.stop()
    two.stop()
    await holder.stop()


@pytest_twisted.ensureDeferred
async def test_a_holder_back_within_lease_time_is_no_news_and_the_log_cap_holds(
    link: RedisLink, redis_config: RedisConfig
) -> None:
    await crashed_holder(redis_config)
    keys = pbx_keys(redis_config.key_prefix, PBX)
    before = await last_ids(link, keys, ["1001"])
    one = watch(link, keys, task.Clock(), max_log=2)
    assert (await one.check()).state == "started"
    await link.command("SET", keys.collector, "node-2", "PX", 60_000)  # a quick takeover
    assert (await one.check()).state == "held"
    assert await link.command("EXISTS", keys.vacant) == 0
    await link.command("DEL", keys.collector)  # it dies too: a vacancy from now, not before
    assert (await one.check()).state == "started"
    assert (await one.check()).state == "waiting"
    assert await last_ids(link, keys, ["1001"]) == before
    await age_vacancy(link, keys, int(LEASE * 1000) + 5)
    assert (await one.check()).written == 2
    # the holder's cap: max_log entries, 'first' moved with them
    last = before["1001"] + 1
    assert await link.command("HGET", keys.reg("1001"), "first") == str(last - 1)
    assert [e[0] for e in await entries(link, keys, "1001", 0)] == [last - 1, last]


@pytest_twisted.ensureDeferred
async def test_redis_stopped_the_watch_keeps_ticking(prefix: str) -> None:
    server = RedisServer().start()
    try:
        url = {"url": server.url, "key_prefix": prefix, "command_timeout": 1}
        config = parse_config({"redis": url}).redis
        assert config is not None
        lk = RedisLink(config, reactor)
        lk.start()
        await lk.when_connected(10)
        clock = task.Clock()
        one = VacancyWatch(lk, Keys(prefix), clock, 3.0, pbx=None, max_log=10)
        one.start()
        await _until(lambda: one.checks == 1)
        server.stop()
        await _until(lambda: not lk.connected)
        for n in range(1, 4):
            clock.advance(1.0)
            await _until(lambda n=n: one.failures == n)  # type: ignore[misc]
        assert one.running and one.checks == 1
        server.start()  # back, empty: the vacancy starts again
        await lk.when_connected(20)
        clock.advance(1.0)
        await _until(lambda: one.checks == 2)
        assert one.last is not None and one.last.state == "started" and one.stats()["failures"] == 3
        one.stop()
        await lk.stop()
    finally:
        server.close()
