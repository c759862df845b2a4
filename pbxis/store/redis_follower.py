"""The hub's store on a web node: a follower of the logs another node writes.

A web node (``[node] role = "web"``) serves streams and registrations but has no AMI
link and writes no log: the logs' one writer is the node holding the AMI link (``all``
or collector, :mod:`pbxis.store.redis_store`). This store keeps, in this process:

* every registration, by agent and by token (a token issued on any node works here):
  loaded at start, then kept current by the ``registrations`` stream, which every node
  follows with its one read loop (``reg`` entries: registered or changed, anywhere;
  ``end``: the writer ended it). A registration made *here* is written to Redis first
  (:meth:`prepare_register`: the ``REGISTER`` script, same token on any node, even when
  two nodes register one agent at once), then into this hub.
* a replica of the log of each agent a client of this node asked for, loaded on that
  client's arrival (:meth:`prepare`) and then fed by the node's one ``XREAD`` loop
  (:mod:`pbxis.store.redis_reader`), never one blocking read per client. Ids are the
  writer's; a gap (the writer trimmed past what this node had) drops the replica's
  head, so a client that needed it is ended with ``overflow`` and gets ``reset``.

What the hub would write, the writer writes: a new client's snapshot (or ``reset`` and a
snapshot) is asked of the writer (:class:`~pbxis.store.redis_queries.QueryClient`),
which appends it (or points at one appended within ``snapshot_window``) and answers
with its ids; :meth:`prepare` waits until the replica holds them and notes the span,
so the hub's :meth:`~pbxis.hub.hub.Hub.subscribe` positions the client just before it,
as it does for its own snapshots. ``DELETE`` is asked of the writer too (an ``unreg``
entry); ``closed`` then comes back through the log and ends the clients here
(:meth:`~pbxis.hub.hub.Hub.ended`). Grace periods are counted in Redis
(:mod:`pbxis.store.redis_grace`): this store only says so (``shared_grace``).

The ``registrations`` stream is capped: a read loop away long enough (Redis unreachable
from this node only) could come back past entries trimmed meanwhile. Each time the read
loop's connection comes back, :meth:`FollowerStore.reconcile` compares this node's
registrations with Redis's (the ``agents`` set and their tokens): one ended meanwhile is
ended here, one made meanwhile is taken.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pbxis.events import AgentEvent
from pbxis.hub.log import ENTRY_OVERHEAD
from pbxis.hub.memory import MemoryLog, MemoryStore
from pbxis.hub.registration import Registration
from pbxis.hub.store import QueueState, SnapshotSpan
from pbxis.hub.tokens import new_token

from .redis_backend import Stored, StoredEntry, _pairs, _stored, asked
from .redis_keys import REGISTRATIONS_LEN, Keys, token_digest
from .redis_link import RedisLink
from .redis_queries import QueryClient
from .redis_reader import RawEntry, StreamReader, log_entries
from .redis_scripts import REGISTER, REQUEST_END

__all__ = ["FollowerLog", "FollowerStore"]

log = Logger(namespace="pbxis.redis")

#: seconds a new client waits for the writer's snapshot to reach this node
SNAPSHOT_WAIT = 5.0


class FollowerLog(MemoryLog):
    """A replica of one agent's log: entries arrive from Redis with the writer's ids."""

    def __init__(self, max_len: int, store: FollowerStore, last: int) -> None:
        super().__init__(max_len, store.budget, 0)
        self.loaded = False
        self.loading: defer.Deferred[None] | None = None
        self.last_id = last
        self._base = last + 1
        self._waiters: list[tuple[int, defer.Deferred[None]]] = []

    def append(self, events: Iterable[AgentEvent], now: float, fence: int = -1) -> int:
        # the hub asks only when prepare() was skipped or failed: nothing is written here
        log.warn("Redis follower: not appending {n} events to a log this node does not write",
                 n=len(list(events)))  # fmt: skip
        return 0

    def append_queue_state(self, state: QueueState, agent_json: str, now: float, fence: int) -> int:
        return 0

    def load(self, first: int, last: int, entries: list[StoredEntry], now: float) -> None:
        """Fill from Redis: entries ``first..last`` (nothing handed to anybody yet)."""
        self._clear(first)
        self.last_id = first - 1
        self.receive(entries, now)
        self.last_id = max(self.last_id, last)
        self.loaded = True

    def _clear(self, base: int) -> None:
        self._charge(-self.bytes)
        for column in (self._types, self._texts, self._touched, self._frames):
            column.clear()
        self._base = base
        self._start = 0

    def unload(self) -> None:
        """Back to the state before :meth:`load` (ids kept): nothing held."""
        self._clear(self.last_id + 1)
        self._snapshot = None
        self._absent.clear()
        self.loaded = False
        self.loading = None

    def receive(self, entries: list[StoredEntry], now: float) -> tuple[int, str | None]:
        """Entries read from Redis, in order: ``(bytes added, reason of a closed)``."""
        size = 0
        closed = None
        for entry in entries:
            if entry.id <= self.last_id:
                continue  # had it (read while loading)
            if entry.id != self.last_id + 1:
                self._clear(entry.id)  # the writer trimmed past us: readers that needed it get reset
            self.last_id = entry.id
            self._types.append(entry.type)
            self._texts.append(entry.text)
            self._touched.append(now)
            self._frames.append(None)
            size += len(entry.text)
            self._charge(len(entry.text) + ENTRY_OVERHEAD)
            if entry.type == "closed":
                closed = str(json.loads(entry.text).get("reason", "unregistered"))
        if size:
            self._trim_cap()
        for waiter in [w for w in self._waiters if w[0] <= self.last_id]:
            self._waiters.remove(waiter)
            waiter[1].callback(None)
        return size, closed

    def _trim_cap(self) -> None:
        if len(self) > self.max_len:
            self._drop_to(len(self._texts) - self.max_len)

    def reached(self, last: int, clock: Any, timeout: float) -> defer.Deferred[None]:
        """Fires once the replica holds id ``last``."""
        if self.last_id >= last:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiters.append((last, d))
        d.addTimeout(timeout, clock)
        return d


class FollowerStore(MemoryStore):
    """See the module docstring. ``load()`` before the hub is used, then ``follow()``."""

    #: the hub does not write the logs, and leaves grace periods to Redis
    writes_logs = False
    shared_grace = True

    def __init__(
        self,
        link: RedisLink,
        reader: StreamReader,
        queries: QueryClient,
        keys: Keys,
        clock: Any,
        *,
        grace_ms: int,
        max_log: int = 10_000,
        max_log_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        super().__init__(max_log=max_log, max_log_bytes=max_log_bytes)
        self.link = link
        self.reader = reader
        self.queries = queries
        self.keys = keys
        self.clock = clock
        self.grace_ms = grace_ms
        #: the hub's calls, set by the service: register(agent, queues, name) for a
        #: registration made elsewhere, appended(agent, bytes), ended(agent, reason)
        self.on_registered: Callable[[str, Sequence[str], str | None], object] = lambda *a: None
        self.on_appended: Callable[[str, int], None] = lambda agent, size: None
        self.on_ended: Callable[[str, str], None] = lambda agent, reason: None
        self._known: dict[str, Stored] = {}
        self._by_stream: dict[str, str] = {}
        self._chain: defer.Deferred[None] = defer.succeed(None)
        self._position = "0-1"
        #: agent -> since when no client here reads its (loaded) log
        self._idle: dict[str, float] = {}
        self._following = False
        reader.link.on_up.append(self._reconnected)

    # -- start -----------------------------------------------------------------------

    async def load(self) -> int:
        """Every registration in Redis (tokens included); where the stream of changes starts."""
        k = self.keys
        last = await self.link.command("XREVRANGE", k.registrations, "+", "-", "COUNT", 1)
        self._position = str(last[0][0]) if last else "0-1"
        agents = sorted(str(a) for a in await self.link.command("SMEMBERS", k.agents))
        replies = await self.link.pipeline([("HGETALL", k.reg(agent)) for agent in agents]) if agents else []
        for agent, fields in zip(agents, replies, strict=True):
            stored = _stored(agent, fields)
            if stored is not None:
                self._known[agent] = stored
        return len(self._known)

    def adopt(self) -> int:
        """Put the loaded registrations into the hub; then follow the changes."""
        n = 0
        for agent, stored in list(self._known.items()):
            self.on_registered(agent, stored.queues, stored.name)
            n += 1
        self.reader.follow(self.keys.registrations, self._position, self._on_registrations)
        self._following = True
        return n

    def _reconnected(self) -> None:
        if self._following:
            self._chain.addCallback(lambda _: defer.ensureDeferred(self.reconcile()))
            self._chain.addErrback(lambda f: log.warn("Redis follower: reconciling: {e}", e=f.value))

    async def reconcile(self) -> None:
        """This node's registrations made equal to Redis's (see the module docstring)."""
        k = self.keys
        agents = sorted(str(a) for a in await self.link.command("SMEMBERS", k.agents))
        rows = await self.link.pipeline([("HGETALL", k.reg(agent)) for agent in agents]) if agents else []
        stored = {}
        for agent, fields in zip(agents, rows, strict=True):
            if not isinstance(fields, Exception) and (found := _stored(agent, fields)) is not None:
                stored[agent] = found
        for agent, registration in list(self._registrations.items()):
            now = stored.get(agent)
            if now is None or now.token != registration.token:
                self.on_ended(agent, "unregistered")  # ended (or replaced) meanwhile
        for agent, now in stored.items():
            if agent not in self._registrations:
                self._known[agent] = now
                self.on_registered(agent, now.queues, now.name)

    def health(self) -> dict[str, Any]:
        """``/health``'s ``redis``: a web node can do its job while Redis answers."""
        connected = self.link.connected and self.reader.link.connected
        return {
            "status": "ok" if connected else "unavailable",
            "connected": connected,
            "url": self.link.config.safe_url,
            "role": "web",
            "following": len(self._by_stream),
        }

    # -- the store interface ---------------------------------------------------------

    def add(self, registration: Registration) -> FollowerLog:
        stored = self._known.pop(registration.agent, None)
        if stored is not None:
            registration.token = stored.token
            registration.created = stored.created
        else:
            log.warn("Redis follower: agent {agent} registered here only", agent=registration.agent)
        self._registrations[registration.agent] = registration
        self._tokens.add(registration.token, registration)
        elog = FollowerLog(self.max_log, self, 0 if stored is None else stored.last)
        self._logs[registration.agent] = elog
        return elog

    def claim(self, agent: str) -> int:
        return 0

    def remove(self, agent: str) -> None:
        self._idle.pop(agent, None)
        stream = self.keys.log(agent)
        self.reader.unfollow(stream)
        self._by_stream.pop(stream, None)
        super().remove(agent)

    # -- what a follower asks of Redis and of the writer -----------------------------

    async def prepare_register(self, agent: str, queues: Sequence[str], name: str | None) -> None:
        """The registration in Redis first: the token every node gives for ``agent``."""
        k = self.keys
        token = new_token()
        await self.link.script(
            REGISTER,
            [k.reg(agent), k.tokens, k.alive, k.log(agent), k.state(agent), k.agents, k.registrations],
            [agent, token, token_digest(token), json.dumps(list(queues)), json.dumps(name),
             int(self.clock.seconds() * 1000), self.grace_ms, REGISTRATIONS_LEN],
        )  # fmt: skip
        stored = _stored(agent, await self.link.command("HGETALL", k.reg(agent)))
        current = self._registrations.get(agent)
        if stored is not None and (current is None or current.token != stored.token):
            if current is not None:  # ours ended meanwhile; this is a new registration
                self.on_ended(agent, "unregistered")
            self._known[agent] = stored

    async def find_token(self, token: str) -> Registration | None:
        """A token this node does not know yet (issued elsewhere, its ``reg`` entry not
        read yet): looked up in Redis by its digest, compared in constant time."""
        agent = await self.link.command("HGET", self.keys.tokens, token_digest(token))
        if agent is None:
            return None
        agent = str(agent)
        stored = _stored(agent, await self.link.command("HGETALL", self.keys.reg(agent)))
        if stored is None or not hmac.compare_digest(
            stored.token.encode(), token.encode("utf-8", "surrogatepass")
        ):
            return None
        current = self._registrations.get(agent)
        if current is None or current.token != stored.token:
            if current is not None:
                self.on_ended(agent, "unregistered")
            self._known[agent] = stored
            self.on_registered(agent, stored.queues, stored.name)
        return self.by_token(token)

    def request_unregister(self, agent: str) -> None:
        """``DELETE``: the writer ends the registration; ``closed`` comes through the log."""
        registration = self._registrations.get(agent)
        token = "" if registration is None else registration.token
        d = self.link.script(
            REQUEST_END, [self.keys.reg(agent), self.keys.registrations], [agent, token, REGISTRATIONS_LEN]
        )
        d.addErrback(lambda f: log.warn("Redis follower: unregistering {a} failed: {f}", a=agent, f=f.value))

    async def prepare(self, agent: str, since: int | None, window: float) -> None:
        """Load the replica; have the writer append the snapshot a new client reads first."""
        elog = self._logs.get(agent)
        if not isinstance(elog, FollowerLog):
            return
        self._idle.pop(agent, None)  # not dropped while its client is being prepared
        await self._ensure_loaded(agent, elog)
        if since and since > elog.last_id:
            # the client saw ``since`` on another node, whose read loop was faster than
            # ours: what Redis has first (a resume is not a reset because of our lag)
            rows = await self.link.command("XRANGE", self.keys.log(agent), f"({elog.last_id}-0", "+")
            self._on_log(self.keys.log(agent), [(str(i), _pairs(f)) for i, f in rows])
        if since and elog.can_replay(since):
            return
        span = elog.snapshot
        now = self.clock.seconds()
        if span is not None and now - span.at < window and (not since or span.reset is not None):
            return
        answer = await self.queries.ask("snapshot", {"agent": agent, "reset": bool(since)}, SNAPSHOT_WAIT)
        got = (answer or {}).get("ok")
        if not got:
            return  # the writer does not hold it (ending): the client is told by closed
        first, last, reset = int(got[0]), int(got[1]), got[2]
        await elog.reached(max(last, reset or 0), self.clock, SNAPSHOT_WAIT)
        if self._logs.get(agent) is elog:
            elog.note_snapshot(SnapshotSpan(first, last, self.clock.seconds(), reset))

    def sweep(self, listening: set[str]) -> None:
        """Drop the copy of each log no client here has read for a grace period: memory
        follows this node's clients, not every agent ever served. A client that comes
        back loads it again from Redis (:meth:`prepare`)."""
        now = self.clock.seconds()
        grace = self.grace_ms / 1000
        for agent, elog in list(self._logs.items()):
            if not isinstance(elog, FollowerLog) or not elog.loaded or agent in listening:
                self._idle.pop(agent, None)
                continue
            if now - self._idle.setdefault(agent, now) < grace:
                continue
            del self._idle[agent]
            stream = self.keys.log(agent)
            self.reader.unfollow(stream)
            self._by_stream.pop(stream, None)
            elog.unload()

    async def ask(self, kind: str, args: dict[str, Any]) -> Any:
        """The writer's answer to a question (``agent``, ``queues``): see redis_queries."""
        return await self.queries.ask(kind, args)

    async def _ensure_loaded(self, agent: str, elog: FollowerLog) -> None:
        if elog.loaded:
            return
        if elog.loading is None:
            elog.loading = defer.ensureDeferred(self._load_log(agent, elog))
        # each waiter gets its own Deferred: the shared one's result is handed on
        mine: defer.Deferred[None] = defer.Deferred()

        def settle(result: Any) -> None:
            mine.callback(None) if not isinstance(result, Failure) else mine.errback(result)

        elog.loading.addBoth(settle)
        await mine

    async def _load_log(self, agent: str, elog: FollowerLog) -> None:
        k = self.keys
        try:
            entries, bounds = await self.link.pipeline(
                [("XRANGE", k.log(agent), "-", "+"), ("HMGET", k.reg(agent), "first", "last")]
            )
        except BaseException:
            elog.loading = None  # the next client tries again
            raise
        rows = log_entries([(str(i), _pairs(f)) for i, f in entries])
        first_s, last_s = (bounds or [None, None])[:2]
        last = max(int(last_s) if last_s is not None else 0, rows[-1].id if rows else 0)
        first = rows[0].id if rows else (int(first_s) if first_s is not None else last + 1)
        elog.load(first, last, rows, self.clock.seconds())
        stream = k.log(agent)
        self._by_stream[stream] = agent
        self.reader.follow(stream, elog.last_id, self._on_log)

    # -- what the read loop brings -----------------------------------------------------

    def _on_log(self, stream: str, items: list[RawEntry]) -> None:
        agent = self._by_stream.get(stream)
        elog = self._logs.get(agent) if agent is not None else None
        if agent is None or not isinstance(elog, FollowerLog):
            return
        size, closed = elog.receive(log_entries(items), self.clock.seconds())
        if size:
            self.on_appended(agent, size)
        if closed is not None:
            self.on_ended(agent, closed)

    def _on_registrations(self, stream: str, items: list[RawEntry]) -> None:
        for _, fields in items:
            # one at a time, in order: an end must not overtake the registration before it
            self._chain.addCallback(self._then, fields)
            self._chain.addErrback(lambda f: log.failure("Redis follower: registrations", f))

    def _then(self, _: object, fields: dict[str, str]) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._apply(fields.get("op", ""), fields.get("agent", ""), fields))

    async def _apply(self, op: str, agent: str, fields: dict[str, str] | None = None) -> None:
        current = self._registrations.get(agent)
        if op == "end":
            if current is None:
                return
            elog = self._logs.get(agent)
            if isinstance(elog, FollowerLog) and elog.loaded:
                # ``closed`` is in the log (the writer appended it first): read up to it
                rows = await self.link.command("XRANGE", self.keys.log(agent), f"({elog.last_id}-0", "+")
                self._on_log(self.keys.log(agent), [(str(i), _pairs(f)) for i, f in rows])
            if self._registrations.get(agent) is current:
                self.on_ended(agent, "unregistered")
            return
        if op != "reg":
            return
        stored = asked(_stored(agent, await self.link.command("HGETALL", self.keys.reg(agent))), fields)
        if stored is None:
            return  # ended since
        if current is not None and current.token == stored.token:
            if tuple(current.queues) != stored.queues or current.name != stored.name:
                self.on_registered(agent, stored.queues, stored.name)
            return
        if current is not None:  # a new registration of the agent: the old one is over
            self.on_ended(agent, "unregistered")
        self._known[agent] = stored
        self.on_registered(agent, stored.queues, stored.name)
