"""Issue #16's "no holder" rule: a PBX nobody held for ``lease_time`` tells its agents so.

When the node holding a PBX's AMI lease dies and no standby takes over, nobody would say
anything: the holder that would log ``pbxStatus`` false is gone. So every node (web nodes
and collectors alike: a web node is often the only survivor) runs a :class:`VacancyWatch`
per PBX, ticking every ``lease_time / 3``. Each tick is one script (:data:`VACANCY`), so
whatever the number of nodes watching, Redis decides once:

1. the lease key (``collector``) exists: somebody holds the PBX; ``vacant`` is deleted,
   nothing else (a quick takeover is no news: the blip window *is* ``lease_time``);
2. else ``vacant`` is unset: it is set to Redis's ``TIME`` in ms (the vacancy starts);
3. else, ``vacant`` at least ``lease_time`` old and ``orphaned`` unset: ``pbxStatus``
   false is appended to the log of every registered agent and supervisor whose last
   ``pbxStatus`` is not false already, then ``orphaned`` is set, in the same script: the
   first node to notice writes it, the others find ``orphaned`` and write nothing.

The entry is the one the holder's store would have written for the tracker's
``link_down`` (or the supervisors' board's): the same JSON text (``{"id":N,"type":
"pbxStatus","agent":...,"pbx":...,"time":...,"connected":false}``, the hub's key order),
id ``last + 1`` of the registration's hash, the same ``MAXLEN`` rule as the ``APPEND``
script (``max_log`` entries; ``first`` moves), and for agents the ``state:{agent}`` value
:meth:`~pbxis.store.redis_store.RedisStore.only_changes` compares with. Web nodes' read
loops block on the logs they follow (:mod:`pbxis.store.redis_reader`), so the ``XADD``
itself is what wakes them, as the holder's ``SYNC`` does. The fence is left alone: the
next holder's load claims each log (fence + 1) and numbers on from the new ``last``; its
rebuild's ``pbxStatus`` true then differs from the stored state (false) and is logged.

Which ``pbxStatus`` is the last one: for an agent the state hash (the tracker's
``pbxStatus`` goes through ``only_changes``, which keeps it; none stored means true). A
supervisor's ``pbxStatus`` does not pass through ``only_changes`` (the board publishes it
straight to the hub), so its state hash says nothing: its log's newest
:data:`TAIL` entries are read, newest first (while the PBX is down a supervisor's log gets
no queue events, only snapshots, which end with their own ``pbxStatus`` false).

``orphaned`` stays set until the next holder has rebuilt (:func:`rebuilt`): a new holder
that dies before its rebuild leaves a new vacancy that writes nothing again. Registrations
made while ``orphaned`` is set get no ``pbxStatus`` false (nobody answers their snapshot
question either, until a holder is back).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from pbxis.events import PBX_STATUS, SUPERVISOR_PREFIX, AgentEvent

from .redis_backend import encode_event, state_key
from .redis_keys import Keys
from .redis_link import RedisLink, RedisTimeout, RedisUnavailable, Script
from .redis_scripts import _NOW

__all__ = ["REBUILT", "TAIL", "VACANCY", "Vacancy", "VacancyWatch", "rebuilt"]

log = Logger(namespace="pbxis.redis")

#: entries of a supervisor's log searched, newest first, for its last ``pbxStatus``
TAIL = 64

#: what :data:`VACANCY` found, by its first reply element
HELD, STARTED, WAITING, ORPHANED, ALREADY = 0, 1, 2, 3, 4

_DOWN = AgentEvent("-", PBX_STATUS, 0, {"connected": False})

# KEYS: lease (``collector``), vacant, orphaned, agents
# ARGV: prefix, lease ms, max entries per log, '"pbx":NAME,' (or ''), the pbxStatus state
# key, its false value, supervisor key prefix, tail
# -> {HELD, 0} | {STARTED, 0} | {WAITING, ms vacant} | {ORPHANED, logs written} | {ALREADY, 0}
# Per-agent key names are built from the prefix, as the end and expiry scripts do (one
# PBX's keys share a hash tag, :func:`pbxis.store.redis_keys.pbx_prefix`).
VACANCY = Script(
    "vacancy",
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[2])
  return {0, 0}
end
local now = now_ms()
local since = redis.call('GET', KEYS[2])
if not since then
  redis.call('SET', KEYS[2], now)
  return {1, 0}
end
local vacant = now - tonumber(since)
if vacant < tonumber(ARGV[2]) then return {2, vacant} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {4, 0} end
local prefix, cap, pbx = ARGV[1], tonumber(ARGV[3]), ARGV[4]
local skey, down, sup_prefix, tail = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])

-- whether the newest pbxStatus among a log's last entries says false (none: true)
local function shown_down(log)
  for _, item in ipairs(redis.call('XREVRANGE', log, '+', '-', 'COUNT', tail)) do
    local f = item[2]
    local t, j
    for i = 1, #f, 2 do
      if f[i] == 't' then t = f[i + 1] elseif f[i] == 'j' then j = f[i + 1] end
    end
    if t == 'pbxStatus' then return string.find(j, '"connected":false', 1, true) ~= nil end
  end
  return false
end

local written = 0
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local reg, log, state = prefix .. 'reg:' .. agent, prefix .. 'log:' .. agent, prefix .. 'state:' .. agent
  local last = tonumber(redis.call('HGET', reg, 'last') or '')
  local who, down_already
  if string.sub(agent, 1, #sup_prefix) == sup_prefix then
    who = '"supervisor":' .. cjson.encode(string.sub(agent, #sup_prefix + 1))
    down_already = shown_down(log)
  else
    who = '"agent":' .. cjson.encode(agent)
    down_already = redis.call('HGET', state, skey) == down
  end
  if last and not down_already then
    local id = last + 1
    local text = '{"id":' .. id .. ',"type":"pbxStatus",' .. who .. ',' .. pbx .. '"time":' .. now
                 .. ',"connected":false}'
    local added = redis.pcall('XADD', log, id .. '-0', 't', 'pbxStatus', 'j', text)
    if type(added) == 'table' and added.err then
      -- the stream is ahead of its hash (never written so by pbxis): leave that log alone
      redis.log(redis.LOG_WARNING, 'pbxis vacancy: ' .. log .. ': ' .. added.err)
    else
      redis.call('HSET', reg, 'last', id)
      redis.call('HSET', state, skey, down)
      local first = tonumber(redis.call('HGET', reg, 'first') or '1')
      if id - first + 1 > cap then
        first = id - cap + 1
        redis.call('XTRIM', log, 'MINID', first .. '-0')
        redis.call('HSET', reg, 'first', first)
      end
      written = written + 1
    end
  end
end
redis.call('SET', KEYS[3], now)
return {3, written}
""",
)

# KEYS: lease, vacant, orphaned. ARGV: node -> 1 if this node holds the lease (both went)
# Only the holder clears: a paused old holder resuming late must not end an orphaning.
REBUILT = Script(
    "vacancy_rebuilt",
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
""",
)


@dataclass(frozen=True, slots=True)
class Vacancy:
    """What one check found: ``state`` is one of ``held``, ``started`` (nobody holds it
    since now), ``waiting`` (nobody for ``vacant_ms``, less than ``lease_time``),
    ``orphaned`` (this check wrote ``pbxStatus`` false to ``written`` logs) or
    ``already`` (orphaned before: nothing more to write)."""

    state: str
    vacant_ms: int = 0
    written: int = 0


_STATES = {HELD: "held", STARTED: "started", WAITING: "waiting", ORPHANED: "orphaned", ALREADY: "already"}


class VacancyWatch:
    """The "no holder" watch of one PBX (see the module docstring).

    ``keys``: the PBX's (:func:`~pbxis.store.redis_keys.pbx_keys`); ``pbx``: the name its
    hub puts in every event (``None``: a hub without one, no ``pbx`` field); ``max_log``:
    the PBX's ``[agents] max_log`` (the holder's cap). ``on_orphaned(written)`` is called
    on the node whose check wrote the ``pbxStatus`` false entries (a log line, a metric).
    Redis faults are counted (``failures``) and the next tick tries again."""

    def __init__(
        self,
        link: RedisLink,
        keys: Keys,
        clock: Any,
        lease_time: float,
        *,
        pbx: str | None,
        max_log: int,
        on_orphaned: Callable[[int], object] = lambda written: None,
    ) -> None:
        self.link = link
        self.keys = keys
        self.clock = clock
        self.lease_time = lease_time
        self.pbx = pbx
        self.max_log = max_log
        self.on_orphaned = on_orphaned
        #: checks answered, checks that failed (Redis down, a timeout), orphanings done here
        self.checks = 0
        self.failures = 0
        self.orphanings = 0
        #: the last answer (``/health``, ``/metrics``), ``None`` before the first
        self.last: Vacancy | None = None
        skey = state_key(_DOWN)
        self._args: list[str | int] = [
            keys.prefix,
            int(lease_time * 1000),
            max_log,
            "" if pbx is None else f'"pbx":{json.dumps(pbx)},',
            skey,
            encode_event(_DOWN)[1],
            SUPERVISOR_PREFIX,
            TAIL,
        ]
        self._keys = [keys.collector, keys.vacant, keys.orphaned, keys.agents]
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = clock

    @property
    def running(self) -> bool:
        return bool(self._loop.running)

    def start(self) -> None:
        """Check now, then every ``lease_time / 3`` (a tick waits for the previous check)."""
        if not self._loop.running:
            self._loop.start(self.lease_time / 3, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    async def check(self) -> Vacancy:
        """One check (the script); raises what the link raises (Redis down, a timeout)."""
        reply = await self.link.script(VACANCY, self._keys, self._args)
        code, value = int(reply[0]), int(reply[1])
        found = Vacancy(
            _STATES[code],
            vacant_ms=value if code == WAITING else 0,
            written=value if code == ORPHANED else 0,
        )
        self.checks += 1
        self.last = found
        if code == ORPHANED:
            self.orphanings += 1
            log.warn(
                "Redis: nobody held the AMI lease of PBX {pbx} for {lease_time:g} s: "
                "pbxStatus false logged for {n} registrations",
                pbx=self.pbx, lease_time=self.lease_time, n=value,
            )  # fmt: skip
            try:
                self.on_orphaned(value)
            except Exception:
                log.failure("Redis: the vacancy watch's on_orphaned failed")
        return found

    def _tick(self) -> defer.Deferred[None]:
        # never fails: a failed Deferred would stop the LoopingCall
        done: defer.Deferred[None] = defer.ensureDeferred(self.check()).addCallbacks(
            lambda _: None, self._failed
        )
        return done

    def _failed(self, failure: Failure) -> None:
        self.failures += 1
        if failure.check(RedisUnavailable, RedisTimeout):
            log.debug("Redis: vacancy check of PBX {pbx}: {e}", pbx=self.pbx, e=failure.value)
        else:
            log.failure("Redis: vacancy check of PBX {pbx} failed", failure, pbx=self.pbx)

    def stats(self) -> dict[str, Any]:
        last = self.last
        return {
            "state": None if last is None else last.state,
            "vacantMs": 0 if last is None else last.vacant_ms,
            "checks": self.checks,
            "failures": self.failures,
            "orphanings": self.orphanings,
        }


def rebuilt(link: RedisLink, keys: Keys, node: str) -> defer.Deferred[bool]:
    """The holder ``node`` rebuilt the PBX of ``keys`` (its ``pbxStatus`` true is
    published): ``orphaned`` and ``vacant`` go, so that the next vacancy tells the agents
    again. ``True`` if ``node`` holds the lease (only then are they cleared)."""
    d = link.script(REBUILT, [keys.collector, keys.vacant, keys.orphaned], [node])
    d.addCallback(lambda reply: int(reply) == 1)
    return d
