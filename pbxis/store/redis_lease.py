"""The one lease that makes a node the holder of the AMI link (and the runner of commands).

With ``[redis]`` every ``collector`` or ``all`` node competes for one key (``collector``,
:mod:`pbxis.store.redis_keys`): whoever sets it (``SET PX`` when free) holds the AMI link,
writes the logs and runs the commands web nodes send; the others stand by. The holder
renews it every ``lease_time / 3`` with a script that only renews its *own* lease.

Time is counted on the holder's side too, conservatively: a renewal *sent* at ``t`` and
acknowledged makes the lease valid here until ``t + lease_time``, which is never later
than its expiry in Redis (Redis set it after ``t``). When that moment comes without a
newer acknowledgement (Redis unreachable, the process paused by ``SIGSTOP`` or a long
stall), the holder steps down (``on_lost``) before any standby can have taken the key.
:meth:`valid` asks the clock, not a timer, so the first thing a resumed process does is
know its lease is gone, even before its timers run. Writes that were already in flight
are refused by the logs' fences (the new holder claimed them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import task
from twisted.logger import Logger

from .redis_link import RedisLink, RedisTimeout, RedisUnavailable, Script
from .redis_scripts import _NOW, CLAIM_COMMAND

__all__ = ["ACQUIRE", "CLAIM_HELD", "RELEASE", "Lease"]

log = Logger(namespace="pbxis.redis")

# KEYS: lease. ARGV: node, ttl ms -> 1 if this node holds the lease (taken or renewed)
ACQUIRE = Script(
    "lease_acquire",
    """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
""",
)

# KEYS: lease. ARGV: node -> 1 if this node held the lease (it is let go)
RELEASE = Script(
    "lease_release",
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
""",
)

# A command is claimed only by the lease's holder, in the same script that checks it: a
# paused old holder that resumes cannot run a command the new one is meant to run. The
# rest is CLAIM_COMMAND's (one rule, written once).
# KEYS: command:{id}, lease. ARGV: node, ttl ms, deadline ms -> 1 if this node runs it
assert CLAIM_COMMAND.source.startswith(_NOW)
CLAIM_HELD = Script(
    "claim_command_held",
    _NOW + "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end\n" + CLAIM_COMMAND.source[len(_NOW) :],
)


class Lease:
    """See the module docstring. ``on_won()`` once, when this node first holds the lease;
    ``on_lost(reason)`` once, when it held it and no longer may (it never competes again:
    its owner steps down)."""

    def __init__(
        self,
        link: RedisLink,
        key: str,
        node: str,
        clock: Any,
        lease_time: float,
        *,
        on_won: Callable[[], object] = lambda: None,
        on_lost: Callable[[str], object] = lambda reason: None,
        may_take: Callable[[int], bool] | None = None,
    ) -> None:
        self.link = link
        self.key = key
        self.node = node
        self.clock = clock
        self.lease_time = lease_time
        self.on_won = on_won
        self.on_lost = on_lost
        #: asked before trying to take the lease while not holding it, with the number of
        #: looks in a row that found it free (:meth:`pbxis.store.redis_spread.Spread.may_take`)
        self.may_take = may_take
        #: looks in a row (one per tick) that found no holder
        self.free_ticks = 0
        #: held here until this time (the clock's), if ``held``
        self.valid_until = 0.0
        self.held = False
        self.lost: str | None = None
        #: the node holding it, as last seen (``/metrics``, ``/health`` of a standby)
        self.holder: str | None = None
        #: times this node took the lease (0 or 1: a node that lost it steps down)
        self.takeovers = 0
        self._asking = False
        self._stopped = False
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = clock
        self._expiry: Any = None

    def valid(self) -> bool:
        """Whether this node holds the lease now: may it write, connect, run a command."""
        return self.held and self.lost is None and self.clock.seconds() < self.valid_until

    def start(self) -> None:
        if not self._loop.running and self.lost is None and not self._stopped:
            self._loop.start(self.lease_time / 3, now=True)

    def stop(self) -> Any:
        """Stop competing and let the lease go if held (a clean stop: no wait for expiry).
        An answer still on its way is ignored (it must not make this node the holder)."""
        self._stopped = True
        if self._loop.running:
            self._loop.stop()
        self._cancel_expiry()
        held, self.held = self.held and self.lost is None, False
        if not held:
            return None
        d = self.link.script(RELEASE, [self.key], [self.node])
        d.addErrback(lambda f: f.trap(RedisUnavailable, RedisTimeout))
        return d

    def _tick(self) -> None:
        if self.held and not self.valid():
            self._lose(self._why())
            return
        if self._asking or self.lost is not None:
            return
        self._asking = True
        if not self.held and self.may_take is not None and not self.may_take(self.free_ticks):
            # not this node's turn: only look who holds it (and whether it is free)
            self.link.command("GET", self.key).addCallbacks(self._seen, self._failed)
            return
        sent = self.clock.seconds()
        d = self.link.script(ACQUIRE, [self.key], [self.node, int(self.lease_time * 1000)])
        d.addCallbacks(lambda won: self._answered(bool(int(won)), sent), self._failed)

    def _answered(self, won: bool, sent: float) -> None:
        self._asking = False
        if self.lost is not None or self._stopped:
            if won and self._stopped and not self.held:
                # taken (or renewed) after stop(): let it go at once rather than at expiry
                self.link.script(RELEASE, [self.key], [self.node]).addErrback(
                    lambda f: f.trap(RedisUnavailable, RedisTimeout)
                )
            return
        if not won:
            if self.held:
                self._lose("another node holds the lease now")
            else:
                self._asking = True
                self.link.command("GET", self.key).addCallbacks(self._seen, self._failed)
            return
        self.holder = self.node
        self.free_ticks = 0
        until = sent + self.lease_time
        if self.clock.seconds() >= until:  # acknowledged too late to count (a pause)
            if self.held:
                self._lose(self._why())
            return
        self.valid_until = until
        self._cancel_expiry()
        self._expiry = self.clock.callLater(until - self.clock.seconds(), self._expired)
        if not self.held:
            self.held = True
            self.takeovers += 1
            self.on_won()

    def _seen(self, holder: Any) -> None:
        self._asking = False
        self.holder = None if holder is None else str(holder)
        # a key in this node's own name while it does not hold the lease here (a take
        # acknowledged too late) is free to it: ACQUIRE renews it
        free = holder is None or self.holder == self.node
        self.free_ticks = self.free_ticks + 1 if free else 0

    def _failed(self, failure: Any) -> None:
        self._asking = False
        failure.trap(RedisUnavailable, RedisTimeout)
        # nothing to do: the expiry timer (or valid()) says when the lease is gone

    def _expired(self) -> None:
        self._expiry = None
        if self.held and not self.valid():
            self._lose(self._why())

    def _why(self) -> str:
        late = self.clock.seconds() - self.valid_until
        return (
            f"the lease could not be renewed within lease_time ({self.lease_time:g} s; "
            f"{late:.1f} s past it): Redis unreachable or this process was paused"
        )

    def _lose(self, reason: str) -> None:
        if self.lost is not None:
            return
        self.lost = reason
        self.held = False
        self._cancel_expiry()
        if self._loop.running:
            self._loop.stop()
        self.on_lost(reason)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
