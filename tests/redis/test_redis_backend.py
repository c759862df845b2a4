"""Registrations, logs, state and grace bookkeeping in a real Redis, seen from two nodes."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from pbxis.events import AGENT_COMPLETE, EXTENSION_STATUS, QUEUE_MEMBER_STATUS, AgentEvent
from pbxis.store.redis_backend import NotRegistered, RedisBackend, StaleFence
from pbxis.store.redis_keys import Keys
from pbxis.store.redis_link import RedisLink


def backend(link: RedisLink, prefix: str, grace_ms: int = 60_000, max_log: int = 1000) -> RedisBackend:
    return RedisBackend(link, Keys(prefix), grace_ms=grace_ms, max_log=max_log)


def ext(agent: str, status: str, t: int = 1) -> AgentEvent:
    return AgentEvent(agent, EXTENSION_STATUS, t, {"status": status})


def member(agent: str, queue: str, status: str, t: int = 1) -> AgentEvent:
    return AgentEvent(agent, QUEUE_MEMBER_STATUS, t, {"queue": queue, "status": status, "paused": False})


@pytest_twisted.ensureDeferred
async def test_reregistering_on_any_node_returns_the_same_token(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    a, b = backend(link, prefix), backend(second_link, prefix)
    created, token, when = await a.register("1001", ["sales"], "Alice", "tok-a" * 8, 111)
    assert created and token == "tok-a" * 8 and when == 111
    created, again, when = await b.register("1001", ["sales", "support"], None, "tok-b" * 8, 222)
    assert not created and again == token and when == 111
    stored = await a.get("1001")
    assert stored is not None and stored.queues == ("sales", "support") and stored.name is None
    found = await b.by_token(token)
    assert found is not None and found.agent == "1001"
    assert await b.by_token("tok-b" * 8) is None
    assert await b.by_token(token[:-1] + "x") is None
    assert await a.agents() == ["1001"]


@pytest_twisted.ensureDeferred
async def test_two_nodes_registering_at_once_agree_on_one_token(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    a, b = backend(link, prefix), backend(second_link, prefix)
    results = await defer.gatherResults(
        [
            defer.ensureDeferred(x.register(f"20{i:02d}", [], None, f"{name}-{i}-" + "t" * 40, i))
            for i in range(30)
            for x, name in ((a, "a"), (b, "b"))
        ]
    )
    for i in range(30):
        first, second = results[2 * i], results[2 * i + 1]
        assert first[1] == second[1]
        assert first[0] != second[0]  # exactly one of them created it


@pytest_twisted.ensureDeferred
async def test_appends_get_consecutive_ids_from_two_writers(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    a, b = backend(link, prefix), backend(second_link, prefix)
    await a.register("1001", ["sales"], None, "t" * 43, 1)
    fence = await a.claim("1001")
    batches = [
        defer.ensureDeferred(x.append("1001", [AgentEvent("1001", AGENT_COMPLETE, i, {"n": i})] * 3, fence))
        for i in range(40)
        for x in (a, b)
    ]
    appended = await defer.gatherResults(batches)
    spans = sorted((r.first, r.last) for r in appended)
    assert spans == [(1 + 3 * i, 3 + 3 * i) for i in range(80)]
    entries = await b.read("1001", 0, 1000)
    assert [e.id for e in entries] == list(range(1, 241))
    first = json.loads(entries[0].text)
    assert first["id"] == 1 and first["type"] == AGENT_COMPLETE and first["agent"] == "1001"
    assert [e.id for e in await a.read("1001", 238, 10)] == [239, 240]


@pytest_twisted.ensureDeferred
async def test_a_writer_whose_claim_was_taken_over_cannot_append(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    a, b = backend(link, prefix), backend(second_link, prefix)
    await a.register("1001", [], None, "t" * 43, 1)
    old = await a.claim("1001")
    assert (await a.append("1001", [ext("1001", "inuse")], old)).last == 1
    new = await b.claim("1001")
    assert new > old
    with pytest.raises(StaleFence):
        await a.append("1001", [ext("1001", "not_inuse")], old)
    assert (await b.append("1001", [ext("1001", "ringing")], new)).last == 2
    assert [e.id for e in await a.read("1001", 0, 10)] == [1, 2]
    with pytest.raises(NotRegistered):
        await a.claim("9999")
    assert await a.get("9999") is None  # the failed claim left nothing behind
    with pytest.raises(NotRegistered):
        await a.append("9999", [ext("9999", "inuse")], 1)


@pytest_twisted.ensureDeferred
async def test_state_for_snapshots_and_only_real_changes_after_a_restart(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    collector, web = backend(link, prefix), backend(second_link, prefix)
    await collector.register("1001", ["sales"], None, "t" * 43, 1)
    fence = await collector.claim("1001")
    await collector.append("1001", [ext("1001", "inuse"), member("1001", "sales", "inuse")], fence)
    await collector.append("1001", [ext("1001", "not_inuse")], fence)
    snap = await web.snapshot("1001", 999)
    assert {(e.type, e.data["status"], e.time) for e in snap} == {
        (EXTENSION_STATUS, "not_inuse", 999),
        (QUEUE_MEMBER_STATUS, "inuse", 999),
    }
    # a restarted collector rebuilds its tracker and offers everything again, with new times:
    fence = await collector.claim("1001")
    rebuilt = [ext("1001", "not_inuse", 5), member("1001", "sales", "not_inuse", 5)]
    done = await collector.append("1001", rebuilt, fence, only_changes=True)
    assert (done.first, done.last) == (4, 4)  # only the queue member status really changed
    entries = await web.read("1001", 3, 10)
    assert [json.loads(e.text)["status"] for e in entries] == ["not_inuse"]
    assert json.loads(entries[0].text)["type"] == QUEUE_MEMBER_STATUS
    # events that are not state are never dropped
    done = await collector.append(
        "1001", [AgentEvent("1001", AGENT_COMPLETE, 6, {})] * 2, fence, only_changes=True
    )
    assert (done.first, done.last) == (5, 6)


@pytest_twisted.ensureDeferred
async def test_the_log_is_capped_and_trimmed(link: RedisLink, prefix: str) -> None:
    b = backend(link, prefix, max_log=5)
    await b.register("1001", [], None, "t" * 43, 1)
    fence = await b.claim("1001")
    await b.append("1001", [AgentEvent("1001", AGENT_COMPLETE, i, {}) for i in range(8)], fence)
    stored = await b.get("1001")
    assert stored is not None and (stored.first, stored.last) == (4, 8)
    assert [e.id for e in await b.read("1001", 0, 100)] == [4, 5, 6, 7, 8]
    assert await b.trim("1001", 6) == 7
    assert [e.id for e in await b.read("1001", 0, 100)] == [7, 8]
    assert await b.trim("1001", 100) == 9  # never past the last id
    assert (await b.append("1001", [ext("1001", "inuse")], fence)).last == 9


@pytest_twisted.ensureDeferred
async def test_unregister_logs_closed_and_ends_the_token(link: RedisLink, prefix: str) -> None:
    b = backend(link, prefix)
    _, token, _ = await b.register("1001", [], None, "t" * 43, 1)
    fence = await b.claim("1001")
    await b.append("1001", [ext("1001", "inuse")], fence)
    assert await b.end("1001", "unregistered") == 2
    assert await b.end("1001", "unregistered") == 0
    assert await b.by_token(token) is None and await b.get("1001") is None
    closed = json.loads((await b.read("1001", 1, 10))[0].text)
    assert closed["type"] == "closed" and closed["reason"] == "unregistered" and closed["id"] == 2
    # a new registration gets a new token and a new log from id 1
    _, token2, _ = await b.register("1001", [], None, "u" * 43, 2)
    assert token2 != token and await b.read("1001", 0, 10) == []
    fence = await b.claim("1001")
    assert (await b.append("1001", [ext("1001", "inuse")], fence)).first == 1


@pytest_twisted.ensureDeferred
async def test_expiry_fires_once_on_one_node_and_clients_anywhere_keep_it_alive(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    a, b = backend(link, prefix, grace_ms=400), backend(second_link, prefix, grace_ms=400)
    for agent in ("1001", "1002", "1003"):
        await a.register(agent, [], None, f"{agent}-" + "t" * 40, 1)
    # node b has a client of 1002: it refreshes while node a does nothing
    for _ in range(5):
        await b.refresh(["1002"])
        await task.deferLater(reactor, 0.15, lambda: None)
    expired: list[tuple[str, int]] = []
    rounds = [defer.ensureDeferred(x.expire_due()) for x in (a, b, a, b)]
    for found in await defer.gatherResults(rounds):
        expired.extend(found)
    assert sorted(agent for agent, _ in expired) == ["1001", "1003"]  # each once, in all
    assert await a.get("1002") is not None
    assert await a.get("1001") is None
    await b.refresh(["1001"])  # refreshing an ended registration does not bring it back
    assert await a.expire_due() == []
    await task.deferLater(reactor, 0.5, lambda: None)
    assert [agent for agent, _ in await b.expire_due()] == ["1002"]


@pytest_twisted.ensureDeferred
async def test_a_batch_retried_after_a_timeout_is_not_appended_twice(link: RedisLink, prefix: str) -> None:
    b = backend(link, prefix)
    await b.register("1001", [], None, "t" * 43, 1)
    fence = await b.claim("1001")
    assert (await b.append("1001", [ext("1001", "inuse")], fence, batch=1)).last == 1
    again = await b.append("1001", [ext("1001", "inuse")], fence, batch=1)
    assert (again.first, again.last) == (0, 1)
    assert (await b.append("1001", [ext("1001", "ringing")], fence, batch=2)).last == 2
    fence = await b.claim("1001")  # a new writer numbers its batches from 1 again
    assert (await b.append("1001", [ext("1001", "busy")], fence, batch=1)).last == 3
