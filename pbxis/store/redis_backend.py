"""Registrations, logs, agent state and grace bookkeeping in Redis, as asynchronous operations.

This is the shared truth every node reads and writes; :mod:`pbxis.store.redis_store`
puts the hub's synchronous store interface on top of it. Each operation is one round
trip (a script or a pipeline), whatever the number of events or agents it carries.

* :meth:`register`: the same token for an agent on every node, also when two nodes
  register it at the same moment (the script decides).
* :meth:`append`: consecutive ids under a fencing token (:meth:`claim`): a writer whose
  claim was taken over gets :class:`StaleFence` and appends nothing. With
  ``only_changes`` state events equal to the stored state are dropped: a restarted
  collector rebuilding its tracker emits only what really changed.
* :meth:`snapshot`: the agent's last published state, from any node.
* :meth:`refresh` / :meth:`expire_due`: a node with clients keeps a registration alive;
  an expiry is performed by exactly one node (the one whose script removed it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pbxis.events import (
    EXTENSION_STATUS,
    PBX_STATUS,
    PHONE_NUMBER,
    QUEUE_COUNT,
    QUEUE_MEMBER_STATUS,
    AgentEvent,
)

from .redis_keys import Keys, token_digest
from .redis_link import RedisError, RedisLink
from .redis_scripts import APPEND, CLAIM, END, EXPIRE_DUE, REFRESH, REGISTER, TRIM

__all__ = [
    "Appended",
    "NotRegistered",
    "RedisBackend",
    "StaleFence",
    "Stored",
    "StoredEntry",
    "asked",
    "encode_event",
    "state_key",
]

#: event types that carry absolute state, and the fields that say which state
STATE_TYPES: dict[str, tuple[str, ...]] = {
    QUEUE_MEMBER_STATUS: ("queue",),
    QUEUE_COUNT: ("queue",),
    EXTENSION_STATUS: (),
    PHONE_NUMBER: (),
    PBX_STATUS: (),
}

_ID_PREFIX = '{"id":0,'


class StaleFence(RuntimeError):
    """The append's fencing token was superseded: another writer owns the log now."""


class NotRegistered(LookupError):
    """The agent has no registration (it ended, or never was)."""


def state_key(event: AgentEvent) -> str:
    """Which piece of the agent's state ``event`` sets ('' for an event that is not state)."""
    fields = STATE_TYPES.get(event.type)
    if fields is None:
        return ""
    return "\x1f".join([event.type, *(str(event.data.get(f, "")) for f in fields)])


def encode_event(event: AgentEvent) -> tuple[str, str]:
    """``(rest, state value)``: the JSON after ``{"id":N,`` and the time-free state value."""
    text = json.dumps(event.to_json(0), separators=(",", ":"))
    assert text.startswith(_ID_PREFIX)
    value = json.dumps([event.type, event.data], separators=(",", ":"), sort_keys=True)
    return text[len(_ID_PREFIX) :], value


@dataclass(frozen=True, slots=True)
class Stored:
    """A registration as Redis holds it."""

    agent: str
    token: str
    queues: tuple[str, ...]
    name: str | None
    created: int
    first: int
    last: int
    fence: int


@dataclass(frozen=True, slots=True)
class StoredEntry:
    id: int
    type: str
    text: str


@dataclass(frozen=True, slots=True)
class Appended:
    """Ids ``first..last`` were added (``first == last + 1``: nothing was; ``first == 0``:
    the batch had been applied already)."""

    first: int
    last: int
    bytes: int


class RedisBackend:
    """See the module docstring. ``grace_ms``: a registration without clients lives that long."""

    def __init__(self, link: RedisLink, keys: Keys, *, grace_ms: int, max_log: int) -> None:
        self.link = link
        self.keys = keys
        self.grace_ms = grace_ms
        self.max_log = max_log

    # -- registrations ---------------------------------------------------------------

    async def register(
        self, agent: str, queues: Sequence[str], name: str | None, token: str, created: int
    ) -> tuple[bool, str, int]:
        """``(created, token, created ms)``: ``token`` is used only if the agent had none."""
        k = self.keys
        reply = await self.link.script(
            REGISTER,
            [k.reg(agent), k.tokens, k.alive, k.log(agent), k.state(agent), k.agents],
            [agent, token, token_digest(token), json.dumps(list(queues)), json.dumps(name), created,
             self.grace_ms],
        )  # fmt: skip
        return int(reply[0]) == 1, str(reply[1]), int(reply[2])

    async def get(self, agent: str) -> Stored | None:
        fields = await self.link.command("HGETALL", self.keys.reg(agent))
        return _stored(agent, fields)

    async def by_token(self, token: str) -> Stored | None:
        """The live registration of ``token``; the stored token is compared in constant time."""
        import hmac

        agent = await self.link.command("HGET", self.keys.tokens, token_digest(token))
        if agent is None:
            return None
        stored = await self.get(str(agent))
        if stored is None or not hmac.compare_digest(stored.token.encode(), token.encode("utf-8", "replace")):
            return None
        return stored

    async def agents(self) -> list[str]:
        return sorted(str(a) for a in await self.link.command("SMEMBERS", self.keys.agents))

    async def end(self, agent: str, reason: str, keep_ms: int | None = None) -> int:
        """End the registration with ``closed`` (``reason``); the id of ``closed``, 0 if none."""
        keep = self.grace_ms if keep_ms is None else keep_ms
        return int(await self.link.script(END, [], [self.keys.prefix, agent, reason, keep]))

    async def claim(self, agent: str) -> int:
        """Become the writer of ``agent``'s log: the fencing token for :meth:`append`."""
        fence = int(await self.link.script(CLAIM, [self.keys.reg(agent)], []))
        if not fence:
            raise NotRegistered(agent)
        return fence

    # -- the log ---------------------------------------------------------------------

    async def append(
        self,
        agent: str,
        events: Sequence[AgentEvent],
        fence: int,
        *,
        only_changes: bool = False,
        batch: int = 0,
    ) -> Appended:
        """Append under ``fence``. ``batch`` (1, 2, 3... per claim) makes a retry of the
        same batch after a timeout a no-op (``first == 0``) instead of a duplicate."""
        args: list[str | int] = [fence, 1 if only_changes else 0, self.max_log, batch, len(events)]
        for event in events:
            rest, value = encode_event(event)
            args += [event.type, state_key(event), value, rest]
        k = self.keys
        try:
            reply = await self.link.script(APPEND, [k.reg(agent), k.log(agent), k.state(agent)], args)
        except RedisError as e:
            text = str(e)
            if text.startswith("STALE"):
                raise StaleFence(f"{agent}: {text}") from None
            if text.startswith("NOREG"):
                raise NotRegistered(agent) from None
            raise
        return Appended(int(reply[0]), int(reply[1]), int(reply[2]))

    async def read(self, agent: str, after: int, count: int) -> list[StoredEntry]:
        """Up to ``count`` entries with ids above ``after``."""
        reply = await self.link.command("XRANGE", self.keys.log(agent), f"({after}-0", "+", "COUNT", count)
        return [_entry(item) for item in reply]

    async def trim(self, agent: str, upto: int) -> int:
        """Entries up to ``upto`` may go; the first retained id."""
        k = self.keys
        return int(await self.link.script(TRIM, [k.reg(agent), k.log(agent)], [upto]))

    # -- state -----------------------------------------------------------------------

    async def snapshot(self, agent: str, now_ms: int) -> list[AgentEvent]:
        """The agent's last published state as events stamped ``now_ms`` (key order)."""
        fields = await self.link.command("HGETALL", self.keys.state(agent))
        pairs = _pairs(fields)
        events = []
        for key in sorted(pairs):
            kind, data = json.loads(pairs[key])
            events.append(AgentEvent(agent, kind, now_ms, data))
        return events

    # -- grace bookkeeping -----------------------------------------------------------

    async def refresh(self, agents: Iterable[str]) -> None:
        """These agents have clients here: their grace period starts again from now."""
        chosen = list(agents)
        if chosen:
            await self.link.script(REFRESH, [self.keys.alive], [self.grace_ms, *chosen])

    async def expire_due(self, limit: int = 100) -> list[tuple[str, int]]:
        """End registrations whose grace period is over; only this caller gets them."""
        reply = await self.link.script(EXPIRE_DUE, [], [self.keys.prefix, self.grace_ms, limit])
        return [(str(reply[i]), int(reply[i + 1])) for i in range(0, len(reply), 2)]


def _pairs(fields: Any) -> dict[str, str]:
    if isinstance(fields, dict):
        return {str(k): str(v) for k, v in fields.items()}
    items = list(fields or [])
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items), 2)}


def _stored(agent: str, fields: Any) -> Stored | None:
    f = _pairs(fields)
    if "token" not in f:
        return None
    return Stored(
        agent=agent,
        token=f["token"],
        queues=tuple(json.loads(f["queues"])),
        name=json.loads(f["name"]),
        created=int(f["created"]),
        first=int(f["first"]),
        last=int(f["last"]),
        fence=int(f["fence"]),
    )


def asked(stored: Stored | None, fields: dict[str, str] | None) -> Stored | None:
    """``stored`` with the queues and name a ``registrations`` entry carries (the change
    that entry made), when it carries them and the registration is still there."""
    if stored is None or not fields or "queues" not in fields:
        return stored
    try:
        queues, name = tuple(json.loads(fields["queues"])), json.loads(fields.get("name", "null"))
    except ValueError:
        return stored
    return dataclasses.replace(stored, queues=queues, name=name)


def _entry(item: Any) -> StoredEntry:
    stream_id, fields = item
    f = _pairs(fields)
    return StoredEntry(int(str(stream_id).split("-", 1)[0]), f["t"], f["j"])
