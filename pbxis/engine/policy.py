"""The toll-fraud guard of originate: which numbers may be dialled, and how often.

Pure rules and a sliding-window counter; time comes from an injected ``IReactorTime``
(``task.Clock`` in tests). The engine applies them to every originate, whoever asks:
an agent's browser, the CRM and a library program alike.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Sequence

from twisted.internet.interfaces import IReactorTime

from pbxis.config import OriginateConfig
from pbxis.errors import NumberNotAllowed, RateLimited

__all__ = ["NumberPolicy", "OriginateGuard", "RateLimiter"]


class NumberPolicy:
    """``[originate]`` ``allow``/``deny``/``allow_feature_codes`` as one check.

    A number containing ``*`` or ``#`` is refused unless feature codes are allowed
    (``*72...`` forwards the agent's phone to anywhere); a number matching any deny
    pattern is refused; with allow patterns, a number must match one. Deny wins.
    """

    def __init__(self, allow: Sequence[str], deny: Sequence[str], *, allow_feature_codes: bool) -> None:
        self._allow = [re.compile(p) for p in allow]
        self._deny = [re.compile(p) for p in deny]
        self._feature_codes = allow_feature_codes

    def check(self, number: str) -> None:
        """Raise :class:`NumberNotAllowed` when ``number`` may not be dialled."""
        if not self._feature_codes and ("*" in number or "#" in number):
            raise NumberNotAllowed(
                f"{number}: '*' and '#' (feature codes) are not allowed; "
                "set [originate].allow_feature_codes to allow them"
            )
        for pattern in self._deny:
            if pattern.search(number):
                raise NumberNotAllowed(f"{number}: refused by [originate].deny pattern {pattern.pattern!r}")
        if self._allow and not any(p.search(number) for p in self._allow):
            raise NumberNotAllowed(f"{number}: matches no [originate].allow pattern")


class RateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds (0 = unlimited).

    A sliding window: each key keeps the times of its last ``limit`` accepted events,
    so memory is bounded by ``limit`` per key; a key whose events all left the window
    is dropped the next time it is seen, or by the sweep that runs each time the number
    of keys doubles (amortized O(1) per event), so keys never seen again go too.
    """

    _MIN_SWEEP = 1024

    def __init__(self, clock: IReactorTime, limit: int, window: float) -> None:
        self._clock = clock
        self.limit = limit
        self.window = window
        self._times: dict[str, deque[float]] = {}
        self._sweep_at = self._MIN_SWEEP

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may go again (0: now)."""
        if self.limit <= 0:
            return 0.0
        times = self._times.get(key)
        if times is None:
            return 0.0
        now = self._clock.seconds()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._times[key]
            return 0.0
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window - now

    def record(self, key: str) -> None:
        if self.limit > 0:
            self._times.setdefault(key, deque(maxlen=self.limit)).append(self._clock.seconds())
            if len(self._times) >= self._sweep_at:
                self._sweep()

    def forget(self, key: str) -> None:
        """Drop ``key`` now: for a key that will never count again (not an agent whose
        registration ended: registered again, it must find its count)."""
        self._times.pop(key, None)

    def _sweep(self) -> None:
        horizon = self._clock.seconds() - self.window
        for key in [k for k, times in self._times.items() if times[-1] <= horizon]:
            del self._times[key]
        self._sweep_at = max(self._MIN_SWEEP, 2 * len(self._times))

    def __len__(self) -> int:
        return len(self._times)


_ALL = ""


class OriginateGuard:
    """Number policy, then the per-agent and the global rate limit, as one decision."""

    def __init__(self, clock: IReactorTime, settings: OriginateConfig) -> None:
        self.settings = settings
        self.numbers = NumberPolicy(
            settings.allow, settings.deny, allow_feature_codes=settings.allow_feature_codes
        )
        self._per_agent = RateLimiter(clock, settings.agent_rate, settings.rate_window)
        self._global = RateLimiter(clock, settings.global_rate, settings.rate_window)

    def admit(self, agent: str, number: str) -> None:
        """Raise unless ``agent`` may dial ``number`` now; count it when it may.

        A refused attempt counts for nothing, so an agent hammering a denied number does
        not use up its own quota, nor everybody's.
        """
        self.numbers.check(number)
        wait = max(self._per_agent.retry_after(agent), self._global.retry_after(_ALL))
        if wait > 0:
            whose = "this agent" if self._per_agent.retry_after(agent) > 0 else "all agents together"
            limit = self._per_agent if whose == "this agent" else self._global
            raise RateLimited(
                f"too many originates for {whose} (at most {limit.limit} in {_fmt(limit.window)} s); "
                f"retry in {math.ceil(wait)} s",
                retry_after=max(1, math.ceil(wait)),
            )
        self._per_agent.record(agent)
        self._global.record(_ALL)

    def forget(self, agent: str) -> None:
        """The agent's registration ended. Its count stays until its window has passed:
        dropping it here let an unregister and a new registration (or a grace period
        run out on purpose) reset the agent's quota at once. Idle counts are swept."""


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
