"""One agent's numbered event log: pure data, no clock, no I/O.

Plan. Ids are contiguous (1, 2, 3...), so the entry for id ``n`` sits at a fixed offset
from the first retained id and a replay from any cursor is a slice, not a search. Entries
live in lists with a moving start index; dropping the head only advances the index, and
the dead prefix is compacted when it is more than half the lists (O(1) amortized, like
the AMI parser's receive buffer).

Each event is encoded to JSON once, when it is appended; every client of every transport
is handed the same text. A transport that wraps the text in its own framing (an SSE
frame, a WebSocket frame) builds that once per entry too, through :meth:`LogEntry.frame`:
with a thousand clients on an agent, an event costs one encoding and one framing, then a
thousand socket writes of the same bytes.

Storage is for the garbage collector's sake. A log holds up to a grace period of events;
kept as objects, every event would survive into the oldest generation, and their number
is what triggers a full collection, a pause that walks every object of every connected
client. So the log keeps only strings, floats and bytes (objects the collector never
tracks), and :class:`LogEntry` objects are short-lived views handed to transports.

Retention (the policy itself is the hub's; this module only executes it): ``trim``
drops head entries that every reader has and that nobody touched for ``grace`` seconds,
then enforces the hard ``max_len`` cap whatever readers still need.

Memory. Every log charges what it holds to a :class:`Budget` shared by all the logs of
a store: the JSON text of each entry, the frames built from it, plus
:data:`ENTRY_OVERHEAD` bytes for the Python objects around them. The store evicts from
the largest logs (:meth:`EventLog.evict`) when the total passes its limit, so the
memory of all logs together is bounded, not only each log's length.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, cast

from pbxis.events import AgentEvent

__all__ = ["ENTRY_OVERHEAD", "Budget", "EventLog", "LogEntry", "encode_compact"]

_ENCODER = json.JSONEncoder(separators=(",", ":"))
_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)  # CPython's; None elsewhere
#: the C encoder behind ``_ENCODER``, built once (``JSONEncoder.encode`` builds one per
#: call); no circular check: events are flat dicts of scalars and short lists
_C_ENCODE: Callable[[Any, int], Iterable[str]] | None = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
)


def encode_compact(obj: Any) -> str:
    """``json.dumps(obj, separators=(",", ":"))``, the same text, for a quarter to a third
    less per event: ``dumps`` with any argument builds an encoder per call."""
    if _C_ENCODE is not None:
        return "".join(_C_ENCODE(obj, 0))
    return _ENCODER.encode(obj)


#: Keys of :meth:`AgentEvent.to_json`'s own before the event's data: an event whose data
#: holds one of them is encoded through ``to_json`` (its value replaces the head's there).
_HEAD_KEYS = frozenset({"id", "type", "agent", "supervisor", "pbx", "time"})
_encode_str = json.encoder.encode_basestring_ascii


def _head(agent: str, type: str, pbx: str | None) -> str:
    """``,"type":...,"agent":...,"pbx":...,"time":`` as ``encode_compact(event.to_json())``
    writes it between the id and the time (``"supervisor"`` for a supervisor's log)."""
    sample = AgentEvent(agent, type, 0).to_json(0, pbx)
    sample.pop("id")
    sample.pop("time")
    parts = [f",{_encode_str(key)}:{encode_compact(value)}" for key, value in sample.items()]
    return "".join(parts) + ',"time":'


#: Bytes charged per entry beyond its text and frames: the str header (49), the float
#: of ``_touched`` (24) and four list slots (32), rounded up.
ENTRY_OVERHEAD = 120


class Budget:
    """Bytes held by a set of logs; ``used`` goes up on append, down on trim."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0


class LogEntry:
    """A numbered event as handed to a transport: ``id``, ``type`` and ``text``, its
    compact JSON. A view: the log keeps the data (see the module docstring)."""

    __slots__ = ("_log", "id", "text", "type")

    def __init__(self, log: EventLog, id: int, type: str, text: str) -> None:
        self._log = log
        self.id = id
        self.type = type
        self.text = text

    def __repr__(self) -> str:
        return f"<LogEntry {self.id} {self.type}>"

    @property
    def json(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.text))

    def frame(self, kind: str, render: Callable[[LogEntry], bytes]) -> bytes:
        """``render(self)``, computed once per ``kind`` while the log keeps the entry.

        ``kind`` names the framing (one per transport); ``render`` must depend on the
        entry only, so that any client may be handed what another client's call built.
        """
        return self._log._frame(self, kind, render)


class EventLog:
    """Numbered entries ``first_id..last_id``; ids never repeat, even after trimming."""

    def __init__(self, max_len: int, budget: Budget | None = None) -> None:
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self.max_len = max_len
        self.budget = budget if budget is not None else Budget()
        #: bytes this log charges to ``budget``
        self.bytes = 0
        self.last_id = 0
        #: the PBX named in every entry (``"pbx"``), set by the hub that owns the log
        self.pbx: str | None = None
        # One item per entry in each list; the entry with id ``n`` is at ``n - _base``
        # and the live ones start at index ``_start``.
        self._base = 1
        self._start = 0
        self._types: list[str] = []
        self._texts: list[str] = []
        #: the hub's clock reading when appended or last handed to a client (retention)
        self._touched: list[float] = []
        self._frames: list[dict[str, bytes] | None] = []
        #: (agent, type) -> the JSON between an entry's id and its time (see :func:`_head`)
        self._heads: dict[tuple[str, str], str] = {}
        self._heads_pbx: str | None = None

    def __len__(self) -> int:
        return len(self._texts) - self._start

    @property
    def first_id(self) -> int:
        """The oldest retained id; ``last_id + 1`` when the log is empty."""
        return self._base + self._start

    def can_replay(self, since: int) -> bool:
        """Whether a reader that saw ``since`` can get every later event from us."""
        return self._base + self._start - 1 <= since <= self.last_id

    def append(self, events: Iterable[AgentEvent], now: float) -> int:
        """Number and encode ``events``; returns the bytes of JSON added."""
        size = 0
        count = 0
        encode = encode_compact
        types, texts, touched, frames = self._types, self._texts, self._touched, self._frames
        last_id = self.last_id
        pbx = self.pbx
        heads = self._heads
        if self._heads_pbx != pbx:  # the hub names the log's PBX before any append
            heads.clear()
            self._heads_pbx = pbx
        try:
            for event in events:
                data = event.data
                time = event.time
                key = (event.agent, event.type)
                head = heads.get(key)
                if head is None:
                    head = heads[key] = _head(event.agent, event.type, pbx)
                if type(time) is int and _HEAD_KEYS.isdisjoint(data):
                    # what ``encode(event.to_json(...))`` gives, without building that dict
                    # and encoding the same head again for each event of this agent and type
                    body = encode(data) if data else "{}"
                    tail = "}" if body == "{}" else "," + body[1:]
                    text = f'{{"id":{last_id + 1}{head}{time}{tail}'  # may raise: nothing appended yet
                else:  # a field shadowing one of the head's, a time not an int: as to_json says
                    text = encode(event.to_json(last_id + 1, pbx))
                last_id += 1
                types.append(event.type)
                texts.append(text)
                touched.append(now)
                frames.append(None)
                size += len(text)
                count += 1
        finally:
            self.last_id = last_id
            self._charge(size + count * ENTRY_OVERHEAD)
        return size

    def append_rendered(self, type: str, rest: str, now: float) -> int:
        """Append an entry whose JSON after ``{"id":N,`` is ``rest`` (rendered by the
        caller, e.g. once per queue state and agent); returns the bytes added."""
        self.last_id += 1
        text = f'{{"id":{self.last_id},{rest}'
        self._types.append(type)
        self._texts.append(text)
        self._touched.append(now)
        self._frames.append(None)
        self._charge(len(text) + ENTRY_OVERHEAD)
        return len(text)

    def _charge(self, size: int) -> None:
        self.bytes += size
        self.budget.used += size

    def after(self, cursor: int, limit: int) -> list[LogEntry]:
        """Up to ``limit`` entries with ids above ``cursor`` (which must be replayable)."""
        lo = max(cursor + 1 - self._base, self._start)
        first = self._base + lo
        types = self._types
        return [
            LogEntry(self, first + i, types[lo + i], text)
            for i, text in enumerate(self._texts[lo : lo + limit])
        ]

    def touch(self, after: int, upto: int, now: float) -> None:
        """Entries ``after + 1 .. upto`` were just handed to a client."""
        lo, hi = max(after + 1 - self._base, self._start), upto + 1 - self._base
        self._touched[lo:hi] = [now] * (hi - lo)

    def trim(self, keep_after: int, now: float, grace: float) -> None:
        """Drop the head up to ``keep_after`` where untouched for ``grace``, then cap."""
        touched = self._touched
        start = self._start
        limit = min(keep_after + 1 - self._base, len(touched))  # index just past id keep_after
        while start < limit and touched[start] + grace <= now:
            start += 1
        self._drop_to(max(start, len(touched) - self.max_len))

    def evict(self, size: int) -> int:
        """Drop head entries, needed or not, until ``size`` bytes are freed (or the log is
        empty); returns the bytes freed. The store's answer to its byte limit."""
        before = self.bytes
        start, texts, frames = self._start, self._texts, self._frames
        freed = 0
        while start < len(texts) and freed < size:
            freed += len(texts[start]) + ENTRY_OVERHEAD
            built = frames[start]
            if built:
                freed += sum(len(b) for b in built.values())
            start += 1
        self._drop_to(start)
        return before - self.bytes

    def _drop_to(self, start: int) -> None:
        """Entries before index ``start`` leave the log (their bytes leave the budget)."""
        if start > self._start:
            texts, frames = self._texts, self._frames
            freed = 0
            for i in range(self._start, start):
                freed += len(texts[i]) + ENTRY_OVERHEAD
                built = frames[i]
                if built:
                    freed += sum(len(b) for b in built.values())
                    frames[i] = None
            self._charge(-freed)
        self._start = start
        touched = self._touched
        if start > len(touched) // 2:
            for column in (self._types, self._texts, touched, self._frames):
                del column[:start]
            self._base += start
            self._start = 0

    def _frame(self, entry: LogEntry, kind: str, render: Callable[[LogEntry], bytes]) -> bytes:
        index = entry.id - self._base
        if not self._start <= index < len(self._frames):
            return render(entry)  # trimmed since the view was made: nothing to share
        frames = self._frames[index]
        if frames is None:
            frames = self._frames[index] = {}
        built = frames.get(kind)
        if built is None:
            built = frames[kind] = render(entry)
            self._charge(len(built))
        return built
