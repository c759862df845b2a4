"""A web node's hub on the follower store, beside the writer's hub, on a real Redis (one process).

The wiring is the daemon's (pbxis.service), minus HTTP and AMI: each node has one read
loop; the writer follows the registrations stream and answers the web node's questions.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from pbxis.config import RedisConfig
from pbxis.events import AGENT_COMPLETE, EXTENSION_STATUS, RESET, AgentEvent
from pbxis.hub import Hub
from pbxis.hub.log import Budget
from pbxis.store.redis_backend import StoredEntry
from pbxis.store.redis_feed import RegistrationFeed
from pbxis.store.redis_follower import FollowerLog, FollowerStore
from pbxis.store.redis_keys import REGISTRATIONS_LEN, Keys, token_digest
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_queries import QueryClient, QueryServer
from pbxis.store.redis_reader import StreamReader
from pbxis.store.redis_store import RedisStore


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached")


class Writer:
    """The node holding the AMI link: its hub on the Redis store, the feed, the answers."""

    def __init__(self, config: RedisConfig) -> None:
        keys = Keys(config.key_prefix)
        self.link = RedisLink(config, reactor)
        self.reads = RedisLink(config, reactor, name="reads")
        self.reader = StreamReader(self.reads, self.link, keys, "writer")
        self.store = RedisStore(self.link, keys, reactor, max_log=100, grace_ms=60_000)
        self.hub = Hub(reactor, grace_period=60, snapshot=self.snapshot, store=self.store)
        self.feed = RegistrationFeed(
            self.link,
            self.reader,
            keys,
            reactor,
            current=self.current,
            load=self.store._load_agent,
            register=lambda agent, queues, name: self.hub.register(agent, queues, name),
            unregister=self.hub.unregister,
        )
        self.answers = QueryServer(self.link, self.reader, keys, self.answer)

    def snapshot(self, agent: str) -> list[AgentEvent]:
        return [AgentEvent(agent, EXTENSION_STATUS, 9, {"status": "snapshot"})]

    def current(self, agent: str) -> tuple[str, Any, Any] | None:
        r = self.hub.get(agent)
        return None if r is None else (r.token, r.queues, r.name)

    def answer(self, kind: str, args: dict[str, Any]) -> Any:
        assert kind == "snapshot"
        span = self.hub.snapshot_span(args["agent"], bool(args["reset"]))
        return None if span is None else [span.first, span.last, span.reset]

    async def start(self) -> Writer:
        self.link.start()
        self.reads.start()
        await self.link.when_connected(10)
        await self.store.load()
        self.store.adopt(lambda agent, queues, name: self.hub.register(agent, queues, name))
        await self.feed.start()
        await self.answers.start()
        self.reader.start()
        return self

    async def stop(self) -> None:
        self.hub.close_all()
        await self.store.drain(5)
        await self.reader.stop()
        await self.link.stop()
        await self.reads.stop()


class Web:
    """A web node: its hub on the follower store."""

    def __init__(self, config: RedisConfig, name: str = "web", grace_ms: int = 60_000) -> None:
        keys = Keys(config.key_prefix)
        self.link = RedisLink(config, reactor)
        self.reads = RedisLink(config, reactor, name="reads")
        self.reader = StreamReader(self.reads, self.link, keys, name)
        self.queries = QueryClient(self.link, self.reader, keys, name, reactor)
        self.store = FollowerStore(self.link, self.reader, self.queries, keys, reactor, grace_ms=grace_ms)
        self.hub = Hub(reactor, grace_period=60, snapshot=lambda agent: [], store=self.store)
        self.store.on_registered = lambda agent, queues, name: self.hub.register(agent, queues, name)
        self.store.on_appended = self.hub.appended
        self.store.on_ended = self.hub.ended

    async def start(self) -> Web:
        self.link.start()
        self.reads.start()
        await self.link.when_connected(10)
        await self.store.load()
        await self.queries.start()
        self.store.adopt()
        self.reader.start()
        return self

    async def register(self, agent: str) -> str:
        await self.store.prepare_register(agent, ["sales"], None)
        return self.hub.register(agent, ["sales"], None).token

    async def client(self, token: str, since: int | None) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        registration = await self.hub.lookup(token)
        assert registration is not None
        await self.hub.prepare(registration, since)
        sub = self.hub.subscribe(registration, since, "sse", lambda es: got.extend(e.json for e in es), print)
        sub.resumeProducing()
        return got

    async def stop(self) -> None:
        self.hub.close_all()
        await self.reader.stop()
        await self.link.stop()
        await self.reads.stop()


def done(n: int) -> AgentEvent:
    return AgentEvent("1001", AGENT_COMPLETE, n, {"n": n})


@pytest_twisted.ensureDeferred
async def test_a_web_client_reads_the_writers_snapshot_first_then_live_events_and_resumes(
    redis_config: RedisConfig,
) -> None:
    writer = await Writer(redis_config).start()
    web = await Web(redis_config).start()
    try:
        token = await web.register("1001")
        await _until(lambda: writer.hub.get("1001") is not None)  # the feed brought it
        assert writer.hub.get("1001").token == token  # type: ignore[union-attr]
        writer.hub.publish([done(1)])  # before the client: not for it
        got = await web.client(token, None)
        assert [e["type"] for e in got] == [EXTENSION_STATUS]  # snapshot first
        first = got[0]["id"]
        writer.hub.publish([done(2), done(3)])
        await _until(lambda: len(got) == 3)
        assert [e["id"] for e in got] == [first, first + 1, first + 2]
        assert [e.get("n") for e in got[1:]] == [2, 3]
        # a resume from an id this log never had: reset, then the writer's fresh snapshot
        again = await web.client(token, 10**9)
        assert [e["type"] for e in again] == [RESET, EXTENSION_STATUS]
        # a resume from a real id: exactly what came after it
        resumed = await web.client(token, first)
        assert [e.get("n") for e in resumed[:2]] == [2, 3]
    finally:
        await web.stop()
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_a_token_issued_elsewhere_a_moment_ago_is_found_in_redis(redis_config: RedisConfig) -> None:
    writer = await Writer(redis_config).start()
    a = await Web(redis_config, "a").start()
    b = await Web(redis_config, "b").start()
    try:
        token = await a.register("1001")
        assert b.hub.by_token(token) is None or b.hub.by_token(token).agent == "1001"  # type: ignore[union-attr]
        found = await b.hub.lookup(token)  # at once, before or after b's feed brought it
        assert found is not None and found.agent == "1001" and found.token == token
        assert await b.hub.lookup(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert await b.register("1001") == token  # registering again on b: the same token
    finally:
        await b.stop()
        await a.stop()
        await writer.stop()


def test_a_gap_in_a_replica_drops_its_head_so_that_readers_get_reset() -> None:
    """The writer trimmed past what this node had read: never a silent gap."""

    class Holder:
        budget = Budget()

    elog = FollowerLog(100, Holder(), 0)  # type: ignore[arg-type]
    rows = [StoredEntry(i, "agentComplete", f'{{"id":{i},"type":"agentComplete"}}') for i in (1, 2, 3)]
    elog.load(1, 3, rows, 0.0)
    assert elog.can_replay(1) and len(elog) == 3
    size, closed = elog.receive(
        [StoredEntry(6, "closed", '{"id":6,"type":"closed","reason":"expired"}')], 1.0
    )
    assert size > 0 and closed == "expired"
    assert elog.first_id == 6 and elog.last_id == 6
    assert not elog.can_replay(3)  # a reader at 3 is ended with overflow, then gets reset
    assert elog.can_replay(5)
    assert Holder.budget.used == elog.bytes


@pytest_twisted.ensureDeferred
async def test_a_resume_from_an_id_this_node_has_not_read_yet_is_no_reset(redis_config: RedisConfig) -> None:
    """The client saw id N on a faster node; this node's read loop is behind: it reads
    what Redis has first, and the client gets exactly what came after N."""
    writer = await Writer(redis_config).start()
    web = await Web(redis_config).start()
    try:
        token = await web.register("1001")
        await _until(lambda: writer.hub.get("1001") is not None)
        first = await web.client(token, None)  # loads this node's copy of the log
        await web.reader.stop()  # this node's read loop falls behind
        writer.hub.publish([done(1), done(2), done(3)])
        await writer.store.drain(5)
        elog = writer.hub.store.log("1001")
        assert elog is not None
        seen = elog.last_id - 1  # the client saw done(2) on another node
        got = await web.client(token, seen)
        assert [e.get("n") for e in got] == [3]
        assert RESET not in [e["type"] for e in got]
        assert [e["id"] for e in first] == [1, 2, 3, 4]  # its other client got them too, once
    finally:
        await web.stop()
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_a_log_nobody_reads_here_is_dropped_and_loaded_again_for_a_resume(
    redis_config: RedisConfig,
) -> None:
    writer = await Writer(redis_config).start()
    web = await Web(redis_config, grace_ms=50).start()
    try:
        token = await web.register("1001")
        await _until(lambda: writer.hub.get("1001") is not None)
        registration = web.hub.by_token(token)
        assert registration is not None
        await web.hub.prepare(registration, None)
        got: list[dict[str, Any]] = []
        sub = web.hub.subscribe(registration, None, "sse", lambda es: got.extend(e.json for e in es), print)
        sub.resumeProducing()
        writer.hub.publish([done(1)])
        await _until(lambda: len(got) == 2)
        sub.stopProducing()  # the client left this node
        stream = web.store.keys.log("1001")
        assert stream in web.reader.following()
        web.store.sweep(set(web.hub.listening()))
        await task.deferLater(reactor, 0.1, lambda: None)
        web.store.sweep(set(web.hub.listening()))
        elog = web.store.log("1001")
        assert isinstance(elog, FollowerLog) and not elog.loaded and len(elog) == 0
        assert stream not in web.reader.following()  # the read loop no longer reads it
        writer.hub.publish([done(2)])
        await writer.store.drain(5)
        resumed = await web.client(token, got[0]["id"])  # loaded again from Redis
        assert [e.get("n") for e in resumed] == [1, 2]
    finally:
        await web.stop()
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_an_unregistration_the_capped_stream_lost_while_no_writer_ran_is_done_at_its_start(
    redis_config: RedisConfig,
) -> None:
    keys = Keys(redis_config.key_prefix)
    writer = await Writer(redis_config).start()
    web = await Web(redis_config).start()
    try:
        gone = await web.register("1001")
        kept = await web.register("1002")
        back = await web.register("1003")
        await _until(lambda: all(writer.hub.get(a) is not None for a in ("1001", "1002", "1003")))
        await writer.stop()
        # no writer: the CRM ends 1001 and 1003, then registers 1003 again (same token)
        web.hub.unregister("1001")
        web.hub.unregister("1003")

        async def marked(agent: str) -> bool:
            return await web.link.command("HGET", keys.reg(agent), "unreg") is not None

        deadline = time.monotonic() + 10
        while not (await marked("1001") and await marked("1003")):
            assert time.monotonic() < deadline, "the DELETEs did not reach Redis"
            await task.deferLater(reactor, 0.02, lambda: None)
        assert await web.register("1003") == back
        # more changes than the stream keeps: the 'unreg' entries fall off its head
        await web.link.pipeline(
            [("XADD", keys.registrations, "MAXLEN", "~", REGISTRATIONS_LEN, "*",
              "op", "end", "agent", f"other-{i}")
             for i in range(REGISTRATIONS_LEN + 3000)]
        )  # fmt: skip
        head = await web.link.command("XRANGE", keys.registrations, "-", "+", "COUNT", 1)
        assert dict(zip(*[iter(head[0][1])] * 2, strict=True))["op"] == "end"  # the DELETEs are gone
        writer = await Writer(redis_config).start()
        assert writer.hub.get("1001") is None  # ended at the writer's start, not kept for ever
        await writer.store.drain(5)  # the end is written behind
        assert await web.link.command("HGET", keys.tokens, token_digest(gone)) is None
        assert writer.hub.get("1002").token == kept  # type: ignore[union-attr]
        assert writer.hub.get("1003").token == back  # registered again after its DELETE: kept
        await _until(lambda: web.hub.get("1001") is None)  # the web node heard the end
        assert web.hub.get("1003") is not None
    finally:
        await web.stop()
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_a_web_nodes_answer_stream_expires_once_the_node_is_gone(redis_config: RedisConfig) -> None:
    writer = await Writer(redis_config).start()
    web = await Web(redis_config, "gone-soon").start()
    try:
        token = await web.register("1001")
        await _until(lambda: writer.hub.get("1001") is not None)
        await web.client(token, None)  # the snapshot is asked of the writer
        stream = Keys(redis_config.key_prefix).answers("gone-soon")
        ttl = int(await web.link.command("PTTL", stream))
        assert 0 < ttl <= 600_000  # not kept for ever by a node that will not come back
    finally:
        await web.stop()
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_a_burst_of_the_same_question_costs_the_writer_one_answer(redis_config: RedisConfig) -> None:
    writer = await Writer(redis_config).start()
    web = await Web(redis_config).start()
    try:
        await web.register("1001")
        await _until(lambda: writer.hub.get("1001") is not None)
        before = writer.answers.answered
        burst = [
            defer.ensureDeferred(web.queries.ask("snapshot", {"agent": "1001", "reset": False}))
            for _ in range(30)
        ]
        answers = await defer.gatherResults(burst)
        assert writer.answers.answered - before == 1 and web.queries.asked == 1
        assert all(a == answers[0] for a in answers) and answers[0]["ok"]
        # once answered, the next one is asked again (nothing is cached past its answer)
        await web.queries.ask("snapshot", {"agent": "1001", "reset": False})
        assert writer.answers.answered - before == 2
    finally:
        await web.stop()
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_a_re_registration_on_a_web_node_survives_the_writers_copy_written_over_it(
    redis_config: RedisConfig,
) -> None:
    keys = Keys(redis_config.key_prefix)
    writer = await Writer(redis_config).start()
    web = await Web(redis_config).start()
    try:
        await web.register("1001")
        await _until(lambda: writer.hub.get("1001") is not None)
        await writer.reader.stop()  # the writer's read loop has not read the change yet...
        await web.store.prepare_register("1001", ["sales", "support"], "Ann")
        # ...when its write-behind copy of the registration (queues ["sales"]) lands
        await writer.link.command("HSET", keys.reg("1001"), "queues", '["sales"]', "name", "null")
        writer.reader.start()
        await _until(lambda: writer.hub.get("1001").queues == ("sales", "support"))  # type: ignore[union-attr]
        assert writer.hub.get("1001").name == "Ann"  # type: ignore[union-attr]
    finally:
        await web.stop()
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_a_token_look_up_redis_does_not_answer_is_a_503_not_a_500(redis_config: RedisConfig) -> None:
    import treq

    from tests.web.streams_helpers import start_server

    web = Web(redis_config)  # never connected: Redis unreachable from this node
    server = start_server(web.hub)
    try:
        for kind, headers in [
            ("sse", {}),
            ("ws", {"Upgrade": ["websocket"], "Connection": ["Upgrade"], "Sec-WebSocket-Version": ["13"],
                    "Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ=="]}),
        ]:  # fmt: skip
            answer = await treq.get(server.url("a-token-never-seen", kind), headers=headers, pool=server.pool)
            body = (await answer.content()).decode()
            assert answer.code == 503, (kind, answer.code, body)
            # nothing of the token or of where Redis is (the store's address) goes to the client
            assert "a-token-never-seen" not in body and "127.0.0.1" not in body
            assert "redis" not in body.lower()
            if kind == "sse":
                assert answer.headers.getRawHeaders("Retry-After")
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_redis_not_answering_a_registration_is_a_503_that_does_not_name_redis(
    redis_config: RedisConfig,
) -> None:
    from pbxis.config import parse_config
    from pbxis.engine import CallCenter
    from pbxis.errors import PbxUnavailable

    web = Web(redis_config)  # never connected
    redis = {"url": redis_config.url, "key_prefix": redis_config.key_prefix}
    center = CallCenter(reactor, parse_config({"node": {"role": "web"}, "redis": redis}), store=web.store)
    with pytest.raises(PbxUnavailable) as info:  # never started: nothing to stop
        await center.register_agent_async("1001", ["sales"])
    text = str(info.value)
    assert "127.0.0.1" not in text and "redis" not in text.lower()


@pytest_twisted.ensureDeferred
async def test_a_web_node_whose_read_loop_was_away_past_the_streams_cap_reconciles(
    redis_config: RedisConfig,
) -> None:
    keys = Keys(redis_config.key_prefix)
    writer = await Writer(redis_config).start()
    web = await Web(redis_config, "a").start()
    other = await Web(redis_config, "b").start()
    try:
        await web.register("1001")
        await _until(lambda: writer.hub.get("1001") is not None)
        await web.reader.stop()  # this node's read loop is away...
        writer.hub.unregister("1001")  # ...while 1001 ends and 1003 is registered elsewhere
        await writer.store.drain(5)
        await other.register("1003")
        await other.link.pipeline(
            [("XADD", keys.registrations, "MAXLEN", "~", REGISTRATIONS_LEN, "*",
              "op", "end", "agent", f"other-{i}")
             for i in range(REGISTRATIONS_LEN + 3000)]
        )  # fmt: skip
        web.reader.start()  # back: the entries it missed are gone from the stream
        await task.deferLater(reactor, 0.3, lambda: None)
        assert web.hub.get("1001") is not None  # what the stream alone cannot tell it
        await web.store.reconcile()  # what the read loop's reconnection runs
        assert web.hub.get("1001") is None
        assert web.hub.get("1003").token == other.hub.get("1003").token  # type: ignore[union-attr]
        assert web.store._reconnected in web.reads.on_up
    finally:
        await other.stop()
        await web.stop()
        await writer.stop()
