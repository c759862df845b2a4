"""The hub's persistence behind one interface: registrations, numbered logs, queue states.

The :class:`~pbxis.hub.hub.Hub` keeps what belongs to one node and one process: the
connected clients (subscriptions), timers, the flush tick. Everything a client's stream
is made of lives in a :class:`HubStore`, so that a store shared by several nodes (Redis,
issue #15) serves the same token, the same ids and the same replay on every node and
after a restart. :class:`~pbxis.hub.memory.MemoryStore` is the embedded default.

What a store holds
------------------
*Registrations*, by agent and by token (:meth:`HubStore.add`, :meth:`~HubStore.get`,
:meth:`~HubStore.by_token`, :meth:`~HubStore.remove`). A token is looked up without a
timing oracle (``tokens.TokenIndex``; Redis: a hash keyed by the token's SHA-256).

*One log per registration* (:meth:`HubStore.log`, a :class:`RegistrationLog`): entries
numbered 1, 2, 3... with no gap, each the contract's JSON text of one event, appended
in order under a *fencing token* (:meth:`HubStore.claim`): a writer that lost its claim
(another node took the registration over) gets :class:`StaleFence` instead of appending,
so two writers never interleave ids. Read from any retained id (:meth:`~RegistrationLog.after`),
retention by the hub's policy (:meth:`~RegistrationLog.touch`, :meth:`~RegistrationLog.trim`).
Beside the entries, per registration: the span of the last snapshot appended (new
clients within ``snapshot_window`` read that one instead of appending their own: issue
#12 item 3), the cursors of clients that left and until when they may come back (grace
bookkeeping), and which version of each queue's state the log already carries.

*Queue states*: for each (queue, type), the latest absolute state and a version, drawn
from one counter for the whole store so that a version is never reused, even for a
queue forgotten (:meth:`HubStore.forget_queue`, once no registration has it) and
tracked again (:meth:`HubStore.set_queue_state`). One write per AMI event,
whatever the number of agents watching the queue: issue #20's fan-out is gone from the
write path. The hub renders a queue state into a watching agent's log only when that
log needs it, latest state winning (see :mod:`pbxis.hub.hub`).

*A byte budget over every log together* (:meth:`HubStore.bytes_used`,
:meth:`HubStore.enforce_budget`): past ``max_log_bytes`` the store drops the oldest
entries of the largest logs; a reader whose cursor falls off is ended with
``overflow`` and gets ``reset`` and a fresh snapshot when it comes back.

Synchronous by design
---------------------
Every method returns at once. The hub runs inside reactor callbacks (an AMI read, a
socket becoming writable) and a Deferred per event would cost more than the work. A
shared store keeps a node-local mirror of what this node serves (its registrations,
the tail of the logs it has clients for, the queue states) and writes behind, in
order, in one pipelined round trip per reactor turn: :meth:`HubStore.flush` is called
by the hub after each batch it published. What must be read from the shared store
first (a token minted on another node, a log this node never held) is loaded by the
store's own asynchronous API before the hub is asked, or arrives through its pub/sub.

How this maps onto Redis (a sketch for :mod:`pbxis.store.redis`)
-------------------------------------------------------------------
=========================  ==================================================================
here                       Redis
=========================  ==================================================================
registration               ``HASH reg:{agent}``: token, queues, name, created, fence
``by_token``               ``HASH tokens``: sha256(token) -> agent, then compare_digest
log entries                ``STREAM log:{agent}`` with explicit ids ``N-0``; ``append`` is one
                           Lua script: check the fence, ``XADD`` each entry at last+1...,
                           ``HSET`` the queue versions it carries, ``INCRBY`` the bytes
``after(cursor, n)``       ``XRANGE log:{agent} (cursor-0 + COUNT n``
``trim``                   ``XTRIM log:{agent} MINID``
queue state                ``HASH queue:{name}``: ``type`` -> version and body; one
                           ``INCR versions`` + ``HSET`` script per change: one round trip
                           per AMI event, pipelined with the rest of the batch
snapshot span, absent      fields of ``reg:{agent}``; ``ZSET absent:{agent}`` scored by
cursors                    the time until which each may come back
=========================  ==================================================================

The round trips per AMI event do not grow with the agents it concerns: a queue change
is one script; an agent's own event is one append to its log. Rendering a queue state
into the logs of the agents this node has clients for happens once per tick for all of
them (one script for the batch), not once per AMI event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pbxis.events import AgentEvent

from .log import LogEntry
from .registration import Registration

__all__ = ["HubStore", "QueueState", "RegistrationLog", "SnapshotSpan", "StaleFence", "without_time"]


class StaleFence(RuntimeError):
    """An append carried a fencing token that is no longer the registration's."""


@dataclass(frozen=True, slots=True)
class QueueState:
    """The latest state of one (queue, type): ``rest`` is the event's JSON after the
    agent (``"time":T,"queue":"sales","count":3}``), rendered once for every agent."""

    queue: str
    type: str
    version: int
    rest: str
    #: ``rest`` without its time: what the state says, compared by every log it is
    #: offered to (computed once here, not once per log)
    shown: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shown", without_time(self.rest))


def without_time(rest: str) -> str:
    """A queue state's JSON (``"time":T,"queue":...}``) without its time: its content."""
    return rest.partition(",")[2] if rest.startswith('"time":') else rest


@dataclass(frozen=True, slots=True)
class SnapshotSpan:
    """Where the last snapshot of a log lies: ids ``first..last``, appended at ``at``
    (the hub's clock); ``reset`` is the id of the ``reset`` just before it, if any."""

    first: int
    last: int
    at: float
    reset: int | None = None


@runtime_checkable
class RegistrationLog(Protocol):
    """One registration's numbered log (ids ``first_id..last_id``, never reused)."""

    #: the PBX every entry names (``"pbx"``); set by the hub, ``None``: no such field
    pbx: str | None

    @property
    def first_id(self) -> int:
        """The oldest retained id; ``last_id + 1`` when empty."""
        ...

    @property
    def last_id(self) -> int: ...

    def __len__(self) -> int: ...

    def can_replay(self, since: int) -> bool:
        """Whether a reader that saw ``since`` can get every later entry from here."""
        ...

    def append(self, events: Iterable[AgentEvent], now: float, fence: int) -> int:
        """Number and encode ``events`` after ``last_id``; the bytes of JSON added.

        Raises :class:`StaleFence` when ``fence`` is not the registration's claim."""
        ...

    def append_queue_state(self, state: QueueState, agent_json: str, now: float, fence: int) -> int:
        """Append ``state`` as this agent's event (``agent_json``: the agent as JSON) and
        record that the log carries ``state.version``; the bytes added. A state whose
        content (all but its time) is what this log shows already is only recorded, not
        appended (0 bytes): a count that went 0, 1, 0 between two flushes is no change."""
        ...

    def queue_version(self, queue: str, type: str) -> int:
        """The version of (queue, type) this log carries (0: none)."""
        ...

    def mark_queue_version(self, queue: str, type: str, version: int, rest: str | None = None) -> None:
        """The log carries that state already (a snapshot or a tracker event showed it);
        ``rest``: that state's JSON, when known (see :meth:`append_queue_state`)."""
        ...

    def after(self, cursor: int, limit: int) -> list[LogEntry]:
        """Up to ``limit`` entries above ``cursor`` (which must be replayable)."""
        ...

    def touch(self, after: int, upto: int, now: float) -> None:
        """Entries ``after + 1 .. upto`` were just handed to a client (retention)."""
        ...

    def trim(self, keep_after: int, now: float, grace: float) -> None:
        """Drop head entries up to ``keep_after`` untouched for ``grace``; then the cap."""
        ...

    @property
    def snapshot(self) -> SnapshotSpan | None:
        """The last snapshot appended, while its entries are retained."""
        ...

    def note_snapshot(self, span: SnapshotSpan) -> None: ...

    def remember(self, cursor: int, until: float) -> None:
        """A client that saw ``cursor`` left; it may come back until ``until``."""
        ...

    def absent(self, now: float) -> Mapping[int, float]:
        """Cursors of clients that left -> until when they may come back; those past
        their time, or below the retained entries, are forgotten first."""
        ...


class HubStore(Protocol):
    """Registrations, their logs, queue states and the byte budget of all logs."""

    def add(self, registration: Registration) -> RegistrationLog:
        """Store a new registration and create its (empty) log."""
        ...

    def get(self, agent: str) -> Registration | None: ...

    def by_token(self, token: str) -> Registration | None:
        """The live registration of ``token``, in time independent of the token's bytes."""
        ...

    def update(self, registration: Registration, queues: Sequence[str], name: str | None) -> None:
        """Re-registration: new queues and name, same token and log."""
        ...

    def remove(self, agent: str) -> None:
        """Forget the registration, its token and, once its readers are done, its log."""
        ...

    def watch(self, agent: str, queues: Sequence[str]) -> None:
        """The queues a supervisor's board watches (not the registration's own queues,
        which the hub fans ``queueCount`` out to): a shared store keeps them with the
        registration, so a restarted writer rebuilds the board (no-op in memory)."""
        ...

    def log(self, agent: str) -> RegistrationLog | None: ...

    def agents(self) -> Iterator[str]: ...

    def claim(self, agent: str) -> int:
        """Become the writer of ``agent``'s log: a fencing token for its appends."""
        ...

    def set_queue_state(self, queue: str, type: str, rest: str) -> QueueState:
        """Record the latest state of (queue, type) under the next version."""
        ...

    def queue_state(self, queue: str, type: str) -> QueueState | None: ...

    def forget_queue(self, queue: str) -> None:
        """No registration has ``queue`` any more: drop its states (memory stays bounded
        by the queues registered, not by every queue ever seen)."""
        ...

    def queue_types(self, queue: str) -> Sequence[str]:
        """The types of state held for ``queue`` (``queueCount``)."""
        ...

    def bytes_used(self) -> int:
        """Bytes held by every log together (JSON, frames and per-entry overhead)."""
        ...

    def enforce_budget(self) -> list[str]:
        """Evict the oldest entries of the largest logs until under the limit; the
        agents whose logs lost entries (the hub ends their readers that fell off)."""
        ...

    def flush(self) -> None:
        """End of a batch: a shared store sends what it buffered (no-op in memory)."""
        ...
