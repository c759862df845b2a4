"""One blocking read per node over many streams: new streams join a blocked read at once."""

from __future__ import annotations

import time

import pytest_twisted
from twisted.internet import defer, reactor, task

from pbxis.config import RedisConfig
from pbxis.events import AGENT_COMPLETE, AgentEvent
from pbxis.store.redis_backend import RedisBackend
from pbxis.store.redis_keys import Keys
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_reader import RawEntry, StreamReader, log_entries


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not reached")


@pytest_twisted.ensureDeferred
async def test_one_read_loop_feeds_many_logs_and_joins_new_ones_while_blocked(
    link: RedisLink, redis_config: RedisConfig, prefix: str
) -> None:
    keys = Keys(prefix)
    reading = RedisLink(redis_config, reactor, name="reader")
    reading.start()
    reader = StreamReader(reading, link, keys, "node-a", block_ms=20_000)
    got: dict[str, list[int]] = {}

    def collect(stream: str, items: list[RawEntry]) -> None:
        got.setdefault(stream, []).extend(e.id for e in log_entries(items))

    store = RedisBackend(link, keys, grace_ms=60_000, max_log=1000)
    fences = {}
    for i in range(50):
        agent = f"30{i:02d}"
        await store.register(agent, [], None, f"{agent}-" + "t" * 40, 1)
        fences[agent] = await store.claim(agent)
        await store.append(agent, [AgentEvent(agent, AGENT_COMPLETE, 1, {})], fences[agent])
    reader.start()
    for agent in list(fences)[:25]:
        reader.follow(keys.log(agent), 0, collect)
    await _until(lambda: len(got) == 25)
    reads_before = reader.reads
    # the loop is now blocked for up to 20 s: a newly followed stream must not wait for that
    await _until(lambda: reader._blocked)
    started = time.monotonic()
    for agent in list(fences)[25:]:
        reader.follow(keys.log(agent), 0, collect)
    await _until(lambda: len(got) == 50)
    assert time.monotonic() - started < 2.0
    # live appends to all 50 logs reach the one loop: a handful of reads, not one per log
    await defer.gatherResults(
        [
            defer.ensureDeferred(store.append(a, [AgentEvent(a, AGENT_COMPLETE, 2, {})] * 2, f))
            for a, f in fences.items()
        ]
    )
    await _until(lambda: all(ids == [1, 2, 3] for ids in got.values()) and len(got) == 50)
    assert reader.reads - reads_before < 50
    await reader.stop()
    await reading.stop()


@pytest_twisted.ensureDeferred
async def test_the_loop_resumes_from_its_positions_after_redis_restarts(prefix: str) -> None:
    from pbxis.config import parse_config
    from tests.redis.redis_proc import RedisServer

    server = RedisServer().start()
    try:
        config = parse_config({"redis": {"url": server.url, "key_prefix": prefix}}).redis
        assert config is not None
        cmd, rd = RedisLink(config, reactor), RedisLink(config, reactor, name="reader")
        cmd.start()
        rd.start()
        await cmd.when_connected(10)
        keys = Keys(prefix)
        reader = StreamReader(rd, cmd, keys, "n", block_ms=500)
        got: list[str] = []
        reader.follow(prefix + "s", "0-0", lambda s, items: got.extend(i for i, _ in items))
        reader.start()
        await cmd.command("XADD", prefix + "s", "1-0", "f", "a")
        await _until(lambda: got == ["1-0"])
        server.restart()  # no persistence: the stream is gone, ids start again
        await _until(lambda: not cmd.connected)
        await cmd.when_connected(15)
        await cmd.command("XADD", prefix + "s", "1-0", "f", "again")  # not after 1-0: not delivered
        await cmd.command("XADD", prefix + "s", "2-0", "f", "b")
        await _until(lambda: got == ["1-0", "2-0"])
        await reader.stop()
        await cmd.stop()
        await rd.stop()
    finally:
        server.close()
