"""A PBX's link as its holder sees it, for the nodes that do not hold it.

A web node, or a collector standing by for a PBX, has no AMI link of its own to that PBX
and cannot tell from its own state whether the PBX is up. The holder publishes what its
``/health/pbx/{pbx}`` would say (connected, link state, last event, synced) in the PBX's
``status`` key every third of ``lease_time``, with a TTL of ``lease_time``; the others
read it as often. A missing key is a PBX nobody holds (``no_holder``).

Time in the published status is wall-clock (the nodes' clocks agree to well within a
second under NTP; ``lastEventAge`` is only as exact as that).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import task

from .redis_keys import Keys
from .redis_link import RedisLink, RedisTimeout, RedisUnavailable

__all__ = ["StatusReader", "StatusWriter", "remote_health"]

HealthFn = Callable[[], dict[str, Any]]


class StatusWriter:
    """The holder's side: ``health()`` (its unit's local view) into ``status`` while
    ``holds()`` (the lease is valid)."""

    def __init__(
        self,
        link: RedisLink,
        keys: Keys,
        node: str,
        clock: Any,
        lease_time: float,
        health: HealthFn,
        holds: Callable[[], bool],
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.key = keys.status
        self.node = node
        self.lease_time = lease_time
        self.health = health
        self.holds = holds
        self.wall = wall
        self._loop = task.LoopingCall(self.publish)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.lease_time / 3, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def publish(self) -> None:
        if not self.holds():
            return
        h = self.health()
        now = self.wall()
        age = h.get("lastEventAge")
        status = {
            "holder": self.node,
            "connected": bool(h.get("connected")),
            "state": h.get("state"),
            "synced": bool(h.get("synced")),
            "reconnects": h.get("reconnects", 0),
            "lastEvent": None if age is None else round(now - float(age), 3),
            "at": round(now, 3),
        }
        d = self.link.command("SET", self.key, json.dumps(status), "PX", int(self.lease_time * 1000))
        d.addErrback(lambda f: f.trap(RedisUnavailable, RedisTimeout))


class StatusReader:
    """Another node's side: the last ``status`` read (``None``: nobody holds the PBX)."""

    def __init__(self, link: RedisLink, keys: Keys, clock: Any, interval: float) -> None:
        self.link = link
        self.key = keys.status
        self.interval = interval
        #: the holder's status as last read, ``None`` if there was none
        self.status: dict[str, Any] | None = None
        #: whether Redis answered the last read (else ``status`` is older)
        self.fresh = False
        self._asking = False
        self._loop = task.LoopingCall(self._read)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _read(self) -> None:
        if self._asking:
            return
        self._asking = True
        self.link.command("GET", self.key).addCallbacks(self._got, self._failed)

    def _got(self, raw: Any) -> None:
        self._asking = False
        self.fresh = True
        try:
            value = None if raw is None else json.loads(raw)
        except ValueError:
            value = None
        self.status = value if isinstance(value, dict) else None

    def _failed(self, failure: Any) -> None:
        self._asking = False
        self.fresh = False
        failure.trap(RedisUnavailable, RedisTimeout)


def remote_health(reader: StatusReader, *, wall: Callable[[], float] = time.time) -> dict[str, Any]:
    """A unit's ``health()`` fields from its holder's published status, as last read
    (``unknown`` while Redis does not answer: the last status read may be long gone)."""
    status = reader.status
    if not reader.fresh:
        return {"connected": False, "state": "unknown", "lastEventAge": None, "reconnects": 0,
                "synced": False, "holder": None}  # fmt: skip
    if status is None:
        return {"connected": False, "state": "no_holder", "lastEventAge": None, "reconnects": 0,
                "synced": False, "holder": None}  # fmt: skip
    last = status.get("lastEvent")
    return {
        "connected": bool(status.get("connected")),
        "state": str(status.get("state")),
        "lastEventAge": None if not isinstance(last, (int, float)) else round(max(0.0, wall() - last), 3),
        "reconnects": status.get("reconnects", 0),
        "synced": bool(status.get("synced")),
        "holder": status.get("holder"),
    }
