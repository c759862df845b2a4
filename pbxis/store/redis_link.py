"""One Redis connection kept up on the epoll reactor: fail fast while down, a deadline per command.

Client library: txredisapi (Twisted-native, hiredis for parsing). redis-py's asyncio
client would need Twisted's asyncio reactor under the whole daemon, and every stream
write and AMI read would pay for it; ``bench/bench_redis.py`` measures both (README,
"Redis"). We use txredisapi's *protocol* only, under our own
:class:`~twisted.application.internet.ClientService`: its own pool waits for a
connection when there is none (a command issued during an outage would hang), while
pbxis needs to know at once that Redis is down so that it can buffer (see
:mod:`pbxis.store.redis_buffer`) and say so on ``/health``.

* ``command`` / ``pipeline`` / ``script`` fail with :class:`RedisUnavailable` at once
  while there is no connection, and with :class:`RedisTimeout` after ``command_timeout``.
  A late answer is still consumed in order by the protocol, so a timeout never
  misaligns the replies of later commands.
* Reconnects back off exponentially with jitter up to 10 s (no tight loop while
  Redis is down); ``on_up`` / ``on_down`` listeners hear each transition once.
* The password goes to ``AUTH`` only; logs show :attr:`RedisConfig.safe_url`.
* Scripts are sent by SHA-1 (``EVALSHA``) and loaded again on ``NOSCRIPT``, which is
  what a restarted Redis answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger

from pbxis.config import RedisConfig

__all__ = ["RedisError", "RedisLink", "RedisTimeout", "RedisUnavailable", "Script"]

log = Logger(namespace="pbxis.redis")

Value = str | int | float | bytes


class RedisUnavailable(ConnectionError):
    """No connection to Redis right now (it is reconnecting)."""


class RedisTimeout(TimeoutError):
    """Redis did not answer within ``command_timeout``."""


RedisError = txredisapi.ResponseError


class Script:
    """A Lua script sent by SHA-1; ``name`` is for logs."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def _bulk(value: Value) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, float):
        data = repr(value).encode()
    else:
        data = str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def encode_command(args: Sequence[Value]) -> bytes:
    """One command in RESP: what txredisapi's ``_build_command`` makes, in a third of
    the time (measured: the writes of a pipeline are the store's main client-side cost)."""
    return b"*%d\r\n" % len(args) + b"".join([_bulk(a) for a in args])


class _Factory(protocol.Factory):
    """What txredisapi's protocol expects of its factory, without its pool."""

    isLazy = True

    def __init__(self, link: RedisLink, config: RedisConfig) -> None:
        self.link = link
        self.config = config
        self.connectionQueue = txredisapi.PeekableQueue()

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        p = txredisapi.RedisProtocol(
            "utf-8",
            password=self.config.password or None,
            username=self.config.username or None,
            dbid=self.config.db,
            convertNumbers=False,
        )
        p.factory = self
        return p  # type: ignore[no-any-return]

    def stopTrying(self) -> None:
        """txredisapi calls this when AUTH or SELECT failed; we keep retrying with backoff."""

    def connectionError(self, why: str) -> None:
        # txredisapi's message says which step failed; it never contains the password
        self.link._connection_error(why)


class RedisLink:
    """See the module docstring. ``start()`` connects; ``stop()`` closes for good."""

    def __init__(
        self,
        config: RedisConfig,
        reactor: Any,
        *,
        endpoint: IStreamClientEndpoint | None = None,
        name: str = "commands",
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.name = name
        self.on_up: list[Callable[[], None]] = []
        self.on_down: list[Callable[[], None]] = []
        self.last_error = ""
        #: commands and request bytes sent (benches, /metrics)
        self.sent_commands = 0
        self.sent_bytes = 0
        #: commands refused (no connection) or unanswered in time (/metrics)
        self.failed_commands = 0
        self._protocol: Any = None
        self._unusable = 0
        self._backoff = backoffPolicy(initialDelay=0.2, maxDelay=10.0)
        if endpoint is None:
            endpoint = HostnameEndpoint(reactor, config.host, config.port, timeout=config.connect_timeout)
            if config.tls:
                from twisted.internet.ssl import optionsForClientTLS

                endpoint = wrapClientTLS(optionsForClientTLS(config.host), endpoint)
        self._service = ClientService(
            endpoint,
            _Factory(self, config),
            retryPolicy=self._retry_delay,
            clock=reactor,
            prepareConnection=self._prepare,
        )

    @property
    def connected(self) -> bool:
        p = self._protocol
        return p is not None and bool(p.connected)

    def start(self) -> None:
        self._service.startService()

    def stop(self) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._service.stopService)

    def when_connected(self, timeout: float | None = None) -> defer.Deferred[None]:
        """Fires once a connection is usable (AUTH and SELECT done)."""
        if self.connected:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()

        def up() -> None:
            self.on_up.remove(up)
            if not d.called:
                d.callback(None)

        self.on_up.append(up)
        if timeout is not None:
            d.addTimeout(timeout, self.reactor)
        return d

    # -- connection life cycle -------------------------------------------------------

    def _prepare(self, p: Any) -> None:
        """Usable once AUTH and SELECT are done. ClientService counts a TCP connection as
        success; one lost before it was usable (a wrong password) still counts as a
        failed attempt for the backoff (:meth:`_retry_delay`)."""
        self._unusable += 1
        p.whenConnected().addCallback(self._usable)
        p.whenDisconnected().addCallback(self._lost)

    def _retry_delay(self, attempt: int) -> float:
        return float(self._backoff(max(attempt, self._unusable)))

    def _usable(self, p: Any) -> Any:
        self._unusable = 0
        self._protocol = p
        self.last_error = ""
        log.info("Redis {name} connection up ({url})", name=self.name, url=self.config.safe_url)
        for listener in list(self.on_up):
            listener()
        return p

    def _lost(self, p: Any) -> None:
        if self._protocol is not p:
            return
        self._protocol = None
        log.warn("Redis {name} connection lost ({url})", name=self.name, url=self.config.safe_url)
        for listener in list(self.on_down):
            listener()

    def _connection_error(self, why: str) -> None:
        self.last_error = why
        log.warn("{why} ({url})", why=why, url=self.config.safe_url)

    # -- commands --------------------------------------------------------------------

    def _conn(self) -> Any:
        p = self._protocol
        if p is None or not p.connected:
            raise RedisUnavailable(f"Redis {self.config.safe_url} is not connected")
        return p

    def _deadline(self, d: defer.Deferred[Any], timeout: float | None) -> defer.Deferred[Any]:
        seconds = self.config.command_timeout if timeout is None else timeout

        def translate(f: Any) -> Any:
            if f.check(defer.TimeoutError, defer.CancelledError):
                self.failed_commands += 1
                raise RedisTimeout(f"Redis did not answer within {seconds} s")
            if f.check(txredisapi.ConnectionError, RedisUnavailable):
                self.failed_commands += 1
                raise RedisUnavailable(str(f.value))
            return f

        d.addTimeout(seconds, self.reactor)
        d.addErrback(translate)
        return d

    def command(self, *args: Value, timeout: float | None = None) -> defer.Deferred[Any]:
        """One command; ``timeout`` overrides ``command_timeout`` (a blocking read)."""
        try:
            p = self._conn()
        except RedisUnavailable as e:
            self.failed_commands += 1
            return defer.fail(e)
        self.sent_commands += 1
        return self._deadline(p.execute_command(*args, apply_timeout=False), timeout)

    def pipeline(self, commands: Sequence[Sequence[Value]]) -> defer.Deferred[list[Any]]:
        """Several commands in one write; the answers in order (an error answer is an
        exception object in the list, not a failure of the whole pipeline)."""
        try:
            p = self._conn()
        except RedisUnavailable as e:
            self.failed_commands += len(commands)
            return defer.fail(e)
        if not commands:
            return defer.succeed([])
        data = b"".join([encode_command(c) for c in commands])
        self.sent_commands += len(commands)
        self.sent_bytes += len(data)
        replies = []
        for _ in commands:
            replies.append(p.replyQueue.get().addCallback(p.handle_reply))
        p.transport.write(data)

        def settle(results: list[tuple[bool, Any]]) -> list[Any]:
            out = []
            for ok, value in results:
                if ok:
                    out.append(value)
                elif value.check(txredisapi.ConnectionError):
                    raise RedisUnavailable(str(value.value))
                else:
                    out.append(value.value)
            return out

        d = defer.DeferredList(replies, consumeErrors=True)
        d.addCallback(settle)
        return self._deadline(d, None)

    def script(
        self, script: Script, keys: Sequence[Value], args: Sequence[Value], *, timeout: float | None = None
    ) -> defer.Deferred[Any]:
        """``EVALSHA``, then ``EVAL`` once if Redis lost the script (``NOSCRIPT``)."""
        numkeys = len(keys)

        def retry(f: Any) -> Any:
            f.trap(txredisapi.ResponseError)
            if not str(f.value).startswith("NOSCRIPT"):
                return f
            return self.command("EVAL", script.source, numkeys, *keys, *args, timeout=timeout)

        d = self.command("EVALSHA", script.sha, numkeys, *keys, *args, timeout=timeout)
        d.addErrback(retry)
        return d
