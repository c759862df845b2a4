"""The three stream transports (SSE, long-poll, WebSocket) as Klein routes.

All of them read the hub's per-agent log through a hub subscription, so ids, replay and
``reset`` behave the same on each (see :mod:`pbxis.hub.hub`). CORS is the Site's;
an unknown or ended token is a 404 in the contract's error shape (an ``ApiError``, which
the app's error handler renders), a bad ``since``/``timeout`` a 400. The WebSocket route
shares the HTTP port: Klein hands the upgrade to Autobahn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from pbxis.hub import Hub, Registration
from pbxis.hub.hubs import HubSet
from pbxis.web.cors import apply_cors
from pbxis.web.errors import ApiError

from ._common import (
    LONG_POLL,
    SSE,
    WEBSOCKET,
    StreamConfig,
    find_registration,
    looked_up,
    parse_last_event_id,
    parse_since,
    prepared,
    query_arg,
)
from .poll import LongPoll, parse_timeout
from .sse import SSEStream
from .ws import make_ws_resource

__all__ = ["StreamRoutes", "add_stream_routes"]


class StreamRoutes:
    """Handle on the installed stream routes: counters for metrics, and shutdown."""

    def __init__(self, config: StreamConfig) -> None:
        self._config = config

    def stats(self) -> dict[str, Any]:
        """Events sent and clients connected, by transport (``sse``, ``longPoll``, ``websocket``)."""
        clients = {SSE: 0, LONG_POLL: 0, WEBSOCKET: 0}
        clients.update(self._config.hub.stats()["clients"])
        events_out = {SSE: 0, LONG_POLL: 0, WEBSOCKET: 0}
        events_out.update(self._config.events_out)
        return {"events_out": events_out, "clients": clients}

    def close_all(self) -> None:
        """End every open stream (service stop): SSE completes, long-polls answer,
        WebSockets close with 1001. Clients resume later with their last id."""
        for stream in list(self._config.open_streams):
            stream.shutdown()


def add_stream_routes(
    app: Klein,
    hub: Hub | HubSet,
    *,
    allowed_origins: Sequence[str],
    clock: IReactorTime | None = None,
    heartbeat: float = 15.0,
    max_buffer_bytes: int = 1_000_000,
    ws_ping_interval: float = 20.0,
) -> StreamRoutes:
    """Install ``/stream/{token}/sse``, ``/poll`` and ``/ws`` on ``app``."""
    if clock is None:
        from twisted.internet import reactor as clock
    config = StreamConfig(
        hub=hub,
        allowed_origins=allowed_origins,
        clock=clock,  # type: ignore[arg-type]
        heartbeat=heartbeat,
        max_buffer_bytes=max_buffer_bytes,
        ws_ping_interval=ws_ping_interval,
    )
    ws_resource = make_ws_resource(config)

    @app.route("/stream/<token>/sse", methods=["GET"], endpoint="stream_sse")
    def sse(request: IRequest, token: str) -> Deferred[Any]:
        def found(registration: Registration) -> Deferred[Any]:
            last_event_id = request.getHeader(b"last-event-id")
            if last_event_id is not None:
                since = parse_last_event_id(last_event_id)
            else:
                since = parse_since(query_arg(request, "since"))
            d = prepared(hub, registration, since)
            d.addCallback(lambda _: SSEStream(config, request, registration, since).start())
            return d

        return looked_up(hub, token).addCallback(found)

    @app.route("/stream/<token>/poll", methods=["GET"], endpoint="stream_poll")
    def poll(request: IRequest, token: str) -> Deferred[Any]:
        def found(registration: Registration) -> Deferred[Any]:
            since = parse_since(query_arg(request, "since"))
            timeout = parse_timeout(query_arg(request, "timeout"))
            d = prepared(hub, registration, since)
            d.addCallback(lambda _: LongPoll(config, request, registration, since, timeout).start())
            return d

        return looked_up(hub, token).addCallback(found)

    @app.route("/stream/<token>/ws", methods=["GET"], endpoint="stream_ws")
    def ws(request: IRequest, token: str) -> Any:
        upgrade = (request.getHeader(b"upgrade") or b"").lower()
        if upgrade != b"websocket":
            find_registration(hub, token)
            raise ApiError(
                426,
                "upgrade_required",
                "This is a WebSocket endpoint: connect with a WebSocket client.",
                headers={"Upgrade": "websocket"},
            )
        # The HTTP channel's idle timeout must not fire on a socket it gave away.
        request.channel.setTimeout(None)  # type: ignore[attr-defined]
        return ws_resource

    @app.route("/stream/<token>/<kind>", methods=["OPTIONS"], endpoint="stream_preflight")
    def preflight(request: IRequest, token: str, kind: str) -> bytes:
        apply_cors(request, allowed_origins, preflight=True)
        request.setResponseCode(204)
        return b""

    return StreamRoutes(config)
