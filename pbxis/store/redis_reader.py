"""One read loop per node: a single blocking ``XREAD`` over every stream the node follows.

A node follows the logs of the agents it has clients for (and its reply stream, and on
the collector the command stream). One connection, dedicated to this loop because a
blocking read holds it, reads all of them at once; entries are handed to the callback
registered for their stream. The number of Redis connections and blocked reads does not
grow with clients or agents.

Following a new stream while the read is blocked: :meth:`follow` adds an entry to this
node's ``wake`` stream (on the command connection), which is part of every read, so the
blocked read returns and the next one includes the new stream. The wake stream's
position is explicit (never ``$``), so a wake sent just before the read started is not
missed.

While Redis is down the loop waits for the connection (the link backs off); then it
reads on from each stream's last position: nothing is skipped, nothing read twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from .redis_backend import StoredEntry, _pairs
from .redis_keys import NODE_STREAM_TTL_MS, Keys
from .redis_link import RedisLink, RedisTimeout, RedisUnavailable

__all__ = ["RawEntry", "StreamReader", "log_entries"]

log = Logger(namespace="pbxis.redis")

#: a stream entry as read: its stream id (``"17-0"``) and its fields
RawEntry = tuple[str, dict[str, str]]
EntriesFn = Callable[[str, list[RawEntry]], None]


class StreamReader:
    """``follow(stream, after, callback)``; ``callback(stream, entries)`` gets new entries."""

    def __init__(
        self,
        link: RedisLink,
        commands: RedisLink,
        keys: Keys,
        node: str,
        *,
        block_ms: int = 5000,
        count: int = 500,
    ) -> None:
        self.link = link
        self.commands = commands
        self.wake_key = keys.wake(node)
        self.block_ms = block_ms
        self.count = count
        self.reads = 0  # XREAD calls answered (tests and /metrics)
        self._streams: dict[str, tuple[str, EntriesFn]] = {}
        self._wake_id = "0-0"
        self._running = False
        self._blocked = False
        self._done: defer.Deferred[None] | None = None

    def follow(self, stream: str, after: int | str, callback: EntriesFn) -> None:
        """Hand ``callback`` every entry of ``stream`` after ``after`` (an event id or a stream id)."""
        cursor = after if isinstance(after, str) else f"{after}-0"
        new = stream not in self._streams
        self._streams[stream] = (cursor, callback)
        if new and self._blocked:
            self._wake()

    def unfollow(self, stream: str) -> None:
        self._streams.pop(stream, None)

    def following(self) -> list[str]:
        return list(self._streams)

    def start(self) -> None:
        if not self._running:
            self._running = True
            self._done = defer.ensureDeferred(self._loop())

    def stop(self) -> defer.Deferred[None]:
        self._running = False
        if self._blocked:
            self._wake()
        return self._done if self._done is not None else defer.succeed(None)

    def _wake(self) -> None:
        d = self.commands.pipeline(
            [
                ("XADD", self.wake_key, "MAXLEN", "~", 100, "*", "w", 1),
                ("PEXPIRE", self.wake_key, NODE_STREAM_TTL_MS),
            ]
        )
        d.addErrback(lambda f: None)  # Redis down: the loop is not blocked in a read either

    async def _loop(self) -> None:
        while self._running:
            try:
                await self.link.when_connected()
                if not self._running:
                    break
                if self._wake_id == "0-0":
                    # position the wake stream once: its last entry, or the start
                    last = await self.link.command("XREVRANGE", self.wake_key, "+", "-", "COUNT", 1)
                    self._wake_id = str(last[0][0]) if last else "0-0"
                    if self._wake_id == "0-0":
                        self._wake_id = "0-1"
                await self._read_once()
            except (RedisUnavailable, RedisTimeout) as e:
                log.debug("Redis read loop: {error}", error=e)
                if self.link.connected:
                    continue
            except Exception:
                log.failure("Redis read loop")
                from twisted.internet import reactor
                from twisted.internet.task import deferLater

                await deferLater(reactor, 1.0, lambda: None)  # no tight loop on a bug

    async def _read_once(self) -> None:
        names = [self.wake_key, *self._streams]
        ids = [self._wake_id, *(cursor for cursor, _ in self._streams.values())]
        self._blocked = True
        try:
            reply: Any = await self.link.command(
                "XREAD", "COUNT", self.count, "BLOCK", self.block_ms, "STREAMS", *names, *ids,
                timeout=self.block_ms / 1000 + self.link.config.command_timeout,
            )  # fmt: skip
        finally:
            self._blocked = False
        self.reads += 1
        if not reply:
            return
        for stream, items in _streams_of(reply):
            if not items:
                continue
            last_id = str(items[-1][0])
            if stream == self.wake_key:
                self._wake_id = last_id
                continue
            followed = self._streams.get(stream)
            if followed is None:
                continue  # unfollowed while the read was on its way
            self._streams[stream] = (last_id, followed[1])
            try:
                followed[1](stream, [(str(i), _pairs(f)) for i, f in items])
            except Exception:
                log.failure("Redis read loop: the callback of {stream} failed", stream=stream)


def log_entries(items: list[RawEntry]) -> list[StoredEntry]:
    """Entries of an agent's log (ids ``N-0``, fields ``t`` and ``j``) as the backend's."""
    return [StoredEntry(int(i.split("-", 1)[0]), f["t"], f["j"]) for i, f in items]


def _streams_of(reply: Any) -> list[tuple[str, list[Any]]]:
    """XREAD's answer as (stream, items) pairs (RESP2 gives a list, RESP3 a map)."""
    if isinstance(reply, dict):
        return [(str(k), list(v)) for k, v in reply.items()]
    return [(str(pair[0]), list(pair[1])) for pair in reply]
