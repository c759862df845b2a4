"""How the PBXes' AMI leases spread over the live collector nodes.

Every ``collector`` node competes for the lease of each PBX its config names (one
:class:`~pbxis.store.redis_lease.Lease` per PBX). Left to race, the first node up would
take them all. This module is what each lease asks before it tries to take a free lease
(:meth:`Spread.may_take`): the nodes announce themselves (a heartbeat, every third of
``lease_time``) with the PBXes they hold and may hold, and a node takes a free lease at
once only if no other live node that may hold that PBX holds fewer. Besides:

* while other nodes live, a node tries at most one lease per heartbeat, so that the
  others see its new load before they choose (two nodes started together end up with
  one PBX each, not both on whoever was quicker); nodes start with different PBXes (the
  order is rotated by the node's name), so they seldom try the same one;
* a free lease that nobody takes for a few ticks (three more than there are PBXes) is
  taken by whoever sees it (a less loaded
  node may be unable to reach that PBX or Redis): a PBX is never left without holder
  because of this module;
* :meth:`Spread.surplus` names a PBX this node should hand over: it holds two more than
  some live node that may hold that PBX (a node started late gets its share);
* a node's membership lapses after two thirds of ``lease_time``: sooner than its leases,
  so when a node dies the survivors already count without it when its leases come free,
  and take them at their first look (the takeover bound holds).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import task
from twisted.logger import Logger

from .redis_keys import NodeKeys
from .redis_link import RedisLink, RedisTimeout, RedisUnavailable, Script
from .redis_scripts import _NOW

__all__ = ["HEARTBEAT", "Spread"]

log = Logger(namespace="pbxis.redis")

# KEYS: collectors, collector_load. ARGV: node, ttl ms, load json
# -> {node, load, node, load, ...} of the live nodes (this one included)
HEARTBEAT = Script(
    "collectors_heartbeat",
    _NOW
    + """
local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, n in ipairs(gone) do redis.call('HDEL', KEYS[2], n) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local out = {}
for _, n in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = n
  out[#out + 1] = redis.call('HGET', KEYS[2], n) or '{}'
end
return out
""",
)

# KEYS: collectors, collector_load. ARGV: node -> 1 (a clean stop: the others count without it)
LEAVE = Script(
    "collectors_leave",
    "redis.call('ZREM', KEYS[1], ARGV[1])\nredis.call('HDEL', KEYS[2], ARGV[1])\nreturn 1\n",
)

#: ticks a lease is seen free before any node takes it, whatever the loads, beyond
#: one per PBX (with one try per round, spreading N PBXes takes up to N rounds)
FREE_TICKS = 3

#: heartbeats a node leaves a PBX it handed over to the others (it takes it back only
#: if nobody did, after twice FREE_TICKS; once another node was seen holding it, the
#: rule is over: that node's death is an ordinary takeover; so it is when no other live
#: node may hold it)
HANDED_ROUNDS = 6


class _Node:
    __slots__ = ("can", "held")

    def __init__(self, held: frozenset[str], can: frozenset[str]) -> None:
        self.held = held
        self.can = can


class Spread:
    """See the module docstring. ``pbxes``: those this node may hold (its config's)."""

    def __init__(
        self,
        link: RedisLink,
        keys: NodeKeys,
        node: str,
        clock: Any,
        lease_time: float,
        pbxes: Sequence[str],
    ) -> None:
        self.link = link
        self.keys = keys
        self.node = node
        self.clock = clock
        self.lease_time = lease_time
        rotate = zlib.crc32(node.encode()) % max(1, len(pbxes))
        #: this node's PBXes, in the order it tries them
        self.pbxes = tuple(pbxes[rotate:]) + tuple(pbxes[:rotate])
        #: the PBXes this node holds now (kept by the daemon: :meth:`won`, :meth:`released`)
        self.held: set[str] = set()
        #: the live nodes as the last heartbeat saw them (this one included)
        self.live: dict[str, _Node] = {}
        self.heartbeats = 0
        #: called with a PBX this node should hand over (:meth:`surplus`), one at a time
        self.on_surplus: Callable[[str], object] | None = None
        #: the PBX being handed over, until :meth:`released` (or :meth:`kept`)
        self.handing: str | None = None
        self._handed: dict[str, int] = {}
        #: PBXes handed over that another node was seen holding since: no longer held back
        #: (if that node dies at once, its PBX is taken at the first look, as any other's)
        self._taken: set[str] = set()
        self._tried_this_round = False
        self._asking = False
        self._loop = task.LoopingCall(self._beat)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.lease_time / 3, now=True)

    def stop(self) -> Any:
        """Leave the node set at once (a clean stop: no wait for the membership to lapse)."""
        if self._loop.running:
            self._loop.stop()
        d = self.link.script(LEAVE, [self.keys.collectors, self.keys.load], [self.node])
        d.addErrback(lambda f: f.trap(RedisUnavailable, RedisTimeout))
        return d

    # -- what the leases ask -------------------------------------------------------------
    def may_take(self, pbx: str, free_ticks: int) -> bool:
        """May this node try to take ``pbx``'s lease now (it was seen free ``free_ticks``
        times in a row)?"""
        patience = FREE_TICKS + len(self.pbxes)
        handed = self._handed.get(pbx)
        held_back = handed is not None and pbx not in self._taken and self.heartbeats - handed < HANDED_ROUNDS
        if held_back and self._others(pbx):  # (no live node left to leave it to: no wait)
            return free_ticks >= 2 * patience  # given away: the others' turn first
        if free_ticks >= patience:
            return True
        if self.heartbeats < 2:
            # the loads are not known yet: nodes started together see each other only
            # from their second heartbeat on (the first may have come before the others')
            return False
        others = self._others(pbx)
        if not others:
            return True  # alone (or the only one that may hold it): take all at once
        if self._tried_this_round or not free_ticks:
            return False  # one try per round, and only at a lease last seen free
        mine = len(self.held)
        if any(len(n.held) < mine for n in others):
            return False
        self._tried_this_round = True  # one try per round, won or lost: the loads move first
        return True

    def won(self, pbx: str) -> None:
        self.held.add(pbx)

    def released(self, pbx: str) -> None:
        """This node let ``pbx``'s lease go (handed it over)."""
        self.held.discard(pbx)
        self._handed[pbx] = self.heartbeats
        self._taken.discard(pbx)
        if self.handing == pbx:
            self.handing = None

    def kept(self, pbx: str) -> None:
        """A hand-over of ``pbx`` was not started after all (it was not ready)."""
        if self.handing == pbx:
            self.handing = None

    def surplus(self) -> str | None:
        """A PBX this node should hand over (it holds two more than a live node that may
        hold it), or ``None``. Never the only one it holds."""
        if len(self.held) < 2:
            return None
        for pbx in reversed(self.pbxes):
            if pbx not in self.held:
                continue
            if any(len(n.held) + 2 <= len(self.held) for n in self._others(pbx)):
                return pbx
        return None

    def _settled(self) -> bool:
        """The last PBX handed over is announced by its new holder (or it is long ago): the
        loads seen are the ones after it, so the next hand-over is not decided on stale ones."""
        if not self._handed:
            return True
        pbx, when = max(self._handed.items(), key=lambda item: item[1])
        if self.heartbeats - when >= HANDED_ROUNDS:
            return True
        return any(pbx in n.held for name, n in self.live.items() if name != self.node)

    def _others(self, pbx: str) -> list[_Node]:
        return [n for name, n in self.live.items() if name != self.node and pbx in n.can]

    # -- the heartbeat ---------------------------------------------------------------------
    def _beat(self) -> None:
        if self._asking:
            return
        self._asking = True
        load = json.dumps({"held": sorted(self.held), "can": sorted(self.pbxes)})
        ttl = int(self.lease_time * 2000 / 3)
        d = self.link.script(HEARTBEAT, [self.keys.collectors, self.keys.load], [self.node, ttl, load])
        d.addCallbacks(self._answered, self._failed)

    def _answered(self, reply: Any) -> None:
        self._asking = False
        live: dict[str, _Node] = {}
        items = list(reply or [])
        for name, raw in zip(items[::2], items[1::2], strict=False):
            try:
                load = json.loads(raw)
                live[str(name)] = _Node(frozenset(load.get("held", ())), frozenset(load.get("can", ())))
            except (ValueError, TypeError, AttributeError):
                log.warn("Redis: collector {name} announced an unreadable load", name=name)
        live[self.node] = _Node(frozenset(self.held), frozenset(self.pbxes))
        self.live = live
        self.heartbeats += 1
        for given in self._handed:
            if any(given in n.held for name, n in live.items() if name != self.node):
                self._taken.add(given)
        self._tried_this_round = False
        if self.on_surplus is not None and self.handing is None and self.heartbeats > 3 and self._settled():
            pbx = self.surplus()
            if pbx is not None:
                self.handing = pbx
                self.on_surplus(pbx)

    def _failed(self, failure: Any) -> None:
        self._asking = False
        failure.trap(RedisUnavailable, RedisTimeout)
