"""Commands from a web node to the collector through Redis, each executed at most once, ever.

A web node has no AMI link. It adds the command to the ``commands`` stream (with a
deadline on Redis's clock) and waits for the answer on its own ``replies`` stream, both
read by the node's one read loop (:mod:`pbxis.store.redis_reader`). The collector reads
``commands`` and, before it runs one, *claims* it: ``SET command:{id} NX``. The web node
that gives up waiting claims it too, as ``abandoned``. Exactly one claim wins, so:

* the command runs only if the collector's claim won, and then once;
* a web node whose wait timed out and whose ``abandoned`` claim won knows the command
  never ran and never will: no collector took it (503 with ``Retry-After``, as with no
  collector at all: safe to retry); one whose claim lost knows a collector took it, and
  waits a little longer for the answer (504 "may or may not have run" after);
* nothing is ever sent again: not after a timeout, not after a collector restart (a
  command older than its deadline is abandoned by the collector's claim script).

No collector holding the lease (``collector``, refreshed every ``lease/3``): the sender
fails at once with :class:`NoCollector` (HTTP 503 with ``Retry-After``); so does Redis
not answering before the command was sent. Redis failing *while* it is sent (the command
may have landed) is a wait that timed out: the sender claims it abandoned, and answers by
that claim, 503 when it won, 504 "may or may not have run" when it lost or Redis did not
answer it either.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from pbxis.errors import CommandError, PbxTimeout, PbxUnavailable

from .redis_keys import NODE_STREAM_TTL_MS, Keys
from .redis_lease import CLAIM_HELD, Lease
from .redis_link import RedisLink, RedisTimeout, RedisUnavailable, Script
from .redis_reader import RawEntry, StreamReader
from .redis_scripts import CLAIM_COMMAND

__all__ = ["CommandExecutor", "CommandNotTaken", "CommandSender", "CommandTimeout", "NoCollector"]

log = Logger(namespace="pbxis.redis")

#: commands and replies kept in their streams (approximately: ``MAXLEN ~``)
STREAM_LEN = 10_000

#: ms a command's claim is kept after its deadline (``CLAIM_COMMAND``): the sender's
#: abandonment comes right at the deadline, and no collector's claim wins after it
CLAIM_TTL_MS = 60_000

# KEYS: commands. ARGV: id, reply-to node, kind, args json, timeout ms, max len
# -> the deadline on Redis's clock (ms)
SEND = Script(
    "send_command",
    """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[5])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[6]), '*',
           'id', ARGV[1], 'from', ARGV[2], 'kind', ARGV[3], 'args', ARGV[4], 'deadline', deadline)
return deadline
""",
)

class NoCollector(PbxUnavailable):
    """No node holds the AMI link right now; ``retry_after`` seconds is a fair wait.

    A :class:`~pbxis.errors.PbxUnavailable`: the engine and the HTTP answer (503 with
    ``Retry-After``) treat it as a local command finding no AMI link."""

    def __init__(self, retry_after: int, message: str = "") -> None:
        super().__init__(
            message
            or f"no collector node holds the AMI link (none is connected to Redis); retry in {retry_after} s",
            retry_after=retry_after,
        )


class CommandNotTaken(NoCollector):
    """The lease had a holder, but no collector took the command in time (it stopped, or
    is stuck): the web node's abandonment won, so it certainly never ran and never will.
    A 503 with ``Retry-After`` like :class:`NoCollector`: retrying is safe."""

    executed = False

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            retry_after,
            "no collector took the command in time: it was not run and never will be; "
            f"safe to retry in {retry_after} s",
        )


class CommandTimeout(PbxTimeout, TimeoutError):
    """A collector took the command but did not answer in time: its outcome is unknown
    (``executed`` is ``None``). A :class:`~pbxis.errors.PbxTimeout` (HTTP 504). A command
    no collector took is :class:`CommandNotTaken` (503), never this."""

    executed: bool | None = None

    def __init__(self) -> None:
        super().__init__(
            "the collector took the command but did not answer in time (it may have stopped): "
            "it may or may not have run, and it is never sent again"
        )


class CommandSender:
    """A web node's side. ``start()`` once the reader runs; ``send()`` per command."""

    def __init__(
        self, link: RedisLink, reader: StreamReader, keys: Keys, node: str, clock: Any, *, late: float = 2.0
    ) -> None:
        self.link = link
        self.reader = reader
        self.keys = keys
        self.node = node
        self.clock = clock
        self.late = late
        self._pending: dict[str, defer.Deferred[Any]] = {}
        #: answers that came while a timed-out wait was being settled
        self._late: dict[str, Any] = {}
        #: commands forwarded, refused at once for want of a collector, timed out (/metrics)
        self.forwarded = 0
        self.no_collector = 0
        self.timed_out = 0

    async def start(self) -> None:
        stream = self.keys.replies(self.node)
        last = await self.link.command("XREVRANGE", stream, "+", "-", "COUNT", 1)
        self.reader.follow(stream, str(last[0][0]) if last else "0-1", self._on_replies)

    async def send(self, kind: str, args: dict[str, Any], timeout: float) -> Any:
        """The collector's answer to ``kind`` with ``args``; see the module docstring."""
        try:
            holder = await self.link.command("GET", self.keys.collector)
        except (RedisUnavailable, RedisTimeout):
            holder = None  # nothing sent: as safe to retry as no collector
        if holder is None:
            self.no_collector += 1
            raise NoCollector(retry_after=5)
        command_id = uuid.uuid4().hex
        waiting: defer.Deferred[Any] = defer.Deferred()
        self._pending[command_id] = waiting
        try:
            try:
                await self.link.script(
                    SEND,
                    [self.keys.commands],
                    [command_id, self.node, kind, json.dumps(args), int(timeout * 1000), STREAM_LEN],
                )
                self.forwarded += 1
                return await _within(waiting, timeout, self.clock)
            except (defer.TimeoutError, RedisUnavailable, RedisTimeout):
                pass  # no answer in time, or the command may or may not have reached Redis
            try:
                won = await self.link.script(
                    CLAIM_COMMAND, [self.keys.command(command_id)], ["abandoned", CLAIM_TTL_MS, 0]
                )
            except (RedisUnavailable, RedisTimeout):
                self.timed_out += 1
                raise CommandTimeout() from None
            if int(won):
                self.timed_out += 1
                raise CommandNotTaken(retry_after=5) from None
            if command_id in self._late:
                return self._late.pop(command_id)
            fresh: defer.Deferred[Any] = defer.Deferred()
            self._pending[command_id] = fresh
            try:
                return await _within(fresh, self.late, self.clock)
            except defer.TimeoutError:
                self.timed_out += 1
                raise CommandTimeout() from None
        finally:
            self._pending.pop(command_id, None)
            self._late.pop(command_id, None)

    def _on_replies(self, stream: str, items: list[RawEntry]) -> None:
        for _, fields in items:
            command_id = fields.get("id", "")
            waiting = self._pending.get(command_id)
            if waiting is None:
                continue  # answered already, or for a request this process no longer has
            reply = json.loads(fields.get("reply", "null"))
            if waiting.called:
                self._late[command_id] = reply
            else:
                del self._pending[command_id]
                waiting.callback(reply)


ExecuteFn = Callable[[str, dict[str, Any]], Awaitable[Any]]


class CommandExecutor:
    """The collector's side: claims and runs each command once, while it holds the lease.

    The lease is the node's AMI lease (:class:`~pbxis.store.redis_lease.Lease`, given by
    the daemon), so commands always follow the AMI link; without one (tests, a lone
    executor) it keeps a lease of its own."""

    def __init__(
        self,
        link: RedisLink,
        reader: StreamReader,
        keys: Keys,
        node: str,
        clock: Any,
        execute: ExecuteFn,
        *,
        lease_ms: int = 6000,
        lease: Lease | None = None,
    ) -> None:
        self.link = link
        self.reader = reader
        self.keys = keys
        self.node = node
        self.clock = clock
        self.execute = execute
        self.lease_ms = lease_ms
        self.executed = 0
        #: seconds from a command's arrival in Redis to its reading here, for the last one
        #: (the stream id is Redis's clock: meaningful where the clocks agree)
        self.lag = 0.0
        self._own = lease is None
        self.lease = lease if lease is not None else Lease(link, keys.collector, node, clock, lease_ms / 1000)

    async def start(self) -> None:
        last = await self.link.command("XREVRANGE", self.keys.commands, "+", "-", "COUNT", 1)
        # Commands sent before this collector started are not read: their senders time
        # out (they were never claimed, so their abandonment wins: 504 "not executed").
        self.reader.follow(self.keys.commands, str(last[0][0]) if last else "0-1", self._on_commands)
        if self._own:
            self.lease.start()

    @property
    def holds_lease(self) -> bool:
        return self.lease.valid()

    def stop(self) -> defer.Deferred[None]:
        """Let the lease go at once: web nodes answer 503 from now on instead of sending
        commands nobody will read (a crash lets it lapse instead)."""
        d = self.lease.stop()
        return defer.succeed(None) if d is None else d.addCallback(lambda _: None)

    def _on_commands(self, stream: str, items: list[RawEntry]) -> None:
        if items:
            sent_ms = int(items[-1][0].split("-", 1)[0])
            self.lag = max(0.0, self.clock.seconds() - sent_ms / 1000)
        for _, fields in items:
            defer.ensureDeferred(self._run(fields)).addErrback(
                lambda f: log.failure("command {f}", f, f=f.getErrorMessage())
            )

    async def _run(self, fields: dict[str, str]) -> None:
        command_id = fields["id"]
        if not self.lease.valid():
            return  # a standby, or a holder past its lease: the holder runs it, or nobody
        won = await self.link.script(
            CLAIM_HELD,
            [self.keys.command(command_id), self.lease.key],
            [self.node, CLAIM_TTL_MS, int(fields["deadline"])],
        )
        if not int(won):
            return  # another holder took it, or its sender gave up: never run it
        self.executed += 1
        try:
            reply = {"ok": await self.execute(fields["kind"], json.loads(fields["args"]))}
        except CommandError as e:  # a domain error: the web node raises the same one
            reply = {"error": type(e).__name__, "message": str(e), **_error_fields(e)}
        except Exception as e:
            # a bug or a fault here: logged here; its text (paths, addresses) is not the client's
            log.failure("command {kind} from {node}", kind=fields["kind"], node=fields["from"])
            reply = {"error": type(e).__name__, "message": "an internal error on the collector, logged there"}
        replies = self.keys.replies(fields["from"])
        await self.link.pipeline(
            [("XADD", replies, "MAXLEN", "~", 1000, "*", "id", command_id, "reply", json.dumps(reply)),
             ("PEXPIRE", replies, NODE_STREAM_TTL_MS)]
        )  # fmt: skip


def _error_fields(error: Exception) -> dict[str, Any]:
    """What a typed command error carries besides its message (its ``code``, its
    ``retry_after``), so that the web node raises the same error (pbxis.engine.remote)."""
    fields: dict[str, Any] = {}
    code = getattr(error, "code", None)
    if isinstance(code, str):
        fields["code"] = code
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int):
        fields["retry_after"] = retry_after
    return fields


async def _within(d: defer.Deferred[Any], seconds: float, clock: Any) -> Any:
    """``d``'s result, or :class:`defer.TimeoutError` after ``seconds`` (``d`` is cancelled)."""
    d.addTimeout(seconds, clock)
    return await d
