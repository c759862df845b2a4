"""A node's Redis parts beyond the store: its reading connection, its one read loop, and the
commands it runs (a node with the AMI link) or sends (a node without one).

One per daemon (:mod:`pbxis.service`). The read loop (:mod:`pbxis.store.redis_reader`)
blocks on its own connection; the command connection is the store's. A node with the
AMI link runs a :class:`~pbxis.store.redis_commands.CommandExecutor` (it holds the
``collector`` lease while it runs); a web node a
:class:`~pbxis.store.redis_commands.CommandSender`. Both start once Redis answers
(:meth:`start` is retried by the daemon's load loop), and the executor lets the lease
go on a clean stop.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from pbxis.config import Config

from .redis_commands import CommandExecutor, CommandSender, ExecuteFn
from .redis_keys import Keys
from .redis_lease import Lease
from .redis_link import RedisLink
from .redis_reader import StreamReader

__all__ = ["RedisNode", "node_name"]


def node_name(config: Config) -> str:
    """``[node].name``, else one unique to this process (host and PID): the name its
    reply stream, wake stream and lease are known by."""
    return config.node.name or f"{socket.gethostname()}-{os.getpid()}"


class RedisNode:
    """See the module docstring. ``link`` is the command connection (started by its owner)."""

    def __init__(
        self, config: Config, link: RedisLink, reactor: Any, keys: Keys | None = None, label: str = ""
    ) -> None:
        assert config.redis is not None
        self.name = node_name(config)
        #: one PBX's keys (:func:`~pbxis.store.redis_keys.pbx_keys`): a node runs one
        #: RedisNode per PBX, each with its own reading connection
        self.keys = keys if keys is not None else Keys(config.redis.key_prefix)
        self.link = link
        self.reading = RedisLink(config.redis, reactor, name=f"reader{label}")
        self.reader = StreamReader(self.reading, link, self.keys, self.name)
        self.reactor = reactor
        self.executor: CommandExecutor | None = None
        self.sender: CommandSender | None = None
        self._started = False

    def execute(self, execute: ExecuteFn, lease: Lease | None = None) -> CommandExecutor:
        """Run the commands other nodes send with ``execute(kind, args)``, while this node
        holds ``lease`` (the AMI lease, :mod:`pbxis.store.redis_lease`)."""
        self.executor = CommandExecutor(
            self.link, self.reader, self.keys, self.name, self.reactor, execute, lease=lease
        )
        return self.executor

    def send(self) -> CommandSender:
        """Send this node's commands to the node that runs them (``CommandSender.send``)."""
        self.sender = CommandSender(self.link, self.reader, self.keys, self.name, self.reactor)
        return self.sender

    def connect(self) -> None:
        """Start the reading connection and the loop (it waits for Redis itself)."""
        self.reading.start()
        self.reader.start()

    async def start(self) -> None:
        """Follow the command or reply stream; Redis must answer (the caller retries)."""
        if self._started:
            return
        if self.sender is not None:
            await self.sender.start()
        if self.executor is not None:
            await self.executor.start()
        self._started = True

    async def stop(self) -> None:
        if self.executor is not None:
            await self.executor.stop()
        await self.reader.stop()
        await self.reading.stop()

    def stats(self) -> dict[str, Any]:
        """The figures ``/metrics`` shows (:class:`pbxis.metrics.RedisCollector`)."""
        sender, executor = self.sender, self.executor
        return {
            "reads": self.reader.reads,
            "following": len(self.reader.following()),
            "reader_connected": self.reading.connected,
            "forwarded": 0 if sender is None else sender.forwarded,
            "no_collector": 0 if sender is None else sender.no_collector,
            "timed_out": 0 if sender is None else sender.timed_out,
            "executed": 0 if executor is None else executor.executed,
            "holds_lease": executor is not None and executor.holds_lease,
            "takeovers": 0 if executor is None else executor.lease.takeovers,
            "holder": None if executor is None else executor.lease.holder,
            "command_lag": 0.0 if executor is None else executor.lag,
        }
