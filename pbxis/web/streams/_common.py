"""What the three transports share: token look-up, parameter parsing, counters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from pbxis.hub import Hub, LogEntry, Registration, RegistrationEnded, Subscription, TooManyClients
from pbxis.hub.hubs import HubSet
from pbxis.web.errors import ApiError

__all__ = [
    "HEARTBEAT_TICK",
    "LONG_POLL",
    "SSE",
    "WEBSOCKET",
    "Beating",
    "Heartbeat",
    "Stream",
    "StreamConfig",
    "find_registration",
    "looked_up",
    "parse_since",
    "prepared",
    "query_arg",
]

# Transport names, as in the contract's ``streams`` object; the hub counts clients by them.
SSE = "sse"
LONG_POLL = "longPoll"
WEBSOCKET = "websocket"


class Stream(Protocol):
    """An open client stream that shutdown must be able to end."""

    def shutdown(self) -> None: ...


class Beating(Protocol):
    """A stream that proves from time to time that the connection still works."""

    def beat(self) -> None: ...


#: Seconds between two ticks of a heartbeat timer (when the interval allows).
HEARTBEAT_TICK = 0.25

log = Logger()


class Heartbeat:
    """Calls ``beat()`` on every registered stream every ``interval`` seconds, from one timer.

    SSE streams beat with a comment line, WebSockets with a ping. A timer per stream
    costs its objects per client; one timer beating every stream at once would write
    to ten thousand sockets in one reactor turn (Autobahn's own auto-ping does nearly
    that: pings of clients that connected together go out together, and their pongs
    come back together), and whatever event arrived then would wait for all of them.
    So streams are dealt in turn into ``interval / HEARTBEAT_TICK`` groups and each
    tick beats one group: every stream beats every ``interval`` seconds (the first time
    within ``interval`` of joining), and the writes are spread evenly over time.
    """

    __slots__ = ("_dealt", "_groups", "_interval", "_loop", "_next", "_streams")

    def __init__(self, clock: IReactorTime, interval: float) -> None:
        slices = max(1, round(interval / HEARTBEAT_TICK))
        self._groups: list[set[Beating]] = [set() for _ in range(slices)]
        self._streams: dict[Beating, int] = {}
        self._next = 0
        self._dealt = 0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._interval = interval / slices

    def add(self, stream: Beating) -> None:
        group = self._dealt % len(self._groups)
        self._dealt += 1
        self._groups[group].add(stream)
        self._streams[stream] = group
        if not self._loop.running:
            self._loop.start(self._interval, now=False)

    def remove(self, stream: Beating) -> None:
        group = self._streams.pop(stream, None)
        if group is not None:
            self._groups[group].discard(stream)
        if not self._streams and self._loop.running:
            self._loop.stop()  # no timer left behind when nobody listens

    def _tick(self) -> None:
        group = self._groups[self._next]
        self._next = (self._next + 1) % len(self._groups)
        for stream in list(group):
            try:
                stream.beat()
            except Exception:  # one broken stream must not stop everybody's heartbeat
                log.failure("Heartbeat of {stream!r} failed", stream=stream)


@dataclass(eq=False)
class StreamConfig:
    """The settings and the bookkeeping every transport reads and updates."""

    hub: Hub | HubSet
    allowed_origins: Sequence[str]
    clock: IReactorTime
    heartbeat: float
    max_buffer_bytes: int
    ws_ping_interval: float
    events_out: dict[str, int] = field(default_factory=dict)
    open_streams: set[Stream] = field(default_factory=set)
    sse_heartbeat: Heartbeat = field(init=False)
    ws_heartbeat: Heartbeat = field(init=False)

    def __post_init__(self) -> None:
        self.sse_heartbeat = Heartbeat(self.clock, self.heartbeat)
        self.ws_heartbeat = Heartbeat(self.clock, self.ws_ping_interval)

    def count_out(self, transport: str, n: int) -> None:
        self.events_out[transport] = self.events_out.get(transport, 0) + n

    def subscribe(
        self,
        registration: Registration,
        since: int | None,
        transport: str,
        deliver: Callable[[list[LogEntry]], None],
        end: Callable[[str], None],
    ) -> Subscription:
        """The hub's subscribe: a registration that ended meanwhile is a 404, one with
        ``max_clients`` clients already a 429 (issue #12 item 3)."""
        try:
            return self.hub.subscribe(
                registration,
                since,
                transport,
                deliver,
                end,
                max_backlog_bytes=self.max_buffer_bytes,
            )
        except RegistrationEnded:
            raise _not_found() from None
        except TooManyClients as e:
            raise too_many_clients(e) from None


def too_many_clients(e: TooManyClients) -> ApiError:
    return ApiError(
        429,
        "too_many_clients",
        f"This registration has {e.limit} connected clients already ([agents] max_clients): "
        "close one, or retry later.",
        headers={"Retry-After": "5"},
    )


def _not_found() -> ApiError:
    return ApiError(
        404,
        "unknown_stream",
        "No stream for this token: the registration ended or never existed. "
        "Register the agent again (PUT /agents/{agent}) for a new token.",
    )


def _store_unavailable() -> ApiError:
    return ApiError(
        503,
        "store_unavailable",
        "The shared store did not answer in time: retry in a few seconds.",
        headers={"Retry-After": "2"},
    )


def prepared(hub: Hub | HubSet, registration: Registration, since: int | None) -> Deferred[None]:
    """Fires when the hub can serve ``since`` at once (:meth:`Hub.prepare`: at once in
    memory; a web node first loads the log and has the writer append the snapshot).
    The shared store not answering is a 503 with ``Retry-After``."""

    def unavailable(failure: Failure) -> None:
        log.warn("Stream of {agent}: not ready ({e})", agent=registration.agent, e=failure.value)
        raise _store_unavailable()

    d: Deferred[None] = hub.prepare(registration, since)
    d.addErrback(unavailable)
    return d


def looked_up(hub: Hub | HubSet, token: str) -> Deferred[Registration]:
    """:func:`find_registration`, also for a token issued on another node a moment ago
    (:meth:`Hub.lookup`: a web node asks Redis when its copy does not know it yet).
    Redis not answering that look-up is a 503 with ``Retry-After`` (never a 500, and
    nothing of the token in the log)."""
    d: Deferred[Registration | None] = hub.lookup(token)

    def found(registration: Registration | None) -> Registration:
        if registration is None:
            raise _not_found()
        return registration

    def unavailable(failure: Failure) -> Registration:
        log.warn("Stream token look-up: the shared store did not answer ({e})", e=type(failure.value))
        raise _store_unavailable()

    return d.addCallbacks(found, unavailable)


def find_registration(hub: Hub | HubSet, token: str) -> Registration:
    registration = hub.by_token(token)
    if registration is None:
        raise _not_found()
    return registration


def query_arg(request: IRequest, name: str) -> str | None:
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    return str(values[0].decode("utf-8", "replace"))


def parse_since(raw: str | None, what: str = "since") -> int | None:
    """``None`` for absent; the last id a client saw; 400 for anything else."""
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "bad_since", f"{what} must be the id of the last event you saw (0 for none).")
    return int(raw)


#: An id no log ever reaches. The hub answers a resume from it, like one from any id above
#: its last (a restarted daemon's client), with ``reset`` and a fresh snapshot.
UNSERVABLE_ID = 2**63 - 1


def parse_last_event_id(raw: bytes | None) -> int | None:
    """The id an EventSource sends back on reconnect, or :data:`UNSERVABLE_ID`; never an error.

    A browser's EventSource treats any answer but 200 as fatal and never reconnects, so a
    400 here would leave the agent with a dead page and no message. A ``Last-Event-ID``
    the log cannot serve (mangled by a proxy, from an older deployment, not a number at
    all) therefore gets what an unknown number gets: ``reset``, then a fresh snapshot.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:  # bytes.isdigit is ASCII digits only
        return UNSERVABLE_ID
    return int(text)


def no_delay(request: IRequest) -> None:
    """Switch Nagle's algorithm off for a stream's connection.

    A stream writes small frames as events happen; with Nagle on, a frame written while
    the previous one is unacknowledged waits for the client's delayed ACK (up to 40 ms
    on Linux), which is most of an event's end-to-end latency.
    """
    transport = getattr(request, "transport", None)
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        try:
            set_no_delay(True)
        except OSError:  # the socket is already closed
            pass
