"""Questions a web node asks the log's writer through Redis, and the writer's answers.

A web node has no tracker: the documents of ``GET /agents/{agent}`` and ``GET /queues``,
and the snapshot a new client reads first, are the writer's (the ``all`` or collector
node, which holds the AMI link). The web node adds ``{id, from, kind, args}`` to the
``queries`` stream; the writer's one read loop reads it and adds the answer to the
asker's ``answers:{node}`` stream, read by the asker's one read loop. Questions only
read state, or append a snapshot that carries absolute state: asking again after a
timeout is harmless, so there is no claim (commands, which act on the PBX, have one:
:mod:`pbxis.store.redis_commands`). No writer reading: the question times out
(:class:`QueryTimeout`, HTTP 503 with ``Retry-After``).

The same question asked again while it is on its way (a burst of clients of one agent,
a client polling ``GET /agents/{agent}`` in a loop) waits for the answer already asked
for: the writer, which also holds the AMI link, works per distinct question in flight
on each web node, not per HTTP request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from .redis_keys import NODE_STREAM_TTL_MS, Keys
from .redis_link import RedisLink
from .redis_reader import RawEntry, StreamReader
from .single_flight import SingleFlight

__all__ = ["QueryClient", "QueryServer", "QueryTimeout"]

log = Logger(namespace="pbxis.redis")

#: entries kept in the question and answer streams (approximately)
STREAM_LEN = 10_000


class QueryTimeout(TimeoutError):
    """The writer did not answer in time (none is running, or Redis is down)."""


class QueryClient:
    """A web node's side: ``await ask(kind, args)`` is the writer's answer."""

    def __init__(self, link: RedisLink, reader: StreamReader, keys: Keys, node: str, clock: Any) -> None:
        self.link = link
        self.reader = reader
        self.keys = keys
        self.node = node
        self.clock = clock
        self._pending: dict[str, defer.Deferred[Any]] = {}
        #: one question in flight per (kind, args): the callers meanwhile share its answer
        self._asking: SingleFlight[tuple[str, str], Any] = SingleFlight()
        self.asked = 0  # questions sent to the writer (tests, /metrics)

    async def start(self) -> None:
        stream = self.keys.answers(self.node)
        last = await self.link.command("XREVRANGE", stream, "+", "-", "COUNT", 1)
        self.reader.follow(stream, str(last[0][0]) if last else "0-1", self._on_answers)

    async def ask(self, kind: str, args: dict[str, Any], timeout: float = 5.0) -> Any:
        key = (kind, json.dumps(args, sort_keys=True))
        return await self._asking.run(key, lambda: self._ask(kind, args, timeout))

    async def _ask(self, kind: str, args: dict[str, Any], timeout: float) -> Any:
        self.asked += 1
        qid = uuid.uuid4().hex
        waiting: defer.Deferred[Any] = defer.Deferred()
        self._pending[qid] = waiting
        try:
            await self.link.command(
                "XADD", self.keys.queries, "MAXLEN", "~", STREAM_LEN, "*",
                "id", qid, "from", self.node, "kind", kind, "args", json.dumps(args),
            )  # fmt: skip
            waiting.addTimeout(timeout, self.clock)
            try:
                return await waiting
            except defer.TimeoutError:
                raise QueryTimeout(f"no answer to {kind} within {timeout} s") from None
        finally:
            self._pending.pop(qid, None)

    def _on_answers(self, stream: str, items: list[RawEntry]) -> None:
        for _, fields in items:
            waiting = self._pending.pop(fields.get("id", ""), None)
            if waiting is not None and not waiting.called:
                waiting.callback(json.loads(fields.get("answer", "null")))


AnswerFn = Callable[[str, dict[str, Any]], Any]


class QueryServer:
    """The writer's side: ``answer(kind, args)`` (synchronous, JSON-able) for each question."""

    def __init__(
        self,
        link: RedisLink,
        reader: StreamReader,
        keys: Keys,
        answer: AnswerFn,
        *,
        serving: Callable[[], bool] | None = None,
    ) -> None:
        #: whether this node is the writer now (its AMI lease): a node past it answers nothing
        self.serving = serving
        self.link = link
        self.reader = reader
        self.keys = keys
        self.answer = answer
        self.answered = 0

    async def start(self) -> None:
        # questions asked before this writer started have timed out already
        last = await self.link.command("XREVRANGE", self.keys.queries, "+", "-", "COUNT", 1)
        self.reader.follow(self.keys.queries, str(last[0][0]) if last else "0-1", self._on_queries)

    def _on_queries(self, stream: str, items: list[RawEntry]) -> None:
        if self.serving is not None and not self.serving():
            return
        replies: list[tuple[Any, ...]] = []
        askers: set[str] = set()
        for _, fields in items:
            try:
                answer = {"ok": self.answer(fields.get("kind", ""), json.loads(fields.get("args", "{}")))}
            except Exception as e:
                answer = {"error": type(e).__name__, "message": str(e)}
            self.answered += 1
            askers.add(fields.get("from", ""))
            replies.append(
                ("XADD", self.keys.answers(fields.get("from", "")), "MAXLEN", "~", 1000, "*",
                 "id", fields.get("id", ""), "answer", json.dumps(answer))
            )  # fmt: skip
        replies.extend(("PEXPIRE", self.keys.answers(node), NODE_STREAM_TTL_MS) for node in sorted(askers))
        if replies:
            self.link.pipeline(replies).addErrback(lambda f: log.warn("Redis: answers lost: {f}", f=f.value))
