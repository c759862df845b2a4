"""The log writer's side of registrations made on other nodes.

Web nodes write a registration to Redis themselves (the ``REGISTER`` script: the same
token on any node) and add a ``reg`` entry to the ``registrations`` stream; a ``DELETE``
on a web node adds ``unreg``. The writer (``all`` or collector node) follows that stream
with its one read loop and puts each change into its hub and tracker, so the tracker's
events for an agent registered on a web node are appended to its log, and ``closed`` of
an unregistration is appended by the one node that writes the log.

The writer's position in the stream is kept in Redis (``regpos``), written after each
batch it handled: a writer restarted (or replaced) goes on from there, so what web nodes
asked while no writer ran is done when one is back. Entries are idempotent (a ``reg`` of
a registration the hub has with the same queues and name changes nothing; an ``unreg``
of an agent not registered is nothing), so a batch handled twice after a crash between
handling and recording the position is harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from .redis_backend import _stored
from .redis_keys import Keys
from .redis_link import RedisLink
from .redis_reader import RawEntry, StreamReader

__all__ = ["RegistrationFeed"]

log = Logger(namespace="pbxis.redis")


class RegistrationFeed:
    """``current(agent)``: ``(token, queues, name)`` the hub holds, or ``None``;
    ``load(agent)``: read it from Redis into the store (the store's ``_load_agent``);
    ``register(agent, queues, name)`` / ``unregister(agent)``: the engine's."""

    def __init__(
        self,
        link: RedisLink,
        reader: StreamReader,
        keys: Keys,
        clock: object,
        *,
        current: Callable[[str], tuple[str, Sequence[str], str | None] | None],
        load: Callable[[str, float], Awaitable[bool]],
        register: Callable[[str, Sequence[str], str | None], object],
        unregister: Callable[[str], object],
    ) -> None:
        self.link = link
        self.reader = reader
        self.keys = keys
        self.clock = clock
        self.current = current
        self.load = load
        self.register = register
        self.unregister = unregister
        self.handled = 0
        self._chain: defer.Deferred[None] = defer.succeed(None)

    async def start(self) -> None:
        """Follow from the recorded position (or from now, the first time)."""
        k = self.keys
        position = await self.link.command("GET", k.regpos)
        if position is None:
            last = await self.link.command("XREVRANGE", k.registrations, "+", "-", "COUNT", 1)
            position = str(last[0][0]) if last else "0-1"
        self.reader.follow(k.registrations, str(position), self._on_entries)

    def _on_entries(self, stream: str, items: list[RawEntry]) -> None:
        batch = [(fields.get("op", ""), fields.get("agent", "")) for _, fields in items]
        last = items[-1][0]
        self._chain.addCallback(lambda _: defer.ensureDeferred(self._apply(batch, last)))
        self._chain.addErrback(lambda f: log.failure("Redis: registrations from other nodes", f))

    async def _apply(self, batch: list[tuple[str, str]], last: str) -> None:
        for op, agent in batch:
            try:
                await self._one(op, agent)
            except Exception:
                log.failure("Redis: registration change {op} of {agent}", op=op, agent=agent)
            self.handled += 1
        await self.link.command("SET", self.keys.regpos, last)

    async def _one(self, op: str, agent: str) -> None:
        held = self.current(agent)
        if op == "unreg":
            if held is not None:
                self.unregister(agent)
            return
        if op != "reg":
            return  # "end": this node wrote it
        stored = _stored(agent, await self.link.command("HGETALL", self.keys.reg(agent)))
        if stored is None:
            return  # ended since
        if held is not None:
            token, queues, name = held
            if token == stored.token and (tuple(queues) != stored.queues or name != stored.name):
                self.register(agent, stored.queues, stored.name)
            return
        if await self.load(agent, self.clock.seconds()):  # type: ignore[attr-defined]
            self.register(agent, stored.queues, stored.name)
