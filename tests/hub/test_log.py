"""EventLog on its own: numbering, slices, retention, shared frames, and what it costs the GC."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxis.events import AgentEvent
from pbxis.hub import EventLog, LogEntry
from pbxis.hub.log import encode_compact


def events(n: int, start: int = 0) -> list[AgentEvent]:
    return [AgentEvent("1001", "queueCount", 5, {"queue": "q", "count": start + i}) for i in range(n)]


def test_entries_are_numbered_encoded_once_and_sliced_by_cursor() -> None:
    log = EventLog(100)
    assert log.append(events(3), now=1.0) == sum(
        len(json.dumps(e.to_json(i + 1), separators=(",", ":"))) for i, e in enumerate(events(3))
    )
    batch = log.after(0, 10)
    assert [e.id for e in batch] == [1, 2, 3]
    assert [e.type for e in batch] == ["queueCount"] * 3
    assert batch[1].json == {
        "id": 2,
        "type": "queueCount",
        "agent": "1001",
        "time": 5,
        "queue": "q",
        "count": 1,
    }
    assert [e.id for e in log.after(1, 1)] == [2]
    assert log.after(3, 10) == []


# A naive model: a dict id -> (text, touched); retention rules spelled out directly.
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 5)),
        st.tuples(st.just("touch"), st.integers(0, 40), st.integers(0, 40)),
        st.tuples(st.just("trim"), st.integers(0, 60), st.floats(0, 5)),
        st.tuples(st.just("tick"), st.floats(0, 3)),
    ),
    max_size=60,
)


@given(_ops, st.integers(1, 12))
def test_log_agrees_with_a_naive_model(ops: list[tuple[Any, ...]], max_len: int) -> None:
    log = EventLog(max_len)
    model: dict[int, list[Any]] = {}  # id -> [text, touched]
    last = 0
    now = 0.0
    for op in ops:
        if op[0] == "append":
            log.append(events(op[1], start=last), now)
            for entry in log.after(last, op[1]):
                model[entry.id] = [entry.text, now]
            last += op[1]
        elif op[0] == "touch":
            lo = max(op[1], min(model, default=last + 1) - 1)
            hi = min(op[1] + op[2], last)
            if lo < hi:
                log.touch(lo, hi, now)
                for i in range(lo + 1, hi + 1):
                    model[i][1] = now
        elif op[0] == "trim":
            keep_after, grace = op[1], op[2]
            for i in sorted(model):
                if i <= keep_after and model[i][1] + grace <= now:
                    del model[i]
                else:
                    break
            for i in sorted(model)[: max(0, len(model) - max_len)]:
                del model[i]
            log.trim(keep_after, now, grace)
        else:
            now += op[1]
        first = min(model, default=last + 1)
        assert (log.first_id, log.last_id, len(log)) == (first, last, len(model))
        assert all(log.can_replay(c) for c in range(first - 1, last + 1))
        assert not log.can_replay(first - 2) or first == 1
        assert not log.can_replay(last + 1)
        for cursor in range(first - 1, last + 1):
            assert [(e.id, e.text) for e in log.after(cursor, 3)] == [
                (i, model[i][0]) for i in range(cursor + 1, min(cursor + 3, last) + 1)
            ]


def test_a_frame_is_built_once_per_kind_and_shared_by_every_reader() -> None:
    log = EventLog(100)
    log.append(events(2), now=0.0)
    built: list[tuple[str, int]] = []

    def render(kind: str) -> Any:
        def go(entry: LogEntry) -> bytes:
            built.append((kind, entry.id))
            return f"{kind}:{entry.id}".encode()

        return go

    # two readers, each with its own views of the same entries
    for _reader in range(2):
        assert [e.frame("sse", render("sse")) for e in log.after(0, 10)] == [b"sse:1", b"sse:2"]
        assert [e.frame("ws", render("ws")) for e in log.after(0, 10)] == [b"ws:1", b"ws:2"]
    assert built == [("sse", 1), ("sse", 2), ("ws", 1), ("ws", 2)]


def test_a_view_outliving_its_entry_still_renders() -> None:
    log = EventLog(1)
    log.append(events(1), now=0.0)
    (view,) = log.after(0, 1)
    log.append(events(3), now=0.0)  # the cap drops entry 1
    log.trim(3, now=0.0, grace=0.0)
    assert log.first_id == 4
    assert view.frame("sse", lambda e: b"%d" % e.id) == b"1"
    assert view.text == json.dumps(events(1)[0].to_json(1), separators=(",", ":"))


def _tracked_reachable(root: object) -> int:
    """Objects the collector tracks that ``root`` keeps alive (``root`` included)."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or not gc.is_tracked(obj) or isinstance(obj, type):
            continue
        seen.add(id(obj))
        todo.extend(gc.get_referents(obj))
    return len(seen)


def test_retained_events_are_not_objects_the_collector_walks() -> None:
    """A log holds a grace period of events: they must not add to every full collection
    (nor, surviving into the oldest generation, make full collections more frequent)."""
    small, big = EventLog(100_000), EventLog(100_000)
    for log, n in ((small, 10), (big, 5000)):
        log.append(events(n), now=0.0)
        for entry in log.after(0, n):
            entry.frame("sse", lambda e: e.text.encode())
    gc.collect()  # the collector untracks what holds only atomic values when it first sees it
    assert _tracked_reachable(big) == _tracked_reachable(small)


@pytest.mark.parametrize(
    "value",
    [
        {"id": 1, "type": "queueMemberStatus", "agent": "1001", "time": 5, "paused": False, "reason": None},
        {"text": 'é \u2028 "quoted" \\ \n tab\t', "n": 1.5, "big": 10**20, "list": [1, "a", {"b": []}]},
        {},
        ["a", 1],
        "plain",
    ],
)
def test_encode_compact_is_json_dumps_compact(value: object) -> None:
    assert encode_compact(value) == json.dumps(value, separators=(",", ":"))


def test_encode_compact_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        encode_compact({"x": object()})


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)


@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["1001", 'a"b', "supervisor:floor", "é"]),
            st.sampled_from(["queueMemberStatus", "phoneNumber"]),
            st.integers(0, 2**41) | st.floats(0, 1e12, allow_nan=False) | st.booleans(),
            st.dictionaries(st.sampled_from(["queue", "time", "id", "agent", "pbx", "ü"]), _scalars),
        ),
        max_size=8,
    ),
    pbx=st.none() | st.sampled_from(["default", "east"]),
)
def test_an_entry_is_the_events_to_json_encoded(events: list[tuple[Any, ...]], pbx: str | None) -> None:
    """The log renders the head of an agent's entries once per type: the text is still
    exactly ``encode_compact(event.to_json(id, pbx))``."""
    elog = EventLog(100)
    elog.pbx = pbx
    made = [AgentEvent(*fields) for fields in events]
    elog.append(made, 0.0)
    elog.append(made, 0.0)  # the heads now come from the log's cache
    texts = [entry.text for entry in elog.after(0, 100)]
    assert texts == [encode_compact(e.to_json(i + 1, pbx)) for i, e in enumerate(made + made)]
