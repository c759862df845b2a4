"""Commands from a web node to the collector through Redis: answered, never run twice, 503 without
a collector, and a timeout says whether the command ran."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from pbxis.config import RedisConfig
from pbxis.errors import UnknownAgent
from pbxis.store.redis_commands import (
    CommandExecutor,
    CommandNotTaken,
    CommandSender,
    CommandTimeout,
    NoCollector,
)
from pbxis.store.redis_keys import Keys
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_reader import StreamReader
from pbxis.store.redis_scripts import CLAIM_COMMAND


class Node:
    """A node's Redis side: a command link, a reading link and its one read loop."""

    def __init__(self, config: RedisConfig, name: str) -> None:
        self.name = name
        self.keys = Keys(config.key_prefix)
        self.link = RedisLink(config, reactor, name=f"{name}-commands")
        self.reading = RedisLink(config, reactor, name=f"{name}-reader")
        self.reader = StreamReader(self.reading, self.link, self.keys, name, block_ms=2000)
        self.executors: list[CommandExecutor] = []

    async def start(self) -> Node:
        self.link.start()
        self.reading.start()
        await self.link.when_connected(10)
        await self.reading.when_connected(10)
        self.reader.start()
        return self

    async def stop(self) -> None:
        for e in self.executors:
            await e.stop()
        await self.reader.stop()
        await self.link.stop()
        await self.reading.stop()


@pytest_twisted.async_yield_fixture
async def nodes(redis_config: RedisConfig) -> AsyncIterator[list[Node]]:
    started = [await Node(redis_config, name).start() for name in ("web-a", "web-b", "coll-1", "coll-2")]
    try:
        yield started
    finally:
        for node in started:
            await node.stop()


def executor(node: Node, runs: list[tuple[str, str, dict[str, Any]]], delay: float = 0.0) -> CommandExecutor:
    async def execute(kind: str, args: dict[str, Any]) -> Any:
        runs.append((node.name, kind, args))
        if delay:
            await task.deferLater(reactor, delay, lambda: None)
        if kind == "fail":
            raise UnknownAgent("no such agent")
        if kind == "bug":
            raise LookupError("/srv/secret/path 10.1.2.3")
        return {"status": 202, "action": kind, **args}

    made = CommandExecutor(node.link, node.reader, node.keys, node.name, reactor, execute, lease_ms=3000)
    node.executors.append(made)
    return made


@pytest_twisted.ensureDeferred
async def test_commands_from_two_web_nodes_run_once_on_one_of_two_collectors(nodes: list[Node]) -> None:
    web_a, web_b, coll_1, coll_2 = nodes
    runs: list[tuple[str, str, dict[str, Any]]] = []
    for c in (coll_1, coll_2):
        await executor(c, runs).start()
    senders = [CommandSender(w.link, w.reader, w.keys, w.name, reactor) for w in (web_a, web_b)]
    for s in senders:
        await s.start()
    answers = await defer.gatherResults(
        [
            defer.ensureDeferred(s.send("originate", {"agent": "1001", "n": i}, timeout=5))
            for i in range(20)
            for s in senders
        ]
    )
    assert [a["ok"]["n"] for a in answers] == [i for i in range(20) for _ in senders]
    assert all(a["ok"]["status"] == 202 for a in answers)
    # both collectors read every command; each ran exactly once
    assert sorted(args["n"] for _, _, args in runs) == sorted(i for i in range(20) for _ in senders)
    failed = await senders[0].send("fail", {}, timeout=5)
    assert failed == {"error": "UnknownAgent", "message": "no such agent", "code": "unknown_agent"}
    # a non-domain error's text stays on the collector (its log), never in the answer
    bug = await senders[0].send("bug", {}, timeout=5)
    assert bug["error"] == "LookupError" and "secret" not in bug["message"] and "10.1" not in bug["message"]


@pytest_twisted.ensureDeferred
async def test_no_collector_is_503(nodes: list[Node]) -> None:
    web = nodes[0]
    sender = CommandSender(web.link, web.reader, web.keys, web.name, reactor)
    await sender.start()
    with pytest.raises(NoCollector) as info:
        await sender.send("originate", {}, timeout=1)
    assert info.value.retry_after > 0


@pytest_twisted.ensureDeferred
async def test_a_timed_out_command_that_was_never_taken_never_runs(nodes: list[Node]) -> None:
    web, _, coll, _ = nodes
    # a collector holds the lease but does not read commands (stuck)
    await web.link.command("SET", web.keys.collector, "stuck", "PX", 10_000)
    sender = CommandSender(web.link, web.reader, web.keys, web.name, reactor)
    await sender.start()
    with pytest.raises(CommandNotTaken) as info:  # a 503 with Retry-After: never taken
        await sender.send("originate", {"n": 1}, timeout=0.3)
    assert info.value.executed is False and info.value.retry_after > 0
    # a collector reading the stream from the start later does not run it either
    runs: list[tuple[str, str, dict[str, Any]]] = []
    late = executor(coll, runs)
    coll.reader.follow(coll.keys.commands, "0-1", late._on_commands)
    await task.deferLater(reactor, 0.5, lambda: None)
    assert runs == []


@pytest_twisted.ensureDeferred
async def test_a_slow_command_is_not_sent_again_and_its_outcome_is_unknown(nodes: list[Node]) -> None:
    web, _, coll, _ = nodes
    runs: list[tuple[str, str, dict[str, Any]]] = []
    await executor(coll, runs, delay=1.5).start()
    sender = CommandSender(web.link, web.reader, web.keys, web.name, reactor, late=0.3)
    await sender.start()
    with pytest.raises(CommandTimeout) as info:
        await sender.send("originate", {"n": 7}, timeout=0.3)
    assert info.value.executed is None
    await task.deferLater(reactor, 1.5, lambda: None)
    assert runs == [("coll-1", "originate", {"n": 7})]
    # an answer late enough to come while the timeout was being settled is still returned
    runs.clear()
    sender.late = 3.0
    answer = await sender.send("originate", {"n": 8}, timeout=0.3)
    assert answer["ok"]["n"] == 8 and len(runs) == 1


@pytest_twisted.ensureDeferred
async def test_a_command_a_collector_found_too_late_is_never_run_for_its_sender(nodes: list[Node]) -> None:
    web = nodes[0]
    key = web.keys.command("late-1")
    # the collector reads it after its deadline: its claim makes the abandonment final...
    assert int(await web.link.script(CLAIM_COMMAND, [key], ["coll-1", 60_000, 1])) == 0
    assert await web.link.command("GET", key) == "abandoned"
    # ...and the sender giving up owns that abandonment: it says "not run", not "may have run"
    assert int(await web.link.script(CLAIM_COMMAND, [key], ["abandoned", 60_000, 0])) == 1
    # a collector that took it in time keeps it: the sender's claim loses
    taken = web.keys.command("taken-1")
    assert int(await web.link.script(CLAIM_COMMAND, [taken], ["coll-1", 60_000, 0])) == 1
    assert int(await web.link.script(CLAIM_COMMAND, [taken], ["abandoned", 60_000, 0])) == 0


@pytest_twisted.ensureDeferred
async def test_what_a_command_leaves_in_redis_expires_soon_whatever_the_rate(nodes: list[Node]) -> None:
    """A flood of commands (an agent's token may send queue actions at HTTP rate) must not
    pile keys up in Redis for an hour: a claim lasts a minute past its deadline, and a
    node's reply stream goes with the node (its default name is new at each start)."""
    web, _, coll, _ = nodes
    runs: list[tuple[str, str, dict[str, Any]]] = []
    await executor(coll, runs).start()
    sender = CommandSender(web.link, web.reader, web.keys, web.name, reactor)
    await sender.start()
    await sender.send("pause", {"n": 1}, timeout=5)
    claims = await web.link.command("KEYS", web.keys.command("*"))
    assert len(claims) == 1
    assert 0 < int(await web.link.command("PTTL", claims[0])) <= 5_000 + 60_000
    ttl = int(await web.link.command("PTTL", web.keys.replies(web.name)))
    assert 0 < ttl <= 600_000
    coll.reader.follow("unrelated", "0-1", lambda stream, items: None)  # wakes the read loop
    await task.deferLater(reactor, 0.2, lambda: None)
    assert 0 < int(await web.link.command("PTTL", coll.keys.wake(coll.name))) <= 600_000


@pytest_twisted.ensureDeferred
async def test_redis_failing_around_a_command_is_503_when_it_was_not_taken_never_a_raw_error(
    nodes: list[Node], redis_config: RedisConfig
) -> None:
    web, other, coll, _ = nodes
    # Redis unreachable before anything is sent: 503, safe to retry
    offline = RedisLink(redis_config, reactor, name="offline")  # never connected
    sender = CommandSender(offline, web.reader, web.keys, web.name, reactor)
    with pytest.raises(NoCollector) as refused:
        await sender.send("pause", {"n": 1}, timeout=1)
    assert refused.value.retry_after > 0 and "127.0.0.1" not in str(refused.value)
    # Redis stalls writes while the command is sent (its reply times out; it may or may not
    # land): the sender claims it abandoned and that claim decides, 503 "not run"
    await web.link.command("SET", web.keys.collector, "stuck", "PX", 10_000)
    sender = CommandSender(web.link, web.reader, web.keys, web.name, reactor)
    await sender.start()
    await other.link.command("CLIENT", "PAUSE", int(redis_config.command_timeout * 1000) + 300, "WRITE")
    with pytest.raises(CommandNotTaken):
        await sender.send("pause", {"n": 2}, timeout=0.3)
    runs: list[tuple[str, str, dict[str, Any]]] = []
    late = executor(coll, runs)
    coll.reader.follow(coll.keys.commands, "0-1", late._on_commands)
    await task.deferLater(reactor, 0.3, lambda: None)
    assert runs == []  # and never runs
