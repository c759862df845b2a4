"""The daemon's garbage-collector policy: freeze what a burst of connections leaves behind.

Why. CPython's full collection walks every tracked object. A burst of 10,000 client
connections leaves a few hundred thousand long-lived objects (channels, requests,
transports, stream state), and the full pass the collector then runs takes 0.5-1.1 s
(``bench/bench_gc.py``): every stream stalls that long. Those objects live as long as
their connection; walking them again and again finds nothing.

Policy. :meth:`CollectorPolicy.check` runs every few seconds on the reactor. When the
collector tracks more than ``freeze_above`` objects not yet frozen, it moves them all to
the permanent generation (:func:`gc.freeze`, which costs nothing per object), out of reach
of later passes. A full collection then walks only what is newer than the last freeze.
The check counts nothing (a walk of the burst's objects would cost a third of the pass
it avoids): the young generation's own statistics bound how many objects survived into
the older ones since the last freeze (collections times the threshold, minus what they
collected). It overcounts objects that died later, which only makes a freeze (free)
come sooner.

The price, and its bound. Frozen objects are still freed by reference counting (a closed
connection's plain objects go at once), but a reference cycle among them is not
collected while they are frozen. So when the frozen set has grown past ``thaw_factor``
times what it held after the last thaw, the policy thaws, runs one full collection and
freezes the survivors again: one full pause per doubling of the heap (by default), where
the default collector pays it many times per burst, and frozen garbage never exceeds
what the live set was.

Embedding programs keep their collector to themselves: only the daemon starts this.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Final

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

__all__ = ["DEFAULT_CHECK_INTERVAL", "DEFAULT_FREEZE_ABOVE", "CollectorPolicy", "start_collector_policy"]

DEFAULT_CHECK_INTERVAL: Final = 5.0
DEFAULT_FREEZE_ABOVE: Final = 50_000
"""Unfrozen objects in the oldest generation past which they are frozen: a full pass
over that many costs tens of milliseconds (bench/bench_gc.py)."""
DEFAULT_THAW_FACTOR: Final = 2.0

log = Logger()


class CollectorPolicy:
    """Freeze the survivors of bursts; thaw and collect once per doubling of the frozen set."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        interval: float = DEFAULT_CHECK_INTERVAL,
        freeze_above: int = DEFAULT_FREEZE_ABOVE,
        thaw_factor: float = DEFAULT_THAW_FACTOR,
    ) -> None:
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock
        self.interval = interval
        self.freeze_above = freeze_above
        self.thaw_factor = thaw_factor
        self._after_thaw = 0  # frozen objects right after the last thaw (or the start)
        self._frozen = 0  # frozen objects now, as far as we froze them (counting walks them)
        self._promoted_at_freeze = 0
        self.freezes = 0
        self.thaws = 0

    def start(self) -> None:
        """Freeze what start-up built (it lives as long as the daemon), then check periodically."""
        gc.collect()
        gc.freeze()
        self._after_thaw = self._frozen = gc.get_freeze_count()
        self._promoted_at_freeze = _promoted()
        if not self._loop.running:
            self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def check(self) -> None:
        """One look (called by the loop; cheap when nothing piled up)."""
        promoted = _promoted()
        pending = promoted - self._promoted_at_freeze
        if pending < self.freeze_above:
            return
        self._promoted_at_freeze = promoted
        started = time.perf_counter()
        # The frozen set (not counting this burst) doubled since the last thaw: time to
        # collect the cycles that died in it. The first burst is never a full pass.
        # (Frozen objects freed by reference counting still count here: an upper bound.)
        if self._frozen > self.thaw_factor * max(self._after_thaw, self.freeze_above):
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._after_thaw = self._frozen = gc.get_freeze_count()
            self._promoted_at_freeze = _promoted()
            self.thaws += 1
            what = "thawed, collected and froze"
        else:
            # No collection first: that would walk the burst (what we avoid). Cycles that
            # were already garbage get frozen with the rest; the thaw collects them.
            gc.freeze()
            self._frozen += pending
            self.freezes += 1
            what = "froze"
        log.debug(
            "gc policy: {what} {pending} objects in {ms:.1f} ms",
            what=what,
            pending=pending,
            ms=(time.perf_counter() - started) * 1000,
        )

    def stats(self) -> dict[str, Any]:
        """For /metrics or a log line: what the policy did so far."""
        return {"freezes": self.freezes, "thaws": self.thaws, "frozen": gc.get_freeze_count()}


def _promoted() -> int:
    """An upper bound of the objects the youngest generation passed on, ever (O(1))."""
    young = gc.get_stats()[0]
    return int(young["collections"]) * gc.get_threshold()[0] - int(young["collected"])


def start_collector_policy(clock: IReactorTime, **options: Any) -> CollectorPolicy:
    """The daemon's one call: freeze start-up's objects and start the periodic check."""
    policy = CollectorPolicy(clock, **options)
    policy.start()
    return policy
