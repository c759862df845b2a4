"""Long-poll: ``GET /stream/{token}/poll?since=N&timeout=S``.

Answer: ``{"events": [...], "next": N}``. ``since`` is the id of the last event the client
has seen (absent or ``0`` on the first call: the answer starts with the current state);
``next`` is the ``since`` to send next time: the id of the last event in this answer, or
the ``since`` that was sent when there was nothing new. Passing ``next`` back is all a
client has to do to see every event exactly once.

The answer goes out at once when events are due. Otherwise the request waits up to
``timeout`` seconds (default 30, at most 120; ``0`` never waits); the first live events
end the wait, together with whatever else is published in the same reactor turn. An
answer holds at most :data:`MAX_EVENTS` events or about ``max_buffer_bytes`` of JSON; a
client that is behind simply polls again at once.

Between polls the client counts as connected to nobody: the grace period covers the gap.
"""

from __future__ import annotations

import math
import re

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.web.iweb import IRequest

from pbxis.hub import LogEntry, Registration, Subscription
from pbxis.web.errors import ApiError

from ._common import LONG_POLL, StreamConfig

__all__ = ["DEFAULT_TIMEOUT", "MAX_EVENTS", "MAX_TIMEOUT", "LongPoll", "parse_timeout"]

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 120.0
MAX_EVENTS = 1000


_SECONDS = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?")


def parse_timeout(raw: str | None) -> float:
    """Seconds as plain decimal digits (``25``, ``0.5``).

    Not ``float()``'s wider grammar: it also takes ``1_0``, ``1e1``, ``inf`` and
    non-ASCII digits, none of which a client means as a timeout.
    """
    if raw is None or raw.strip() == "":
        return DEFAULT_TIMEOUT
    value = float(raw) if _SECONDS.fullmatch(raw.strip()) else math.nan
    if not 0 <= value <= MAX_TIMEOUT:  # also refuses NaN
        raise ApiError(400, "bad_timeout", f"timeout must be a number of seconds from 0 to {MAX_TIMEOUT:g}.")
    return value


class LongPoll:
    """One long-poll request: a short-lived hub subscription."""

    def __init__(
        self,
        config: StreamConfig,
        request: IRequest,
        registration: Registration,
        since: int | None,
        timeout: float,
    ) -> None:
        self._config = config
        self._request = request
        self._registration = registration
        self._since = since
        self._timeout = timeout
        self._done: Deferred[bytes] = Deferred(canceller=self._client_gone)
        self._entries: list[LogEntry] = []
        self._size = 0
        self._timer: IDelayedCall | None = None
        self._sub: Subscription | None = None

    def start(self) -> Deferred[bytes]:
        """Fires with the JSON answer."""
        sub = self._config.subscribe(
            self._registration, self._since, LONG_POLL, self._deliver, self._hub_ended
        )
        self._sub = sub
        self._config.open_streams.add(self)
        sub.resumeProducing()
        if self._entries or self._timeout == 0:
            self._answer()
        elif not self._done.called:
            self._timer = self._config.clock.callLater(self._timeout, self._answer)
        return self._done

    def shutdown(self) -> None:
        self._answer()

    def _deliver(self, batch: list[LogEntry]) -> None:
        self._entries.extend(batch)
        self._size += sum(len(entry.text) + 1 for entry in batch)
        assert self._sub is not None
        if len(self._entries) >= MAX_EVENTS or self._size >= self._config.max_buffer_bytes:
            self._sub.pauseProducing()
        if self._timer is not None and self._timer.active():
            # Live events: answer after this reactor turn so a burst goes out together.
            self._timer.cancel()
            self._timer = self._config.clock.callLater(0, self._answer)

    def _hub_ended(self, reason: str) -> None:
        self._answer()

    def _answer(self) -> None:
        if self._done.called:
            return
        self._stop()
        assert self._sub is not None
        body = b'{"events":[%s],"next":%d}' % (
            b",".join(entry.text.encode("utf-8") for entry in self._entries),
            self._sub.cursor,
        )
        self._config.count_out(LONG_POLL, len(self._entries))
        self._request.setHeader(b"content-type", b"application/json")
        self._request.setHeader(b"cache-control", b"no-cache, no-store")
        self._done.callback(body)

    def _client_gone(self, _: Deferred[bytes]) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._sub is not None:
            self._sub.stopProducing()
        self._config.open_streams.discard(self)
