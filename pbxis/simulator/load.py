"""Demo load: customers arriving at random, agents taking breaks.

A Poisson arrival process (exponential gaps from the simulator's seeded RNG) into a
random queue, talk times drawn uniformly, and now and then an idle agent pauses for
a while with a plausible reason, so a demo page shows life.
"""

from __future__ import annotations

import random
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from .pbx import PBX

__all__ = ["Load", "LoadHost"]

log = Logger()
PAUSE_REASONS = ("Coffee", "Lunch break", "Meeting", "Paperwork", "Coaching")
_NAMES = ("Ana Horvat", "Ivan Kovac", "Marta Babic", "Luka Novak", "Petra Juric", "Customer")


class LoadHost(Protocol):
    """The part of the simulator the demo load drives."""

    rng: random.Random
    clock: IReactorTime
    pbx: PBX

    def customer_call(
        self,
        queue: str,
        number: str = ...,
        name: str = ...,
        talk_time: float = ...,
        max_wait: float = ...,
        *,
        hangup_after: float | None = None,
    ) -> str: ...

    def queue_pause(
        self, interface: str, paused: bool = True, queue: str | None = None, reason: str = ""
    ) -> None: ...


class Load:
    """Demo traffic: Poisson arrivals into random queues and agents' breaks."""

    def __init__(self, sim: LoadHost) -> None:
        self.sim = sim
        self.rate = 0.0
        self.talk = (20.0, 60.0)
        self.pause_every: float | None = None
        self._calls: list[IDelayedCall] = []
        self.running = False
        self._suspended = False

    def start(
        self, rate_per_minute: float, talk_time: tuple[float, float], *, pause_every: float | None
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        low, high = talk_time
        if low < 0 or high < low:
            raise ValueError("talk_time must be (low, high) with 0 <= low <= high")
        self.stop()
        self.rate, self.talk, self.pause_every = rate_per_minute, (low, high), pause_every
        self.running = True
        self._schedule()

    def stop(self) -> None:
        self.running = False
        self._cancel()

    def pause(self) -> None:
        """Suspend while the PBX restarts; :meth:`resume` picks up again."""
        self._suspended = True
        self._cancel()

    def resume(self) -> None:
        self._suspended = False
        if self.running:
            self._schedule()

    def _cancel(self) -> None:
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls.clear()

    def _schedule(self) -> None:
        self._calls = [c for c in self._calls if c.active()]
        rng = self.sim.rng
        gap = rng.expovariate(self.rate / 60.0)
        self._calls.append(self.sim.clock.callLater(gap, self._arrival))
        if self.pause_every:
            self._calls.append(self.sim.clock.callLater(rng.expovariate(1.0 / self.pause_every), self._break))

    def _arrival(self) -> None:
        if not self.running or self._suspended:
            return
        rng = self.sim.rng
        queues = list(self.sim.pbx.queues)
        if queues:
            number = "3859" + "".join(rng.choice("0123456789") for _ in range(8))
            self.sim.customer_call(
                rng.choice(queues),
                number=number,
                name=rng.choice(_NAMES),
                talk_time=round(rng.uniform(*self.talk)),
                max_wait=120.0,
                hangup_after=rng.uniform(30.0, 180.0) if rng.random() < 0.15 else None,
            )
        self._calls = [c for c in self._calls if c.active()]
        self._calls.append(self.sim.clock.callLater(rng.expovariate(self.rate / 60.0), self._arrival))

    def _break(self) -> None:
        if not self.running or self._suspended:
            return
        rng = self.sim.rng
        pbx = self.sim.pbx
        idle = sorted({m.interface for q in pbx.queues.values() for m in q.members.values() if not m.paused})
        if idle:
            interface = rng.choice(idle)
            self.sim.queue_pause(interface, True, reason=rng.choice(PAUSE_REASONS))
            self._calls.append(self.sim.clock.callLater(rng.uniform(20.0, 90.0), self._unpause, interface))
        assert self.pause_every is not None
        self._calls = [c for c in self._calls if c.active()]
        self._calls.append(self.sim.clock.callLater(rng.expovariate(1.0 / self.pause_every), self._break))

    def _unpause(self, interface: str) -> None:
        if not self._suspended:
            try:
                self.sim.queue_pause(interface, False)
            except Exception as exc:  # the member may have been removed meanwhile
                log.debug("demo unpause of {interface} skipped: {exc}", interface=interface, exc=exc)
