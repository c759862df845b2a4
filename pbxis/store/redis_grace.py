"""Grace periods counted in Redis for every node: a client anywhere keeps its registration.

Each node refreshes, every ``tick`` seconds, the deadline (``alive``: now + grace on
Redis's clock) of the agents it has connected clients for, and of those it had at the
previous tick (so that the period starts again from about when the last client left, at
most one tick late, never early). The log's one writer (the ``all`` or collector node)
also picks the registrations whose deadline passed: ``PICK_DUE`` removes each from
``alive`` in the same script, so each is ended once, by that node, with ``closed`` in its
log like any other end; web nodes see the ``closed`` through the log.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from .redis_keys import REGISTRATIONS_LEN, Keys
from .redis_link import RedisLink, RedisTimeout, RedisUnavailable
from .redis_scripts import END, PICK_DUE, REFRESH

__all__ = ["Liveness"]

log = Logger(namespace="pbxis.redis")


class Liveness:
    """``listening()``: agents with clients here. ``expire(agent)``: end it (the writer's;
    ``None`` on a web node); ``False`` when this node does not hold the registration."""

    def __init__(
        self,
        link: RedisLink,
        keys: Keys,
        clock: object,
        *,
        grace_ms: int,
        listening: Callable[[], list[str]],
        expire: Callable[[str], bool] | None = None,
        ended: Callable[[str], None] | None = None,
        sweep: Callable[[set[str]], None] | None = None,
        serving: Callable[[], bool] | None = None,
    ) -> None:
        #: whether this node may end registrations now (the writer's AMI lease)
        self.serving = serving
        self.link = link
        self.keys = keys
        self.grace_ms = grace_ms
        self.listening = listening
        self.expire = expire
        self.ended = ended
        #: called each tick with the agents listened to here (a web node drops the
        #: copies of logs nobody here reads any more)
        self.sweep = sweep
        self.expired = 0  # registrations this node ended for their grace period (tests)
        self.tick = max(0.05, min(1.0, grace_ms / 4000))
        self._previous: set[str] = set()
        self._busy = False
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = clock  # type: ignore[assignment]

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.tick, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        if self._busy or not self.link.connected:
            return
        self._busy = True
        d = defer.ensureDeferred(self._run())

        def done(result: object) -> None:
            self._busy = False

        def failed(f: Failure) -> None:
            if not f.check(RedisUnavailable, RedisTimeout):
                log.failure("Redis grace periods", f)

        d.addErrback(failed).addBoth(done)

    async def _run(self) -> None:
        now = set(self.listening())
        if self.sweep is not None:
            self.sweep(now)
        chosen = sorted(now | self._previous)
        self._previous = now
        if chosen:
            await self.link.script(REFRESH, [self.keys.alive], [self.grace_ms, *chosen])
        if self.expire is None or (self.serving is not None and not self.serving()):
            return
        due = await self.link.script(PICK_DUE, [self.keys.alive], [100])
        for agent in (str(a) for a in due or ()):
            if self.expire(agent):
                self.expired += 1
                continue
            # not held here (registered on a web node a moment ago, not yet picked up):
            # ended in Redis directly, and the other nodes are told
            closed = int(await self.link.script(END, [], [self.keys.prefix, agent, "expired", self.grace_ms]))
            if closed:
                self.expired += 1
                await self.link.command(
                    "XADD", self.keys.registrations, "MAXLEN", "~", REGISTRATIONS_LEN, "*",
                    "op", "end", "agent", agent,
                )  # fmt: skip
                if self.ended is not None:
                    self.ended(agent)
