"""Delivering events to one webhook endpoint: at least once, in order per agent.

The loop, per agent lane (:mod:`.outbox`): send the head; on a 2xx remove it and send
the next; on a timeout, a connection error, a 5xx, 408, 409 or 429 keep it and retry
after a jittered exponential backoff (1 s doubling up to 10 min, or the server's
``Retry-After`` when that is longer); on any other status give that event up (logged,
counted) and go on with the next. An event older than ``max_age`` is given up too. Each
retry is signed again with a fresh ``webhook-timestamp`` and the same ``webhook-id``.

Nothing here blocks: :meth:`Endpoint.offer` appends to the outbox and returns; requests
run on the reactor, at most ``max_in_flight`` at a time per endpoint (so a dead CRM
costs a bounded number of sockets and ``max_pending`` events of memory, nothing else).
Time is the injected ``IReactorTime`` and HTTP the injected :data:`PostFn`, so tests
drive the whole loop with ``task.Clock``; :func:`treq_post` is the real one.
"""

from __future__ import annotations

import email.utils
import json
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .config import WebhookConfig
from .outbox import Item, MemoryOutbox, Outbox
from .signing import signature_headers

__all__ = [
    "MAX_DELAY",
    "MIN_DELAY",
    "Answer",
    "Endpoint",
    "EndpointStats",
    "PostFn",
    "Webhooks",
    "backoff",
    "message_id",
    "parse_retry_after",
    "treq_post",
]

log = Logger(namespace="pbxis.webhooks")

MIN_DELAY: Final = 1.0
MAX_DELAY: Final = 600.0
RETRY_STATUSES: Final = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class Answer:
    """The part of an HTTP response delivery looks at."""

    status: int
    retry_after: str | None = None


PostFn = Callable[[str, Mapping[str, str], bytes, float], "Deferred[Answer]"]
"""``post(url, headers, body, timeout)``: fires with the :class:`Answer` or fails
(connection refused, reset, timed out)."""


def message_id(pbx: str, agent: str, incarnation: int, event_id: int) -> str:
    """``webhook-id``: the same for every attempt at one event, different for any other.

    ``incarnation`` (the registration's creation time, ms) tells apart two registrations
    of one agent, whose logs both start at id 1. ``:`` separates the parts (it is in no
    name), and ``.`` (allowed in names, refused in ids by the spec) is escaped.
    """
    return f"{pbx}:{agent}:{incarnation}:{event_id}".replace("%", "%25").replace(".", "%2E")


def backoff(attempt: int, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1-based): 1, 2, 4 ... 600 s, each drawn
    from the upper half of its interval so a fleet of retries does not march in step."""
    ceiling = min(MAX_DELAY, MIN_DELAY * float(2 ** min(attempt - 1, 30)))
    return max(MIN_DELAY, ceiling / 2 + rng.random() * ceiling / 2)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds from ``now``: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass
class EndpointStats:
    delivered: int = 0
    retried: int = 0
    given_up: int = 0
    dropped: int = 0


@dataclass
class _Lane:
    timer: IDelayedCall | None = None
    busy: bool = False


@dataclass
class Endpoint:
    """One configured endpoint's delivery loop (see the module docstring)."""

    config: WebhookConfig
    clock: IReactorTime
    post: PostFn
    wall: Callable[[], float]
    rng: random.Random = field(default_factory=random.Random)
    outbox: Outbox = field(default_factory=MemoryOutbox)
    stats: EndpointStats = field(default_factory=EndpointStats)

    def __post_init__(self) -> None:
        self._lanes: dict[str, _Lane] = {}
        self._waiting: deque[str] = deque()
        self._in_flight: dict[int, Deferred[Answer]] = {}
        self._stopped = False

    # -- intake ----------------------------------------------------------------------
    def offer(self, agent: str, msg_id: str, body: bytes) -> None:
        """Queue one event; returns at once. Makes room by dropping the oldest waiting one."""
        if self._stopped:
            return
        self.outbox.add(agent, msg_id, body, self.clock.seconds())
        while len(self.outbox) > self.config.max_pending:
            dropped = self.outbox.drop_oldest_waiting()
            if dropped is None:
                break
            self.stats.dropped += 1
            log.warn(
                "webhook {name}: {max} events pending; dropped the oldest ({id})",
                name=self.config.name,
                max=self.config.max_pending,
                id=dropped.msg_id,
            )
        self._kick(agent)

    @property
    def pending(self) -> int:
        return len(self.outbox)

    def oldest_age(self) -> float:
        item = self.outbox.oldest()
        return self.clock.seconds() - item.enqueued if item is not None else 0.0

    def resume(self) -> None:
        """Start every lane the outbox holds (items loaded back from a durable outbox)."""
        for agent in self.outbox.lanes():
            self._kick(agent)

    def stop(self) -> None:
        """Cancel timers and requests in flight; what is pending stays in the outbox."""
        self._stopped = True
        for lane in self._lanes.values():
            if lane.timer is not None and lane.timer.active():
                lane.timer.cancel()
        for d in list(self._in_flight.values()):
            d.cancel()

    # -- the loop --------------------------------------------------------------------
    def _kick(self, agent: str) -> None:
        lane = self._lanes.setdefault(agent, _Lane())
        if lane.busy or self._stopped:
            return
        item = self.outbox.head(agent)
        if item is None:
            del self._lanes[agent]
            return
        if len(self._in_flight) >= self.config.max_in_flight:
            if agent not in self._waiting:
                self._waiting.append(agent)
            return
        self._send(agent, lane, item)

    def _send(self, agent: str, lane: _Lane, item: Item) -> None:
        lane.busy = True
        item.in_flight = True
        item.attempts += 1
        headers = {
            "content-type": "application/json",
            "user-agent": "pbxis-webhooks",
            **signature_headers(self.config.key, item.msg_id, int(self.wall()), item.body),
        }
        try:
            d = self.post(self.config.url, headers, item.body, self.config.timeout)
        except Exception:  # a PostFn must not raise, but a raise must not wedge the lane
            d = fail()
        self._in_flight[item.seq] = d
        d.addCallbacks(
            self._answered, self._failed, callbackArgs=(agent, lane, item), errbackArgs=(agent, lane, item)
        )

    def _answered(self, answer: Answer, agent: str, lane: _Lane, item: Item) -> None:
        status = answer.status
        if 200 <= status < 300:
            self.stats.delivered += 1
            self._finish(agent, lane, item)
        elif status >= 500 or status in RETRY_STATUSES:
            after = parse_retry_after(answer.retry_after, self.wall())
            self._retry(agent, lane, item, f"HTTP {status}", after)
        else:
            self.stats.given_up += 1
            log.error(
                "webhook {name}: {url} answered HTTP {status} to {id}; giving this event up "
                "(4xx means the receiver refuses it; check its logs)",
                name=self.config.name,
                url=self.config.url,
                status=status,
                id=item.msg_id,
            )
            self._finish(agent, lane, item)

    def _failed(self, failure: Failure, agent: str, lane: _Lane, item: Item) -> None:
        if self._stopped:
            self._in_flight.pop(item.seq, None)
            item.in_flight = False
            return
        self._retry(agent, lane, item, failure.getErrorMessage() or repr(failure.value), None)

    def _retry(self, agent: str, lane: _Lane, item: Item, why: str, after: float | None) -> None:
        delay = backoff(item.attempts, self.rng)
        if after is not None:
            delay = max(delay, after)
        if self.clock.seconds() + delay - item.enqueued > self.config.max_age:
            self.stats.given_up += 1
            log.error(
                "webhook {name}: {id} still undelivered after {n} attempts ({why}); "
                "max_age reached, giving it up",
                name=self.config.name,
                id=item.msg_id,
                n=item.attempts,
                why=why,
            )
            self._finish(agent, lane, item)
            return
        self.stats.retried += 1
        log.info(
            "webhook {name}: {id} failed ({why}); retry {n} in {delay:.1f} s",
            name=self.config.name,
            id=item.msg_id,
            why=why,
            n=item.attempts,
            delay=delay,
        )
        self._release(item)
        lane.timer = self.clock.callLater(delay, self._resume, agent, lane)

    def _resume(self, agent: str, lane: _Lane) -> None:
        lane.timer = None
        lane.busy = False
        self._kick(agent)

    def _finish(self, agent: str, lane: _Lane, item: Item) -> None:
        self._release(item)
        self.outbox.remove(item)
        lane.busy = False
        self._kick(agent)

    def _release(self, item: Item) -> None:
        """The request is over: free its slot and start a lane that waited for one."""
        item.in_flight = False
        self._in_flight.pop(item.seq, None)
        while self._waiting and len(self._in_flight) < self.config.max_in_flight:
            self._kick(self._waiting.popleft())


class Webhooks:
    """Every configured endpoint, fed the events of agents' logs (the hub's observer)."""

    def __init__(
        self,
        configs: Sequence[WebhookConfig],
        clock: IReactorTime,
        post: PostFn,
        *,
        wall: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        outbox: Callable[[WebhookConfig], Outbox] | None = None,
    ) -> None:
        rng = rng or random.Random()
        now = wall or clock.seconds
        make = outbox or (lambda _: MemoryOutbox())
        self.endpoints = [Endpoint(c, clock, post, now, rng, make(c)) for c in configs]
        self._types = frozenset().union(*(c.events for c in configs)) if configs else frozenset()

    def offer(
        self,
        pbx: str,
        agent: str,
        queues: Sequence[str],
        incarnation: int,
        event_id: int,
        type: str,
        text: str,
    ) -> None:
        """One logged event; goes to every endpoint whose filters take it. Never raises."""
        if type not in self._types:
            return
        event: dict[str, Any] | None = None
        body = text.encode("utf-8")
        for endpoint in self.endpoints:
            if type not in endpoint.config.events:
                continue
            if event is None:
                event = json.loads(text)
            if endpoint.config.wants(pbx, agent, queues, event):
                endpoint.offer(agent, message_id(pbx, agent, incarnation, event_id), body)

    def hub_observer(self, pbx: str = "default") -> Callable[[Any, Sequence[Any]], None]:
        """A :attr:`pbxis.hub.Hub.observers` entry: each logged event of ``pbx``'s agents."""

        def observe(registration: Any, entries: Sequence[Any]) -> None:
            for entry in entries:
                self.offer(
                    pbx,
                    registration.agent,
                    registration.queues,
                    registration.created,
                    entry.id,
                    entry.type,
                    entry.text,
                )

        return observe

    def resume(self) -> None:
        """Deliver what each endpoint's outbox holds from before (a durable outbox's load)."""
        for endpoint in self.endpoints:
            endpoint.resume()

    def stop(self) -> None:
        for endpoint in self.endpoints:
            endpoint.stop()


def treq_post(reactor: Any, *, max_per_host: int = 8) -> PostFn:
    """A :data:`PostFn` over treq with one persistent connection pool.

    The timeout covers the whole exchange (connect, headers and body), and the body is
    read and discarded as it arrives: a receiver that trickles or floods it costs time
    within ``timeout`` and no memory.
    """
    import treq
    from twisted.web.client import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = max_per_host
    pool.retryAutomatically = False  # a POST must not be re-sent behind our back

    def post(url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Deferred[Answer]:
        sent: dict[bytes | str, bytes | str] = dict(headers.items())
        d: Deferred[Any] = treq.post(
            url, data=body, headers=sent, pool=pool, reactor=reactor, allow_redirects=False
        )

        def got(response: Any) -> Deferred[Answer]:
            values = response.headers.getRawHeaders(b"retry-after") or [None]
            retry_after = values[0].decode("latin-1") if isinstance(values[0], bytes) else None
            done: Deferred[Any] = treq.collect(response, lambda chunk: None)
            return done.addCallback(lambda _: Answer(response.code, retry_after))

        d.addCallback(got)
        d.addTimeout(timeout, reactor)
        return d

    return post
