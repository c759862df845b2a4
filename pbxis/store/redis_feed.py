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

The stream is capped (``REGISTRATIONS_LEN``): a writer down while more changes were made
would miss the oldest. So the stream only wakes the writer; what it does is decided by the
registrations themselves, which are authoritative: the ``agents`` set and each
``reg:{agent}`` hash, where a web node's ``DELETE`` leaves an ``unreg`` mark
(``REQUEST_END``; registering again removes it). :meth:`RegistrationFeed.reconcile` reads
them all at start and whenever the read loop's connection comes back (it may have been
away long enough for the stream to move on past its position): every registration the
hub lacks is taken, every marked one ended. An ``unreg`` entry ends only a marked one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from .redis_backend import _stored, asked
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
        serving: Callable[[], bool] | None = None,
    ) -> None:
        #: whether this node is the writer now (its AMI lease): a node past it applies nothing
        self.serving = serving
        self.link = link
        self.reader = reader
        self.keys = keys
        self.clock = clock
        self.current = current
        self.load = load
        self.register = register
        self.unregister = unregister
        self.handled = 0
        self.reconciled = 0  # reconciliations done (tests, logs)
        self._chain: defer.Deferred[None] = defer.succeed(None)
        self._started = False
        reader.link.on_up.append(self._reconnected)

    async def start(self) -> None:
        """Follow from the recorded position (or from now, the first time)."""
        k = self.keys
        position = await self.link.command("GET", k.regpos)
        if position is None:
            last = await self.link.command("XREVRANGE", k.registrations, "+", "-", "COUNT", 1)
            position = str(last[0][0]) if last else "0-1"
        else:
            first = await self.link.command("XRANGE", k.registrations, "-", "+", "COUNT", 1)
            if first and _stream_id(str(first[0][0])) > _stream_id(str(position)):
                log.warn("Redis: registration changes were made past the stream's cap while no writer ran")
        await self.reconcile()
        self._started = True
        self.reader.follow(k.registrations, str(position), self._on_entries)

    def _reconnected(self) -> None:
        if self._started:
            self._chain.addCallback(lambda _: defer.ensureDeferred(self.reconcile()))
            self._chain.addErrback(lambda f: log.warn("Redis: reconciling registrations: {e}", e=f.value))

    async def reconcile(self) -> None:
        """The hub made equal to the registrations in Redis (see the module docstring)."""
        k = self.keys
        agents = sorted(str(a) for a in await self.link.command("SMEMBERS", k.agents))
        if not agents:
            self.reconciled += 1
            return
        rows = await self.link.pipeline([("HMGET", k.reg(agent), "token", "unreg") for agent in agents])
        for agent, row in zip(agents, rows, strict=True):
            if isinstance(row, Exception) or row[0] is None:
                continue  # ended meanwhile
            try:
                if row[1] is not None:
                    if self.current(agent) is not None:
                        self.unregister(agent)
                elif self.current(agent) is None:
                    await self._one("reg", agent)
            except Exception:
                log.failure("Redis: reconciling the registration of {agent}", agent=agent)
        self.reconciled += 1

    def _on_entries(self, stream: str, items: list[RawEntry]) -> None:
        if self.serving is not None and not self.serving():
            return
        batch = [(fields.get("op", ""), fields.get("agent", ""), fields) for _, fields in items]
        last = items[-1][0]
        self._chain.addCallback(lambda _: defer.ensureDeferred(self._apply(batch, last)))
        self._chain.addErrback(lambda f: log.failure("Redis: registrations from other nodes", f))

    async def _apply(self, batch: list[tuple[str, str, dict[str, str]]], last: str) -> None:
        for op, agent, fields in batch:
            try:
                await self._one(op, agent, fields)
            except Exception:
                log.failure("Redis: registration change {op} of {agent}", op=op, agent=agent)
            self.handled += 1
        await self.link.command("SET", self.keys.regpos, last)

    async def _one(self, op: str, agent: str, fields: dict[str, str] | None = None) -> None:
        held = self.current(agent)
        if op == "unreg":
            # only a marked registration: a DELETE the CRM's new PUT crossed ends nothing
            if held is not None and await self.link.command("HGET", self.keys.reg(agent), "unreg"):
                self.unregister(agent)
            return
        if op != "reg":
            return  # "end": this node wrote it
        # the queues and name the entry asked for: the hash's may be this writer's own
        # write-behind copy, written over them since
        stored = asked(_stored(agent, await self.link.command("HGETALL", self.keys.reg(agent))), fields)
        if stored is None:
            return  # ended since
        if held is not None:
            token, queues, name = held
            if token == stored.token and (tuple(queues) != stored.queues or name != stored.name):
                self.register(agent, stored.queues, stored.name)
            return
        if await self.load(agent, self.clock.seconds()):  # type: ignore[attr-defined]
            self.register(agent, stored.queues, stored.name)


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
