"""The Lua that makes each multi-key change atomic in Redis.

A script runs alone in Redis: no other node's command lands between its reads and its
writes. That is what gives every registration's log consecutive ids with two nodes
appending (the last id lives in the registration's hash and the script moves it), the
same token to two nodes registering the same agent at once, and an expiry that only
one node ever performs (``ZREM`` returns 1 to one caller only).

Time inside the scripts is Redis's own ``TIME``: deadlines are compared on one clock,
whatever the nodes' clocks say. Keys are named by :mod:`pbxis.store.redis_keys`; the
expiry and end scripts build an agent's key names from the prefix, so this store runs
on one Redis (or a Sentinel-managed primary), not on Redis Cluster.
"""

from __future__ import annotations

from .redis_link import Script

__all__ = [
    "ALIVE",
    "APPEND",
    "CLAIM",
    "CLAIM_COMMAND",
    "DROP",
    "END",
    "EXPIRE_DUE",
    "PICK_DUE",
    "REFRESH",
    "REGISTER",
    "REQUEST_END",
    "SYNC",
    "TRIM",
]

_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: reg, tokens, alive, log, state, agents[, registrations]
# ARGV: agent, token, token digest, queues json, name json, created ms, grace ms[, max len]
# -> {1 if created else 0, token, created}
# With the ``registrations`` stream: its ``reg`` entry, carrying the queues and name, in the
# same script, so the entries are in the order of the changes (two nodes registering one
# agent at once) and the writer applies what was asked, not what its own write-behind
# copy of the registration wrote over it meanwhile.
REGISTER = Script(
    "register",
    _NOW
    + """
if KEYS[7] then
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', tonumber(ARGV[8]), '*', 'op', 'reg', 'agent', ARGV[1],
             'queues', ARGV[4], 'name', ARGV[5])
end
local tok = redis.call('HGET', KEYS[1], 'token')
if tok then
  -- registering again cancels an unregistration the writer has not done yet
  redis.call('HDEL', KEYS[1], 'unreg')
  redis.call('HSET', KEYS[1], 'queues', ARGV[4], 'name', ARGV[5])
  return {0, tok, redis.call('HGET', KEYS[1], 'created')}
end
-- what an ended registration of this agent left (its log kept for late readers) is not ours
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'digest', ARGV[3], 'queues', ARGV[4], 'name', ARGV[5],
           'created', ARGV[6], 'fence', 0, 'last', 0, 'first', 1)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
redis.call('ZADD', KEYS[3], now_ms() + tonumber(ARGV[7]), ARGV[1])
return {1, ARGV[2], ARGV[6]}
""",
)

# KEYS: reg, registrations. ARGV: agent, token, max len -> 1 if the registration was marked
# A web node's ``DELETE``: the writer ends the registration. The mark (``unreg`` in its
# hash) is what the writer trusts, found at its start even when the ``registrations``
# entry fell off the capped stream meanwhile; the entry wakes a running writer. Only the
# registration of ``token`` is marked: a DELETE that crossed a new registration ends nothing.
REQUEST_END = Script(
    "request_end",
    """
local marked = 0
if redis.call('HGET', KEYS[1], 'token') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'unreg', 1)
  marked = 1
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[3]), '*', 'op', 'unreg', 'agent', ARGV[1])
return marked
""",
)

# The end of a registration, shared by END and EXPIRE_DUE. ``closed`` gets the next id;
# the log stays readable for ``keep_ms`` (clients that were connected get their
# ``closed``), everything else goes at once: token, liveness, membership, state.
_END_FN = """
local function end_registration(prefix, agent, reason, time_ms, keep_ms)
  local reg = prefix .. 'reg:' .. agent
  local digest = redis.call('HGET', reg, 'digest')
  if not digest then return 0 end
  local last = tonumber(redis.call('HGET', reg, 'last')) + 1
  local text = '{"id":' .. last .. ',"type":"closed","agent":' .. cjson.encode(agent)
               .. ',"time":' .. time_ms .. ',"reason":' .. cjson.encode(reason) .. '}'
  local log = prefix .. 'log:' .. agent
  redis.call('XADD', log, last .. '-0', 't', 'closed', 'j', text)
  redis.call('PEXPIRE', log, keep_ms)
  redis.call('HDEL', prefix .. 'tokens', digest)
  redis.call('ZREM', prefix .. 'alive', agent)
  redis.call('SREM', prefix .. 'agents', agent)
  redis.call('DEL', reg, prefix .. 'state:' .. agent)
  return last
end
"""

# KEYS: none (names built from the prefix). ARGV: prefix, agent, reason, keep ms
# -> the id of ``closed``, or 0 when the agent was not registered
END = Script(
    "end",
    _NOW + _END_FN + "return end_registration(ARGV[1], ARGV[2], ARGV[3], now_ms(), tonumber(ARGV[4]))\n",
)

# ARGV: prefix, keep ms, limit -> {agent, closed id, agent, closed id...} of registrations
# whose deadline passed; each is returned to exactly one caller, ever
EXPIRE_DUE = Script(
    "expire_due",
    _NOW
    + _END_FN
    + """
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'alive', '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, agent in ipairs(due) do
  local id = end_registration(ARGV[1], agent, 'expired', now, tonumber(ARGV[2]))
  if id > 0 then
    out[#out + 1] = agent
    out[#out + 1] = id
  else
    redis.call('ZREM', ARGV[1] .. 'alive', agent)
  end
end
return out
""",
)

# KEYS: alive. ARGV: grace ms, agent... : each still registered agent's deadline moves to
# now + grace unless it is later already (a node holding clients keeps it alive)
REFRESH = Script(
    "refresh",
    _NOW
    + """
local deadline = now_ms() + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', 'GT', deadline, ARGV[i])
end
return deadline
""",
)

# KEYS: reg, log, state
# ARGV: fence, only changes (0/1), max entries, batch number, n, then per event: type,
# state key ('' for none), state value, rest (the JSON after '{"id":N,')
# -> {first id added (last + 1 when none), last id, bytes added}, or {0, last, 0} for a
# batch number already applied: an append retried after a timeout is not applied twice
# (the writer numbers its batches 1, 2, 3... after each claim; 0 = not numbered)
APPEND = Script(
    "append",
    """
local fence = redis.call('HGET', KEYS[1], 'fence')
if not fence then return redis.error_reply('NOREG not registered') end
if fence ~= ARGV[1] then return redis.error_reply('STALE fence ' .. ARGV[1] .. ' was superseded') end
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
local batch = tonumber(ARGV[4])
if batch > 0 then
  if batch <= tonumber(redis.call('HGET', KEYS[1], 'batch') or '0') then return {0, last, 0} end
  redis.call('HSET', KEYS[1], 'batch', batch)
end
local start = last + 1
local only_changes = ARGV[2] == '1'
local n = tonumber(ARGV[5])
local i = 6
local bytes = 0
for _ = 1, n do
  local typ, skey, sval, rest = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  local keep = true
  if skey ~= '' then
    if only_changes and redis.call('HGET', KEYS[3], skey) == sval then
      keep = false
    else
      redis.call('HSET', KEYS[3], skey, sval)
    end
  end
  if keep then
    last = last + 1
    local text = '{"id":' .. last .. ',' .. rest
    redis.call('XADD', KEYS[2], last .. '-0', 't', typ, 'j', text)
    bytes = bytes + #text
  end
end
if last >= start then
  redis.call('HSET', KEYS[1], 'last', last)
  local cap = tonumber(ARGV[3])
  local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
  if last - first + 1 > cap then
    first = last - cap + 1
    redis.call('XTRIM', KEYS[2], 'MINID', first .. '-0')
    redis.call('HSET', KEYS[1], 'first', first)
  end
end
return {start, last, bytes}
""",
)

# KEYS: reg -> the new fencing token, or 0 when the agent is not registered
CLAIM = Script(
    "claim",
    """
if redis.call('HEXISTS', KEYS[1], 'token') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'batch', 0)
return redis.call('HINCRBY', KEYS[1], 'fence', 1)
""",
)

# KEYS: reg, log. ARGV: keep after (entries up to this id may go) -> the first retained id
TRIM = Script(
    "trim",
    """
local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
if not first then return 0 end
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
local upto = math.min(tonumber(ARGV[1]), last)
if upto >= first then
  first = upto + 1
  redis.call('XTRIM', KEYS[2], 'MINID', first .. '-0')
  redis.call('HSET', KEYS[1], 'first', first)
end
return first
""",
)

# KEYS: claim key. ARGV: who (a node, or 'abandoned' by the web node that gave up),
# ttl ms (after the deadline, when there is one), deadline ms (0: none). Past the deadline
# no collector's claim can win, so the key need not outlive it by much: claim keys stay
# bounded by the commands of the last minute, whatever the rate
# -> 1 when this caller owns the command's one execution (or its abandonment), else 0;
# 1 to a web node giving up on a command a collector found too late (abandoned already):
# either way it never ran
CLAIM_COMMAND = Script(
    "claim_command",
    _NOW
    + """
local deadline = tonumber(ARGV[3])
local now = now_ms()
local ttl = tonumber(ARGV[2])
if ARGV[1] ~= 'abandoned' and deadline > 0 and now > deadline then
  -- too late to run: whoever sent it has given up already; make that final
  redis.call('SET', KEYS[1], 'abandoned', 'NX', 'PX', ttl)
  return 0
end
if deadline > 0 then ttl = ttl + deadline - now end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ttl) then return 1 end
if ARGV[1] == 'abandoned' and redis.call('GET', KEYS[1]) == 'abandoned' then return 1 end
return 0
""",
)

# The mirror of a node that is its logs' one writer (role "all", :mod:`.redis_store`)
# makes Redis equal to what it holds. Idempotent: entries at or below Redis's last id are
# skipped, so a batch sent again after a timeout changes nothing.
# KEYS: reg, log, tokens, agents, state
# ARGV: agent, fence, token, digest, queues json, name json, created, first id, queue
# versions json, n, then per entry: id, type, text; then m, then m pairs of the agent's
# published state: key, value
# -> Redis's last id of the log
SYNC = Script(
    "sync",
    """
local cur = redis.call('HGET', KEYS[1], 'fence')
if cur and tonumber(cur) > tonumber(ARGV[2]) then
  return redis.error_reply('STALE fence ' .. ARGV[2] .. ' was superseded by ' .. cur)
end
local tok = redis.call('HGET', KEYS[1], 'token')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if tok and tok ~= ARGV[3] then
  -- another registration of this agent (an older one): its log is not ours
  redis.call('HDEL', KEYS[3], redis.call('HGET', KEYS[1], 'digest'))
  redis.call('DEL', KEYS[2])
  last = 0
end
redis.call('HSET', KEYS[1], 'token', ARGV[3], 'digest', ARGV[4], 'queues', ARGV[5], 'name', ARGV[6],
           'created', ARGV[7], 'fence', ARGV[2], 'qv', ARGV[9])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PERSIST', KEYS[2])
local n = tonumber(ARGV[10])
local i = 11
for _ = 1, n do
  local id = tonumber(ARGV[i])
  if id > last then
    redis.call('XADD', KEYS[2], id .. '-0', 't', ARGV[i + 1], 'j', ARGV[i + 2])
    last = id
  end
  i = i + 3
end
local m = tonumber(ARGV[i])
for j = 1, m do
  redis.call('HSET', KEYS[5], ARGV[i + 2 * j - 1], ARGV[i + 2 * j])
end
local first = tonumber(ARGV[8])
if first > last + 1 then first = last + 1 end
redis.call('XTRIM', KEYS[2], 'MINID', first .. '-0')
redis.call('HSET', KEYS[1], 'last', last, 'first', first)
return last
""",
)

# KEYS: reg, log, tokens, agents, state. ARGV: agent, fence, token, keep ms
# The registration ended (its ``closed`` was synced just before): the token stops
# working everywhere; the log stays readable for ``keep ms``.
DROP = Script(
    "drop",
    """
local cur = redis.call('HGET', KEYS[1], 'fence')
if cur and tonumber(cur) > tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[3], redis.call('HGET', KEYS[1], 'digest'))
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[5])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
return 1
""",
)

# KEYS: alive. ARGV: grace ms, agent, 'NX' or '': a registration made by the writer itself
# starts its grace period now (REGISTER does it for the others); 'NX': only if it has none
# (a registration written before grace periods were shared, found at start)
ALIVE = Script(
    "alive",
    _NOW
    + """
if ARGV[3] == 'NX' then
  redis.call('ZADD', KEYS[1], 'NX', now_ms() + tonumber(ARGV[1]), ARGV[2])
else
  redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[1]), ARGV[2])
end
return 1
""",
)

# KEYS: alive. ARGV: limit -> the agents whose grace period is over, removed from ``alive``
# in the same script: the one writer that picked them ends them, with ``closed`` in its log
PICK_DUE = Script(
    "pick_due",
    _NOW
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
for _, agent in ipairs(due) do redis.call('ZREM', KEYS[1], agent) end
return due
""",
)
