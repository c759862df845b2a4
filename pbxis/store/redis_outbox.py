"""A webhook endpoint's outbox kept in Redis: pending deliveries survive a restart or ``kill -9``.

The delivery loop (:mod:`pbxis.webhooks.delivery`) is synchronous, so this outbox is
the in-memory one (:class:`~pbxis.webhooks.outbox.MemoryOutbox`: same lanes, same
``max_pending`` bound, oldest waiting dropped) plus a write-behind copy in one Redis
HASH per endpoint (``webhook:{name}``, field = the item's sequence number, value =
``[agent, webhook-id, enqueued, body]`` JSON). An item is written when offered and
deleted from Redis only once the loop removed it (a 2xx, a give-up, or dropped for
room), so a crash re-delivers at most what was in flight: at least once, same
``webhook-id``.

Writes (``HSET`` / ``HDEL``, both idempotent) gather ``FLUSH_DELAY`` and go in one
pipeline through the :class:`~pbxis.store.redis_link.RedisLink`, which fails fast
while Redis is down. Delivery goes on from memory meanwhile; what was not
acknowledged is sent again, in order, once the link is up (and at most once a second
while it is not: no tight loop). What waits is bounded: one pending write per item in
memory, and one delete per item that may have reached Redis. When the link comes
back every item in memory is written again (a Redis restarted without persistence
lost them; an idempotent ``HSET`` costs nothing otherwise).

Start: :meth:`RedisOutbox.load` reads the hash back, in sequence order (per agent:
the order they were offered), before anything new is offered; the loop then resumes.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pbxis.webhooks.outbox import Item, MemoryOutbox

from .redis_backend import _pairs
from .redis_keys import Keys
from .redis_link import RedisError, RedisLink, RedisTimeout, RedisUnavailable

__all__ = ["FLUSH_DELAY", "RedisOutbox"]

log = Logger(namespace="pbxis.webhooks")

#: seconds writes gather before one pipeline; the most a ``kill -9`` loses unwritten
FLUSH_DELAY = 0.01
#: seconds between write attempts while Redis is unreachable
RETRY_DELAY = 1.0


class RedisOutbox(MemoryOutbox):
    """See the module docstring. ``link`` is started by its owner; :meth:`load` first."""

    def __init__(self, link: RedisLink, keys: Keys, name: str, clock: Any) -> None:
        super().__init__()
        self.link = link
        self.key = keys.webhook(name)
        self.name = name
        self.clock = clock
        #: seq -> value to write, or None to delete; insertion order is write order
        self._pending: dict[int, str | None] = {}
        #: seqs whose HSET was sent (maybe in Redis): their removal must be written
        self._sent: set[int] = set()
        self._flushing = False
        self._scheduled: Any = None
        self._drained: list[defer.Deferred[None]] = []
        self.writes = 0  # pipelines acknowledged (tests)
        self.loaded = False
        link.on_up.append(self._link_up)

    # -- start -----------------------------------------------------------------------

    async def load(self) -> int:
        """Read back what a previous process left pending; returns how many items."""
        fields = _pairs(await self.link.command("HGETALL", self.key))
        rows = []
        for field, value in fields.items():
            try:
                agent, msg_id, enqueued, body = json.loads(value)
                rows.append((int(field), str(agent), str(msg_id), float(enqueued), str(body)))
            except (ValueError, TypeError) as e:  # not ours: say so, keep it out of the loop
                log.error(
                    "webhook {name}: unreadable outbox entry {f} in Redis ({e})", name=self.name, f=field, e=e
                )
        rows.sort()
        for seq, agent, msg_id, enqueued, body in rows:
            item = Item(seq, agent, msg_id, body.encode("utf-8"), enqueued)
            self._all[seq] = item
            self._lanes.setdefault(agent, deque()).append(item)
            self._sent.add(seq)
            self._seq = max(self._seq, seq)
        self.loaded = True
        if rows:
            log.info("webhook {name}: {n} pending deliveries back from Redis", name=self.name, n=len(rows))
        return len(rows)

    # -- the Outbox protocol (memory first, Redis behind) ---------------------------------

    def add(self, agent: str, msg_id: str, body: bytes, now: float) -> Item:
        item = super().add(agent, msg_id, body, now)
        self._pending[item.seq] = _encode(item)
        self._schedule()
        return item

    def remove(self, item: Item) -> None:
        if self._all.get(item.seq) is not item:
            return
        super().remove(item)
        if item.seq in self._sent:
            self._pending.pop(item.seq, None)
            self._pending[item.seq] = None
        else:  # never sent: nothing to delete
            self._pending.pop(item.seq, None)
        self._schedule()

    # -- writing ---------------------------------------------------------------------

    def pending_writes(self) -> int:
        return len(self._pending) + (1 if self._flushing else 0)

    def drain(self, timeout: float) -> defer.Deferred[None]:
        """Fires when every write is acknowledged, or after ``timeout`` (service stop)."""
        if not self.pending_writes():
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._drained.append(d)
        self._flush()
        d.addTimeout(timeout, self.clock)
        d.addErrback(lambda f: None)
        return d

    def _link_up(self) -> None:
        for seq, item in self._all.items():
            self._pending.setdefault(seq, _encode(item))
        self._schedule()

    def _schedule(self, delay: float = FLUSH_DELAY) -> None:
        if self._scheduled is None and not self._flushing and self._pending:
            self._scheduled = self.clock.callLater(delay, self._flush)

    def _flush(self) -> None:
        if self._scheduled is not None:
            if self._scheduled.active():
                self._scheduled.cancel()
            self._scheduled = None
        if self._flushing or not self._pending:
            return
        if not self.link.connected:
            self._schedule(RETRY_DELAY)  # and on_up writes at once
            return
        batch, self._pending = self._pending, {}
        commands: list[tuple[Any, ...]] = []
        for seq, value in batch.items():
            if value is None:
                commands.append(("HDEL", self.key, seq))
            else:
                commands.append(("HSET", self.key, seq, value))
                self._sent.add(seq)
        self._flushing = True
        d = self.link.pipeline(commands)
        d.addBoth(self._written, batch)

    def _written(self, result: Any, batch: dict[int, str | None]) -> None:
        self._flushing = False
        failed = isinstance(result, Failure) or any(isinstance(r, RedisError) for r in result)
        if failed:
            if isinstance(result, Failure) and not result.check(RedisUnavailable, RedisTimeout):
                log.failure("webhook {name}: writing the outbox to Redis failed", result, name=self.name)
            elif not isinstance(result, Failure):
                log.error("webhook {name}: Redis refused an outbox write: {e}", name=self.name, e=result)
            # not acknowledged: all of it goes again, before anything newer of the same item
            newer, self._pending = self._pending, dict(batch)
            for seq, value in newer.items():
                self._pending.pop(seq, None)
                self._pending[seq] = value
            self._schedule(RETRY_DELAY)
            return
        self.writes += 1
        for seq, value in batch.items():
            if value is None:
                self._sent.discard(seq)
        if self._pending:
            self._schedule()
            return
        waiters, self._drained = self._drained, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)


def _encode(item: Item) -> str:
    return json.dumps(
        [item.agent, item.msg_id, item.enqueued, item.body.decode("utf-8")], separators=(",", ":")
    )
