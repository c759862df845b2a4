"""Calls for the same key while one is in flight share its outcome (one Redis round trip).

A web node asked the same question by a burst of clients, or a registration read by a
local request and by the feed at the same moment, must cost the writer or Redis one
round trip, and (for the read that claims a log) must happen once: a second claim would
make the first one's log stale.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from twisted.internet import defer

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """The first caller of a key runs ``fn``; callers meanwhile get the same value or error."""

    def __init__(self) -> None:
        self._waiting: dict[K, list[defer.Deferred[V]]] = {}

    async def run(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        waiters = self._waiting.get(key)
        if waiters is not None:  # in flight: wait for that outcome
            mine: defer.Deferred[V] = defer.Deferred()
            waiters.append(mine)
            return await mine
        waiters = self._waiting[key] = []
        try:
            value = await fn()
        except BaseException as e:
            for waiter in waiters:
                waiter.errback(e)
            raise
        finally:
            self._waiting.pop(key, None)
        for waiter in waiters:
            waiter.callback(value)
        return value
