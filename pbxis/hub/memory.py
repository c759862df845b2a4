"""The in-memory :class:`~pbxis.hub.store.HubStore`: the embedded default.

Logs are :class:`~pbxis.hub.log.EventLog` (strings and floats in lists, see there) with
the per-registration bookkeeping of the store interface beside them; all logs charge one
:class:`~pbxis.hub.log.Budget`. Evicting for the byte limit scans the logs for the
largest (O(registrations)) and frees a sixteenth of the limit at once, so the scan runs
at most once per that many bytes appended, not per append.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence

from pbxis.events import AgentEvent

from .log import ENTRY_OVERHEAD, Budget, EventLog
from .registration import Registration
from .store import QueueState, SnapshotSpan, StaleFence, without_time
from .tokens import TokenIndex

__all__ = ["MemoryLog", "MemoryStore", "without_time"]


class MemoryLog(EventLog):
    """An :class:`EventLog` with the store interface's per-registration bookkeeping."""

    def __init__(self, max_len: int, budget: Budget, fence: int) -> None:
        super().__init__(max_len, budget)
        self.fence = fence
        self._snapshot: SnapshotSpan | None = None
        self._absent: dict[int, float] = {}
        self._queue_versions: dict[tuple[str, str], int] = {}
        #: what this log shows of each (queue, type), its time left out (in memory only: a
        #: restarted process renders the next change, the stores keep equal states' versions)
        self._queue_shown: dict[tuple[str, str], str] = {}
        #: ``pbx`` and its ``"pbx":...,`` field as rendered into queue states
        self._pbx_field: tuple[str | None, str] = (None, "")

    def _check(self, fence: int) -> None:
        if fence != self.fence:
            raise StaleFence(f"fence {fence} is not the log's {self.fence}")

    def append(self, events: Iterable[AgentEvent], now: float, fence: int = -1) -> int:
        if fence != -1:
            self._check(fence)
        return super().append(events, now)

    def append_queue_state(self, state: QueueState, agent_json: str, now: float, fence: int) -> int:
        self._check(fence)
        key = (state.queue, state.type)
        shown = state.shown
        self._queue_versions[key] = state.version
        if self._queue_shown.get(key) == shown:
            return 0  # a new version of what this log shows already: nothing to tell
        self._queue_shown[key] = shown
        pbx = self.pbx
        if pbx is None:
            field = ""
        elif self._pbx_field[0] == pbx:
            field = self._pbx_field[1]
        else:  # rendered once per log, not per queue state
            field = f'"pbx":{json.dumps(pbx)},'
            self._pbx_field = (pbx, field)
        rest = f'"type":"{state.type}","agent":{agent_json},{field}{state.rest}'
        return self.append_rendered(state.type, rest, now)

    def queue_version(self, queue: str, type: str) -> int:
        return self._queue_versions.get((queue, type), 0)

    def mark_queue_version(self, queue: str, type: str, version: int, rest: str | None = None) -> None:
        self._queue_versions[(queue, type)] = version
        if rest is None:
            self._queue_shown.pop((queue, type), None)
        else:
            self._queue_shown[(queue, type)] = without_time(rest)

    @property
    def snapshot(self) -> SnapshotSpan | None:
        span = self._snapshot
        if span is not None and (span.first if span.reset is None else span.reset) < self.first_id:
            self._snapshot = span = None  # trimmed: nobody can read it from the start
        return span

    def note_snapshot(self, span: SnapshotSpan) -> None:
        self._snapshot = span

    def remember(self, cursor: int, until: float) -> None:
        self._absent[cursor] = max(until, self._absent.get(cursor, until))

    def absent(self, now: float) -> dict[int, float]:
        absent = self._absent
        if absent:
            floor = self.first_id - 1
            for cursor, until in list(absent.items()):
                if until <= now or cursor < floor:
                    del absent[cursor]
        return absent


class MemoryStore:
    """Registrations, logs and queue states in this process (see :mod:`pbxis.hub.store`).

    ``max_log`` caps each log's entries; ``max_log_bytes`` all logs together.
    """

    def __init__(self, *, max_log: int = 10_000, max_log_bytes: int = 256 * 1024 * 1024) -> None:
        if max_log_bytes < 16 * ENTRY_OVERHEAD:
            raise ValueError("max_log_bytes is too small to hold any log")
        self.max_log = max_log
        self.max_log_bytes = max_log_bytes
        self.budget = Budget()
        self._registrations: dict[str, Registration] = {}
        self._logs: dict[str, MemoryLog] = {}
        self._tokens: TokenIndex[Registration] = TokenIndex()
        self._queues: dict[tuple[str, str], QueueState] = {}
        self._queue_types: dict[str, list[str]] = {}
        self._fences = 0
        self._versions = 0  # one counter for every queue: a version is never reused

    # registrations

    def add(self, registration: Registration) -> MemoryLog:
        self._registrations[registration.agent] = registration
        self._tokens.add(registration.token, registration)
        self._fences += 1
        elog = MemoryLog(self.max_log, self.budget, self._fences)
        self._logs[registration.agent] = elog
        return elog

    def get(self, agent: str) -> Registration | None:
        return self._registrations.get(agent)

    def by_token(self, token: str) -> Registration | None:
        return self._tokens.get(token)

    def update(self, registration: Registration, queues: Sequence[str], name: str | None) -> None:
        registration.queues = tuple(queues)
        registration.name = name

    def remove(self, agent: str) -> None:
        registration = self._registrations.pop(agent, None)
        if registration is not None:
            self._tokens.remove(registration.token)
        elog = self._logs.pop(agent, None)
        if elog is not None:
            # the readers still attached keep the object; the budget forgets it now
            elog.evict(elog.bytes + 1)

    def watch(self, agent: str, queues: Sequence[str]) -> None:
        pass  # nothing outlives the process in memory

    def log(self, agent: str) -> MemoryLog | None:
        return self._logs.get(agent)

    def agents(self) -> Iterator[str]:
        return iter(list(self._registrations))

    def claim(self, agent: str) -> int:
        elog = self._logs[agent]
        self._fences += 1
        elog.fence = self._fences
        return elog.fence

    # queue states

    def set_queue_state(self, queue: str, type: str, rest: str) -> QueueState:
        key = (queue, type)
        old = self._queues.get(key)
        if old is None:
            self._queue_types.setdefault(queue, []).append(type)
        self._versions += 1
        state = self._queues[key] = QueueState(queue, type, self._versions, rest)
        return state

    def forget_queue(self, queue: str) -> None:
        for type in self._queue_types.pop(queue, ()):
            self._queues.pop((queue, type), None)

    def queue_state(self, queue: str, type: str) -> QueueState | None:
        return self._queues.get((queue, type))

    def queue_types(self, queue: str) -> Sequence[str]:
        return self._queue_types.get(queue, ())

    # memory

    def bytes_used(self) -> int:
        return self.budget.used

    def enforce_budget(self) -> list[str]:
        if self.budget.used <= self.max_log_bytes:
            return []
        target = self.max_log_bytes - self.max_log_bytes // 16
        touched: list[str] = []
        while self.budget.used > target:
            agent, elog = max(self._logs.items(), key=lambda item: item[1].bytes, default=(None, None))
            if elog is None or not elog.bytes:
                break
            # at least what takes us under target, from this log, at most all of it
            elog.evict(self.budget.used - target)
            touched.append(agent)  # type: ignore[arg-type]
        return touched

    def flush(self) -> None:
        return None

