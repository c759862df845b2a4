"""One agent's numbered event log: pure data, no clock, no I/O.

Plan. Ids are contiguous (1, 2, 3...), so the entry for id ``n`` sits at a fixed offset
from the first retained id and a replay from any cursor is a slice, not a search. Entries
live in a list with a moving start index; dropping the head only advances the index, and
the dead prefix is compacted when it is more than half the list (O(1) amortized, like the
AMI parser's receive buffer).

Each event is encoded to JSON once, when it is appended; every client of every transport
is handed the same text.

Retention (the policy itself is the hub's; this module only executes it): ``trim``
drops head entries that every reader has and that nobody touched for ``grace`` seconds,
then enforces the hard ``max_len`` cap whatever readers still need.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pbxis.events import AgentEvent

__all__ = ["EventLog", "LogEntry"]


@dataclass(slots=True, eq=False)
class LogEntry:
    """A numbered event. ``text`` is its compact JSON; ``touched`` is the hub's clock
    reading when it was appended or last handed to a client (retention uses it)."""

    id: int
    event: AgentEvent
    text: str
    touched: float

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def json(self) -> dict[str, Any]:
        return self.event.to_json(self.id)


class EventLog:
    """Numbered entries ``first_id..last_id``; ids never repeat, even after trimming."""

    def __init__(self, max_len: int) -> None:
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self.max_len = max_len
        self.last_id = 0
        self._entries: list[LogEntry] = []
        self._start = 0

    def __len__(self) -> int:
        return len(self._entries) - self._start

    @property
    def first_id(self) -> int:
        """The oldest retained id; ``last_id + 1`` when the log is empty."""
        return self.last_id - len(self) + 1

    def can_replay(self, since: int) -> bool:
        """Whether a reader that saw ``since`` can get every later event from us."""
        return self.first_id - 1 <= since <= self.last_id

    def append(self, events: Iterable[AgentEvent], now: float) -> list[LogEntry]:
        added = []
        for event in events:
            self.last_id += 1
            text = json.dumps(event.to_json(self.last_id), separators=(",", ":"))
            added.append(LogEntry(self.last_id, event, text, now))
        self._entries.extend(added)
        return added

    def after(self, cursor: int, limit: int) -> list[LogEntry]:
        """Up to ``limit`` entries with ids above ``cursor`` (which must be replayable)."""
        offset = self._start + max(cursor - self.first_id + 1, 0)
        return self._entries[offset : offset + limit]

    def trim(self, keep_after: int, now: float, grace: float) -> None:
        """Drop the head up to ``keep_after`` where untouched for ``grace``, then cap."""
        entries = self._entries
        start = self._start
        while (
            start < len(entries) and entries[start].id <= keep_after and entries[start].touched + grace <= now
        ):
            start += 1
        start = max(start, len(entries) - self.max_len)
        self._start = start
        if start > len(entries) // 2:
            del entries[:start]
            self._start = 0
