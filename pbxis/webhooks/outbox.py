"""What an endpoint still has to deliver: per-agent lanes in order, bounded in size.

This is the storage seam of webhook delivery. :class:`MemoryOutbox` keeps everything in
process memory: bounded (``max_pending``; the oldest waiting event is dropped and
counted when a new one would exceed it) and lost on restart. :mod:`.redis_outbox`
(durable, resumed by the node started in its place; chosen with ``[redis]``) is the
same plus a write-behind copy in Redis;
the delivery loop in :mod:`.delivery` does not change.

Order: events of one agent form a lane and leave it in order, the head first; lanes are
independent, so one agent's stuck event never holds another agent's back.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Item", "MemoryOutbox", "Outbox"]


@dataclass(slots=True)
class Item:
    """One event for one endpoint. ``enqueued`` is the clock's seconds at offer time."""

    seq: int
    agent: str
    msg_id: str
    body: bytes
    enqueued: float
    attempts: int = 0
    in_flight: bool = False


class Outbox(Protocol):
    """Pending items by lane (agent), oldest first."""

    def add(self, agent: str, msg_id: str, body: bytes, now: float) -> Item: ...
    def head(self, agent: str) -> Item | None: ...
    def remove(self, item: Item) -> None: ...
    def drop_oldest_waiting(self) -> Item | None: ...
    def oldest(self) -> Item | None: ...
    def lanes(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...


@dataclass
class MemoryOutbox:
    """:class:`Outbox` in memory: O(1) add, head and remove; dropping skips only the
    items in flight (at most the endpoint's ``max_in_flight``)."""

    _seq: int = 0
    _all: OrderedDict[int, Item] = field(default_factory=OrderedDict)
    _lanes: dict[str, deque[Item]] = field(default_factory=dict)

    def add(self, agent: str, msg_id: str, body: bytes, now: float) -> Item:
        self._seq += 1
        item = Item(self._seq, agent, msg_id, body, now)
        self._all[item.seq] = item
        self._lanes.setdefault(agent, deque()).append(item)
        return item

    def head(self, agent: str) -> Item | None:
        lane = self._lanes.get(agent)
        return lane[0] if lane else None

    def remove(self, item: Item) -> None:
        if self._all.pop(item.seq, None) is None:
            return
        lane = self._lanes[item.agent]
        if lane[0] is item:  # the usual case: delivered or given up at the head
            lane.popleft()
        else:  # dropped for room: somewhere behind the head
            lane.remove(item)
        if not lane:
            del self._lanes[item.agent]

    def drop_oldest_waiting(self) -> Item | None:
        for item in self._all.values():
            if not item.in_flight:
                self.remove(item)
                return item
        return None

    def oldest(self) -> Item | None:
        return next(iter(self._all.values()), None)

    def lanes(self) -> Iterator[str]:
        return iter(list(self._lanes))

    def __len__(self) -> int:
        return len(self._all)
