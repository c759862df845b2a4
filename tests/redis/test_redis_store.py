"""The hub on the Redis store: what one process wrote, a restarted one serves, ids and tokens
unchanged; only real changes after a rebuild; a Redis outage or a Redis that lost its data."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest_twisted
from twisted.internet import reactor, task

from pbxis.config import RedisConfig, parse_config
from pbxis.events import AGENT_COMPLETE, EXTENSION_STATUS, AgentEvent, QueueEvent
from pbxis.hub import Hub
from pbxis.store.redis_keys import Keys
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_store import RedisStore
from tests.redis.redis_proc import RedisServer


def ext(status: str, t: int = 1) -> AgentEvent:
    return AgentEvent("1001", EXTENSION_STATUS, t, {"status": status})


def done(n: int) -> AgentEvent:
    return AgentEvent("1001", AGENT_COMPLETE, n, {"n": n})


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached")


class Node:
    """One process's hub on the Redis store (the daemon's wiring, minus AMI and HTTP)."""

    def __init__(self, config: RedisConfig) -> None:
        self.link = RedisLink(config, reactor)
        self.store = RedisStore(self.link, Keys(config.key_prefix), reactor, max_log=100)
        self.hub = Hub(reactor, grace_period=60, snapshot=self.snapshot, store=self.store)

    def snapshot(self, agent: str) -> list[AgentEvent]:
        return [AgentEvent(agent, EXTENSION_STATUS, 9, {"status": "snapshot"})]

    async def start(self) -> Node:
        self.link.start()
        await self.link.when_connected(10)
        await self.store.load()
        self.store.adopt(lambda agent, queues, name: self.hub.register(agent, queues, name))
        return self

    def publish(self, events: list[Any]) -> None:
        self.hub.publish(self.store.only_changes(events))

    async def stop(self) -> None:
        self.hub.close_all()
        await self.store.drain(5)
        await self.link.stop()


def reader(hub: Hub, token: str, since: int | None) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    registration = hub.by_token(token)
    assert registration is not None
    sub = hub.subscribe(registration, since, "sse", lambda es: got.extend(e.json for e in es), lambda r: None)
    sub.resumeProducing()
    return got


@pytest_twisted.ensureDeferred
async def test_a_restarted_process_serves_the_same_token_and_ids(redis_config: RedisConfig) -> None:
    first = await Node(redis_config).start()
    registration = first.hub.register("1001", ["sales"], "Alice")
    seen = reader(first.hub, registration.token, None)  # snapshot first: id 1
    first.publish([ext("inuse"), done(1), done(2)])
    assert [e["id"] for e in seen] == [1, 2, 3, 4]
    await first.store.drain(5)
    assert not first.store.pending()
    await first.link.stop()  # the process dies: no unregister, no shutdown

    second = await Node(redis_config).start()
    again = second.hub.by_token(registration.token)
    assert again is not None and again.agent == "1001" and again.name == "Alice"
    assert second.hub.register("1001", ["sales"], "Alice").token == registration.token  # CRM: same token
    resumed = reader(second.hub, registration.token, 2)  # Last-Event-ID: 2
    assert [e["id"] for e in resumed] == [3, 4]
    assert resumed[0]["type"] == AGENT_COMPLETE and resumed[0]["n"] == 1
    second.publish([done(3)])
    assert [e["id"] for e in resumed] == [3, 4, 5]
    # the rebuild offers the known state again: not a change, not in the log
    second.publish([ext("inuse", t=77)])
    assert [e["id"] for e in resumed] == [3, 4, 5]
    second.publish([ext("not_inuse", t=78)])
    assert [e["id"] for e in resumed] == [3, 4, 5, 6] and resumed[-1]["status"] == "not_inuse"
    await second.stop()

    third = await Node(redis_config).start()
    assert [e["id"] for e in reader(third.hub, registration.token, 5)] == [6]
    await third.stop()


@pytest_twisted.ensureDeferred
async def test_queue_states_and_their_versions_survive_and_equal_ones_are_no_change(
    redis_config: RedisConfig,
) -> None:
    first = await Node(redis_config).start()
    registration = first.hub.register("1001", ["sales"], None)
    seen = reader(first.hub, registration.token, None)
    first.publish([QueueEvent("sales", "queueCount", 5, {"queue": "sales", "count": 2})])
    await _until(lambda: any(e["type"] == "queueCount" for e in seen))
    await first.store.drain(5)
    await first.link.stop()

    second = await Node(redis_config).start()
    state = second.store.queue_state("sales", "queueCount")
    assert state is not None and json.loads("{" + state.rest)["count"] == 2
    resumed = reader(second.hub, registration.token, seen[-1]["id"])
    second.publish([QueueEvent("sales", "queueCount", 99, {"queue": "sales", "count": 2})])
    await task.deferLater(reactor, 0.2, lambda: None)
    assert resumed == []  # the same count after the rebuild is not news
    second.publish([QueueEvent("sales", "queueCount", 100, {"queue": "sales", "count": 3})])
    await _until(lambda: [e.get("count") for e in resumed] == [3])
    # the last registration on the queue goes: its state goes from Redis too
    second.hub.unregister("1001")
    await second.store.drain(5)
    assert await second.link.command("EXISTS", second.store.keys.queue("sales")) == 0
    await second.stop()


@pytest_twisted.ensureDeferred
async def test_unregister_ends_the_token_for_the_next_process_too(redis_config: RedisConfig) -> None:
    first = await Node(redis_config).start()
    registration = first.hub.register("1001", [], None)
    first.hub.unregister("1001")
    await first.store.drain(5)
    await first.link.stop()
    second = await Node(redis_config).start()
    assert second.hub.by_token(registration.token) is None and second.hub.get("1001") is None
    await second.stop()


@pytest_twisted.ensureDeferred
async def test_redis_down_then_back_without_its_data_nothing_is_lost(prefix: str) -> None:
    server = RedisServer().start()
    try:
        config = parse_config(
            {"redis": {"url": server.url, "key_prefix": prefix, "command_timeout": 1}}
        ).redis
        assert config is not None
        node = await Node(config).start()
        registration = node.hub.register("1001", [], None)
        seen = reader(node.hub, registration.token, None)
        node.publish([done(1)])
        await node.store.drain(5)
        server.stop()
        await _until(lambda: not node.link.connected)
        for n in range(2, 12):
            node.publish([done(n)])  # clients of this node are served live meanwhile
        assert [e["id"] for e in seen] == list(range(1, 13))
        health = node.store.health()
        assert health["status"] == "buffering" and health["pendingEvents"] == 10
        assert health["connected"] is False
        server.start()  # without persistence: Redis comes back empty
        await _until(lambda: node.store.health()["status"] == "ok" and not node.store.pending(), 20)
        await node.link.stop()

        after = await Node(config).start()
        resumed = reader(after.hub, registration.token, 0 + 1)
        assert [e["id"] for e in resumed] == list(range(2, 13))
        assert [e["n"] for e in resumed[1:]] == list(range(2, 12))
        await after.stop()
    finally:
        server.close()


@pytest_twisted.ensureDeferred
async def test_the_pbx_back_after_a_restart_is_no_news_to_an_agent_that_never_saw_it_down(
    redis_config: RedisConfig,
) -> None:
    from pbxis.events import PBX_STATUS

    node = await Node(redis_config).start()
    up = AgentEvent("1001", PBX_STATUS, 5, {"connected": True})
    down = AgentEvent("1001", PBX_STATUS, 6, {"connected": False})
    assert node.store.only_changes([up]) == []
    assert node.store.only_changes([down]) == [down]
    assert node.store.only_changes([up]) == [up]
    await node.stop()


@pytest_twisted.ensureDeferred
async def test_health_says_degraded_past_the_outage_allowance(prefix: str) -> None:
    server = RedisServer().start()
    try:
        config = parse_config(
            {"redis": {"url": server.url, "key_prefix": prefix, "command_timeout": 1}}
        ).redis
        assert config is not None
        node = Node(config)
        node.store.outage_seconds = 0.3
        await node.start()
        node.hub.register("1001", [], None)
        await node.store.drain(5)
        assert node.store.health()["status"] == "ok"
        server.stop()
        await _until(lambda: not node.link.connected)
        node.publish([done(1)])
        assert node.store.health()["status"] == "buffering"
        await _until(lambda: node.store.health()["status"] == "degraded", 5)
        assert node.store.health()["pendingEvents"] == 1
        server.start()
        await _until(lambda: node.store.health()["status"] == "ok" and not node.store.pending(), 20)
        await node.stop()
    finally:
        server.close()


def test_too_many_pending_events_is_degraded_too(redis_config: RedisConfig) -> None:
    node = Node(redis_config)
    node.store.outage_events = 2
    node.store._down_since = reactor.seconds()  # down for an instant, Redis never reached
    node.hub.register("1001", [], None)
    node.publish([done(1), done(2)])
    assert node.store.health()["status"] == "buffering"
    node.publish([done(3)])
    assert node.store.health()["status"] == "degraded"
    node.hub.close_all()
