"""The hub's store on Redis for a node that is its logs' one writer (``[node] role = "all"``).

The hub's store interface is synchronous (:mod:`pbxis.hub.store`): this store is the
in-memory store (:class:`~pbxis.hub.memory.MemoryStore`, same logs, same byte budget)
plus a write-behind copy in Redis. What survives a restart, a crash or ``kill -9`` is
what had reached Redis: registrations and tokens, every log with its ids, the queue
states, which queue versions each log carries, and each agent's last published state.

Start: :meth:`RedisStore.load` reads all of it back (one pipelined round trip per
agent) *before* the hub serves anybody, and claims each log (its fencing token goes
up, so a process that was thought dead cannot write any more); :meth:`adopt` puts the
registrations into the hub, with their old tokens. A client then resumes with
``Last-Event-ID`` exactly as if the process had never stopped, and the CRM does not
re-register.

Only real changes: the tracker starts empty after a restart and, rebuilding from
Asterisk, emits the state of every agent again. :meth:`only_changes` drops each state
event equal to the agent's last published state (kept here and in Redis), and a queue
state equal to the stored one does not get a new version. Snapshots for new clients
do not pass through it (they are the hub's, not the tracker's).

Writing: the hub calls :meth:`flush` after each batch; changed logs, registrations
and queue states are sent ``FLUSH_DELAY`` (10 ms; 2 ms on a collector) later in one pipeline, one script per
changed log, while the next changes accumulate. Each write is idempotent (entries at or below Redis's last id
are skipped), so anything not acknowledged (Redis down, a timeout) is simply sent
again once Redis is back, in order. The pending data *is* the mirror, so memory stays
bounded by the hub's own limits (``max_log``, ``max_log_bytes``) whatever the outage;
entries the mirror dropped before they reached Redis are gone from both, and a client
resuming from there after a restart gets ``reset``, never a silent gap. ``/health``
reports the state (:meth:`health`): ``ok``, ``buffering`` (Redis unreachable, for up
to ``outage_buffer_seconds`` and ``outage_buffer_events``) or ``degraded`` (beyond: a
crash now would lose what is pending). A Redis that lost its data (restarted without
persistence) is noticed by its missing ``epoch`` key and rewritten from the mirror in
full.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pbxis.events import PBX_STATUS, AgentEvent, QueueEvent
from pbxis.hub.log import ENTRY_OVERHEAD
from pbxis.hub.memory import MemoryLog, MemoryStore, without_time
from pbxis.hub.registration import Registration
from pbxis.hub.store import QueueState
from pbxis.hub.tokens import new_token
from pbxis.supervisors import is_supervisor_key

from .redis_backend import _pairs, encode_event, state_key
from .redis_keys import REGISTRATIONS_LEN, Keys, token_digest
from .redis_link import RedisError, RedisLink, RedisTimeout, RedisUnavailable
from .redis_scripts import ALIVE, CLAIM, DROP, REGISTER, SYNC
from .single_flight import SingleFlight

__all__ = ["RedisLog", "RedisStore"]

log = Logger(namespace="pbxis.redis")

#: entries sent per log per flush (a long outage's backlog goes out in several turns)
SYNC_CHUNK = 2000

#: seconds changes gather before they are written: one pipeline for many AMI events
#: under load (measured: a pipeline per reactor turn cost the clients' p50), and the
#: most a ``kill -9`` can lose that was not yet written
FLUSH_DELAY = 0.01

#: the same on a collector: its writes *are* the delivery to every web node's clients,
#: and it has no client of its own for a pipeline to delay (``bench/bench_webnodes.py``:
#: the web nodes' p50 halved at 100 clients, 9.8 -> 4.7 ms)
COLLECTOR_FLUSH_DELAY = 0.002


class RedisLog(MemoryLog):
    """A :class:`MemoryLog` that tells its store when it changed."""

    def __init__(self, store: RedisStore, agent: str, max_len: int, fence: int) -> None:
        super().__init__(max_len, store.budget, fence)
        self._store = store
        self._agent = agent
        #: the last id Redis acknowledged
        self.synced = 0

    def _changed(self) -> None:
        self._store._dirty.add(self._agent)

    def append(self, events: Iterable[AgentEvent], now: float, fence: int = -1) -> int:
        size = super().append(events, now, fence)
        self._changed()
        return size

    def append_rendered(self, type: str, rest: str, now: float) -> int:
        size = super().append_rendered(type, rest, now)
        self._changed()
        return size

    def mark_queue_version(self, queue: str, type: str, version: int, rest: str | None = None) -> None:
        super().mark_queue_version(queue, type, version, rest)
        self._changed()

    def trim(self, keep_after: int, now: float, grace: float) -> None:
        first = self.first_id
        super().trim(keep_after, now, grace)
        if self.first_id != first:
            self._changed()

    def evict(self, size: int) -> int:
        freed = super().evict(size)
        if freed:
            self._changed()
        return freed

    def queue_versions_json(self) -> str:
        return json.dumps([[q, t, v] for (q, t), v in self._queue_versions.items()])

    def load(self, first: int, last: int, entries: list[tuple[int, str, str]], now: float, qv: Any) -> None:
        """Fill from Redis: entries ``first..last`` (ids as stored), nothing appended."""
        self._base = first
        self._start = 0
        self.last_id = last
        size = 0
        for _, kind, text in entries:
            self._types.append(kind)
            self._texts.append(text)
            self._touched.append(now)
            self._frames.append(None)
            size += len(text) + ENTRY_OVERHEAD
        self._charge(size)
        self.synced = last
        for queue, kind, version in qv:
            self._queue_versions[(str(queue), str(kind))] = int(version)


class RedisStore(MemoryStore):
    """See the module docstring. ``link`` must be started; ``load()`` before the hub is used."""

    def __init__(
        self,
        link: RedisLink,
        keys: Keys,
        clock: Any,
        *,
        max_log: int = 10_000,
        max_log_bytes: int = 256 * 1024 * 1024,
        keep_closed_ms: int = 60_000,
        grace_ms: int = 0,
        outage_seconds: float = 30.0,
        outage_events: int = 100_000,
        flush_delay: float = FLUSH_DELAY,
    ) -> None:
        super().__init__(max_log=max_log, max_log_bytes=max_log_bytes)
        self.link = link
        self.flush_delay = flush_delay
        self.keys = keys
        self.clock = clock
        self.keep_closed_ms = keep_closed_ms
        #: > 0: grace periods are counted in Redis for every node (``alive``), not by
        #: the hub's timers (:mod:`pbxis.store.redis_grace`)
        self.grace_ms = grace_ms
        self.shared_grace = grace_ms > 0
        self._fresh: set[str] = set()
        self.outage_seconds = outage_seconds
        self.outage_events = outage_events
        self._dirty: set[str] = set()
        self._dirty_queues: set[tuple[str, str]] = set()
        self._forgotten: set[str] = set()
        self._dirty_state: dict[str, dict[str, str]] = {}
        self._removed: list[tuple[str, int, str, str, list[tuple[int, str, str]]]] = []
        #: agent -> state key -> value: the last published state (only_changes)
        self._published: dict[str, dict[str, str]] = {}
        #: supervisor -> the queues its board watches (:meth:`watch`), stored as its queues
        self._watched: dict[str, tuple[str, ...]] = {}
        self._loaded: dict[str, tuple[Registration, RedisLog]] = {}
        self._loading: SingleFlight[str, bool] = SingleFlight()
        self._flushing = False
        self._drained: list[defer.Deferred[None]] = []
        self._scheduled: Any = None
        self._down_since: float | None = None
        self._epoch = ""
        self._rewrite = False
        self.writes = 0  # pipelines acknowledged (tests, /metrics)
        self.stale: set[str] = set()  # agents another writer took over
        #: the node's read loop and commands (pbxis.store.redis_node), for /health
        self.node: Any = None
        #: whether this node may write now (its AMI lease, pbxis.store.redis_lease): a
        #: node past its lease writes nothing more (the fences refuse what is in flight)
        self.writable: Any = None
        link.on_up.append(self._link_up)
        link.on_down.append(self._link_down)

    # -- start -----------------------------------------------------------------------

    async def load(self) -> int:
        """Read every registration, log, queue state and published state; the agents."""
        k = self.keys
        now = self.clock.seconds()
        self._epoch = str(await self.link.command("GET", k.prefix + "epoch") or "")
        if not self._epoch:
            self._epoch = uuid.uuid4().hex
            await self.link.command("SET", k.prefix + "epoch", self._epoch, "NX")
            self._epoch = str(await self.link.command("GET", k.prefix + "epoch"))
        agents = sorted(str(a) for a in await self.link.command("SMEMBERS", k.agents))
        for agent in agents:
            await self._load_agent(agent, now)
            if self.grace_ms:
                await self.link.script(ALIVE, [k.alive], [self.grace_ms, agent, "NX"])
        versions = [0]
        for queue in sorted(str(q) for q in await self.link.command("SMEMBERS", k.queues)):
            for kind, packed in sorted(_pairs(await self.link.command("HGETALL", k.queue(queue))).items()):
                version, rest = packed.split("|", 1)
                self._queues[(queue, kind)] = QueueState(queue, kind, int(version), rest)
                self._queue_types.setdefault(queue, []).append(kind)
                versions.append(int(version))
        for _, elog in self._loaded.values():
            versions.extend(elog._queue_versions.values())
        # versions are store-wide and never reused: go on above every one a log carries
        self._versions = max(self._versions, *versions)
        log.info(
            "Redis store: loaded {n} registrations from {url}",
            n=len(self._loaded),
            url=self.link.config.safe_url,
        )
        return len(self._loaded)

    async def _load_agent(self, agent: str, now: float) -> bool:
        """Read one registration, its log and its published state; claim its log.

        Once per registration: a local registration (``prepare_register``) and the
        ``registrations`` entry it made, read back by the feed, may ask at once, and a
        second claim would make the first one's log stale."""
        if agent in self._registrations or agent in self._loaded:
            return True
        return await self._loading.run(agent, lambda: self._read_agent(agent, now))

    async def _read_agent(self, agent: str, now: float) -> bool:
        k = self.keys
        reg, entries, state = await self.link.pipeline(
            [
                ("HGETALL", k.reg(agent)),
                ("XRANGE", k.log(agent), "-", "+"),
                ("HGETALL", k.state(agent)),
            ]
        )
        fields = _pairs(reg)
        if "token" not in fields:
            return False
        if self.writable is not None and not self.writable():
            # past its lease (a paused holder resuming): a claim now would raise the
            # fence under the new holder and make *its* log stale
            raise RedisUnavailable("this node no longer holds the AMI lease: it claims no log")
        fence = int(await self.link.script(CLAIM, [k.reg(agent)], []))
        queues = tuple(json.loads(fields["queues"]))
        if is_supervisor_key(agent):
            # a supervisor's stored queues are its board's, not the hub registration's
            self._watched[agent], queues = queues, ()
        registration = Registration(
            agent,
            queues,
            json.loads(fields["name"]),
            fields["token"],
            int(fields["created"]),
        )
        elog = RedisLog(self, agent, self.max_log, fence)
        rows = [
            (int(str(i).split("-", 1)[0]), f["t"], f["j"]) for i, f in ((i, _pairs(f)) for i, f in entries)
        ]
        last = int(fields["last"])
        first = rows[0][0] if rows else last + 1
        elog.load(first, last, rows[-self.max_log :], now, json.loads(fields.get("qv") or "[]"))
        self._loaded[agent] = (registration, elog)
        self._published[agent] = _pairs(state)
        return True

    async def prepare_register(self, agent: str, queues: Sequence[str], name: str | None) -> None:
        """Before the hub registers ``agent``: the registration in Redis first, so that the
        token is the one every node gives (another node may have registered it), and a
        ``registrations`` entry tells the other nodes."""
        k = self.keys
        token = new_token()
        await self.link.script(
            REGISTER,
            [k.reg(agent), k.tokens, k.alive, k.log(agent), k.state(agent), k.agents, k.registrations],
            [agent, token, token_digest(token), json.dumps(list(queues)),
             json.dumps(name), int(self.clock.seconds() * 1000), self.grace_ms, REGISTRATIONS_LEN],
        )  # fmt: skip
        if agent not in self._registrations and agent not in self._loaded:
            await self._load_agent(agent, self.clock.seconds())

    def holds(self, agent: str) -> bool:
        return agent in self._registrations

    def adopt(self, register: Any) -> list[Registration]:
        """Call ``register(agent, queues, name)`` (the engine's) for each loaded
        registration; :meth:`add` gives the hub the stored token and log."""
        adopted = []
        for agent, (registration, _) in list(self._loaded.items()):
            register(agent, self.watched(agent) or registration.queues, registration.name)
            adopted.append(registration)
        return adopted

    # -- the store interface ---------------------------------------------------------

    def add(self, registration: Registration) -> MemoryLog:
        loaded = self._loaded.pop(registration.agent, None)
        if loaded is not None:
            stored, elog = loaded
            registration.token = stored.token
            registration.created = stored.created
            registration.queues = stored.queues if not registration.queues else registration.queues
        else:
            self._fences += 1
            elog = RedisLog(self, registration.agent, self.max_log, 0)
            if self.shared_grace:
                self._fresh.add(registration.agent)
        self._registrations[registration.agent] = registration
        self._tokens.add(registration.token, registration)
        self._logs[registration.agent] = elog
        self._dirty.add(registration.agent)
        return elog

    def watch(self, agent: str, queues: Sequence[str]) -> None:
        if agent in self._registrations and self._watched.get(agent) != tuple(queues):
            self._watched[agent] = tuple(queues)
            self._dirty.add(agent)
            self.flush()

    def watched(self, agent: str) -> tuple[str, ...]:
        """The queues supervisor ``agent``'s board watches, as stored (``()`` for an agent)."""
        return self._watched.get(agent, ())

    def claim(self, agent: str) -> int:
        # the fence in Redis was claimed at load (or starts at 0 for a new registration)
        return self._logs[agent].fence

    def update(self, registration: Registration, queues: Sequence[str], name: str | None) -> None:
        super().update(registration, queues, name)
        self._dirty.add(registration.agent)

    def remove(self, agent: str) -> None:
        registration = self._registrations.get(agent)
        elog = self._logs.get(agent)
        if registration is not None and isinstance(elog, RedisLog):
            pending = [(e.id, e.type, e.text) for e in elog.after(max(elog.synced, elog.first_id - 1), 10**9)]
            self._removed.append((agent, elog.fence, registration.token, elog.queue_versions_json(), pending))
        self._fresh.discard(agent)
        self._dirty.discard(agent)
        self._watched.pop(agent, None)
        self._published.pop(agent, None)
        self._dirty_state.pop(agent, None)
        super().remove(agent)
        self.flush()

    def set_queue_state(self, queue: str, type: str, rest: str) -> QueueState:
        old = self._queues.get((queue, type))
        if old is not None and without_time(old.rest) == without_time(rest):
            return old  # the same state again (a rebuild after a restart): not a change
        state = super().set_queue_state(queue, type, rest)
        self._dirty_queues.add((queue, type))
        return state

    def forget_queue(self, queue: str) -> None:
        super().forget_queue(queue)
        self._dirty_queues = {(q, t) for q, t in self._dirty_queues if q != queue}
        self._forgotten.add(queue)
        self.flush()

    def flush(self) -> None:
        if self._scheduled is None and not self._flushing:
            self._scheduled = self.clock.callLater(self.flush_delay, self._flush)

    # -- only real changes -----------------------------------------------------------

    def only_changes(self, events: Iterable[AgentEvent | QueueEvent]) -> list[AgentEvent | QueueEvent]:
        """Drop state events equal to the agent's last published state (see module doc)."""
        out: list[AgentEvent | QueueEvent] = []
        for event in events:
            if type(event) is AgentEvent:
                key = state_key(event)
                if key:
                    value = encode_event(event)[1]
                    known = self._published.setdefault(event.agent, {})
                    if known.get(key, _DEFAULTS.get(key)) == value:
                        continue
                    known[key] = value
                    self._dirty_state.setdefault(event.agent, {})[key] = value
            out.append(event)
        return out

    # -- health ----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        pending = sum(
            e.last_id - max(e.synced, e.first_id - 1) for e in self._logs.values() if isinstance(e, RedisLog)
        )
        if self.link.connected and self._down_since is None:
            status = "ok"
        else:
            down = 0.0 if self._down_since is None else self.clock.seconds() - self._down_since
            within = down <= self.outage_seconds and pending <= self.outage_events
            status = "buffering" if within else "degraded"
        return {
            "status": status,
            "connected": self.link.connected,
            "url": self.link.config.safe_url,
            "pendingEvents": pending,
            "downFor": None
            if self._down_since is None
            else round(self.clock.seconds() - self._down_since, 1),
            "staleAgents": sorted(self.stale),
            **self._node_health(),
        }

    def _node_health(self) -> dict[str, Any]:
        if self.node is None:
            return {}
        stats = self.node.stats()
        return {
            "node": self.node.name,
            "readLoop": "connected" if stats["reader_connected"] else "reconnecting",
            # a collector (or all node) runs web nodes' commands while it holds the lease
            "commandLease": stats["holds_lease"],
        }

    # -- writing ---------------------------------------------------------------------

    def _link_down(self) -> None:
        if self._down_since is None:
            self._down_since = self.clock.seconds()

    def _link_up(self) -> None:
        self._rewrite = True  # the epoch check decides whether everything goes again
        self.flush()

    def _flush(self) -> None:
        self._scheduled = None
        if self._flushing or not self.link.connected:
            return
        if self.writable is not None and not self.writable():
            return
        self._flushing = True
        defer.ensureDeferred(self._write()).addBoth(self._written)

    def _written(self, result: Any) -> None:
        self._flushing = False
        if isinstance(result, Failure):
            if not result.check(RedisUnavailable, RedisTimeout):
                log.failure("Redis store: writing failed", result)
            elif self._down_since is None:
                self._down_since = self.clock.seconds()
            # sent again once the link is up (on_up), and in a second if it still is
            if self._scheduled is None:
                self._scheduled = self.clock.callLater(1.0, self._flush)
            return
        if self.pending():
            self.flush()
            return
        waiters, self._drained = self._drained, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def pending(self) -> bool:
        """Whether anything is not yet acknowledged by Redis."""
        return bool(
            self._flushing
            or self._dirty
            or self._dirty_queues
            or self._dirty_state
            or self._removed
            or self._forgotten
            or self._fresh
        )

    def drain(self, timeout: float) -> defer.Deferred[None]:
        """Fires when everything pending is written, or after ``timeout`` (service stop)."""
        if not self.pending():
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._drained.append(d)
        self.flush()
        d.addTimeout(timeout, self.clock)
        d.addErrback(lambda f: None)
        return d

    async def _write(self) -> None:
        k = self.keys
        if self._rewrite:
            epoch = await self.link.command("GET", k.prefix + "epoch")
            if epoch != self._epoch:
                # Redis lost its data (restarted without persistence): all of it again
                log.warn("Redis store: Redis lost its data; writing everything again")
                await self.link.command("SET", k.prefix + "epoch", self._epoch)
                for agent, elog in self._logs.items():
                    if isinstance(elog, RedisLog):
                        elog.synced = 0
                    self._dirty.add(agent)
                self._dirty_queues.update(self._queues)
                for agent, known in self._published.items():
                    self._dirty_state.setdefault(agent, {}).update(known)
                if self.shared_grace:  # their grace periods start again
                    self._fresh.update(self._registrations)
            self._rewrite = False  # only once the check got its answer
        removed, self._removed = self._removed, []
        fresh, self._fresh = self._fresh, set()
        dirty, self._dirty = self._dirty, set()
        queues, self._dirty_queues = self._dirty_queues, set()
        forgotten, self._forgotten = self._forgotten, set()
        states, self._dirty_state = self._dirty_state, {}
        commands: list[tuple[Any, ...]] = []
        syncs: list[tuple[str, RedisLog, int]] = []
        try:
            for agent, fence, token, qv, pending in removed:
                commands.append(self._sync_command(agent, fence, token, "[]", "null", 0, 0, qv, pending))
                commands.append(
                    ("EVALSHA", DROP.sha, 5, k.reg(agent), k.log(agent), k.tokens, k.agents, k.state(agent),
                     agent, fence, token, self.keep_closed_ms)
                )  # fmt: skip
                # other nodes drop it too (their clients had ``closed`` through the log)
                commands.append(
                    ("XADD", k.registrations, "MAXLEN", "~", REGISTRATIONS_LEN, "*",
                     "op", "end", "agent", agent)
                )  # fmt: skip
            for agent in dirty | set(states):
                registration = self._registrations.get(agent)
                rlog = self._logs.get(agent)
                if registration is None or not isinstance(rlog, RedisLog) or agent in self.stale:
                    continue
                after = max(rlog.synced, rlog.first_id - 1)
                entries = [(e.id, e.type, e.text) for e in rlog.after(after, SYNC_CHUNK)]
                commands.append(
                    self._sync_command(
                        agent, rlog.fence, registration.token,
                        _json(self._watched.get(agent) or registration.queues),
                        _json(registration.name), registration.created, rlog.first_id,
                        rlog.queue_versions_json(), entries, states.get(agent, {}),
                    )
                )  # fmt: skip
                syncs.append((agent, rlog, entries[-1][0] if entries else rlog.synced))
            for queue in forgotten:
                if queue not in self._queue_types:  # not seen again since
                    commands.append(("DEL", k.queue(queue)))
                    commands.append(("SREM", k.queues, queue))
            for queue, kind in queues:
                state = self._queues.get((queue, kind))
                if state is not None:
                    commands.append(("HSET", k.queue(queue), kind, f"{state.version}|{state.rest}"))
                    commands.append(("SADD", k.queues, queue))
            for agent in fresh:
                if agent in self._registrations:
                    commands.append(("EVALSHA", ALIVE.sha, 1, k.alive, self.grace_ms, agent, ""))
            if not commands:
                return
            replies = await self._send(commands)
        except BaseException:
            # nothing acknowledged: all of it goes again (every write is idempotent)
            self._removed[:0] = removed
            self._dirty |= dirty
            self._dirty_queues |= queues
            self._forgotten |= forgotten
            self._fresh |= fresh
            for agent, values in states.items():
                self._requeue_state(agent, values)
            raise
        self.writes += 1
        replies_iter = iter(replies)
        for _ in removed:
            next(replies_iter)
            next(replies_iter)
            next(replies_iter)
        for agent, elog, upto in syncs:
            reply = next(replies_iter)
            if isinstance(reply, RedisError) and str(reply).startswith("STALE"):
                log.error("Redis store: another writer took over agent {agent}; not writing it", agent=agent)
                self.stale.add(agent)
                continue
            if isinstance(reply, Exception):
                log.error("Redis store: writing agent {agent} failed: {e}", agent=agent, e=reply)
                self._dirty.add(agent)
                self._requeue_state(agent, states.get(agent, {}))
                continue
            elog.synced = max(elog.synced, upto)
            if elog.last_id > elog.synced:
                self._dirty.add(agent)  # more than one chunk behind
        if not self.link.connected:
            return
        if self._down_since is not None and not self._dirty:
            self._down_since = None

    def _requeue_state(self, agent: str, values: dict[str, str]) -> None:
        """State values not acknowledged go again, unless a newer value is pending."""
        if agent in self._registrations and values:
            pending = self._dirty_state.setdefault(agent, {})
            for key, value in values.items():
                pending.setdefault(key, value)

    def _sync_command(
        self,
        agent: str,
        fence: int,
        token: str,
        queues: str,
        name: str,
        created: int,
        first: int,
        qv: str,
        entries: list[tuple[int, str, str]],
        state: dict[str, str] | None = None,
    ) -> tuple[Any, ...]:
        k = self.keys
        args: list[Any] = [
            agent,
            fence,
            token,
            _digest(token),
            queues,
            name,
            created,
            first,
            qv,
            len(entries),
        ]
        for entry in entries:
            args.extend(entry)
        args.append(len(state or ()))
        for pair in (state or {}).items():
            args.extend(pair)
        return ("EVALSHA", SYNC.sha, 5, k.reg(agent), k.log(agent), k.tokens, k.agents, k.state(agent), *args)

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The pipeline; scripts Redis does not know (restarted) are loaded and it goes again."""
        replies = await self.link.pipeline(commands)
        if any(isinstance(r, RedisError) and str(r).startswith("NOSCRIPT") for r in replies):
            await self.link.pipeline([("SCRIPT", "LOAD", x.source) for x in (SYNC, DROP, ALIVE)])
            replies = await self.link.pipeline(commands)
        return replies


#: the state an agent has before any event set it: the PBX is connected (the tracker
#: says so only after it was not)
_DEFAULTS = {PBX_STATUS: json.dumps([PBX_STATUS, {"connected": True}], separators=(",", ":"), sort_keys=True)}


@functools.lru_cache(maxsize=4096)
def _json(value: tuple[str, ...] | str | None) -> str:
    """Registration fields as stored, encoded once per distinct value, not per write."""
    return json.dumps(list(value) if isinstance(value, tuple) else value)


@functools.lru_cache(maxsize=65536)
def _digest(token: str) -> str:
    return token_digest(token)


