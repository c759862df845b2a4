"""The one Klein app: every route, one error handler, CORS preflight, health and metrics.

``build_app`` is the only place the web layer meets the others; routes receive the
layers they use and nothing else. Whatever a route raises ends in
:func:`_render_error`: an :class:`~pbxis.web.errors.ApiError` is rendered as the
contract's JSON, an unknown route or method becomes a JSON 404 or 405, and anything
else is logged (without tokens) and answered 500 ``internal_error`` with no detail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from klein import Klein
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from ..call_control import CallControl
from ..commands import Commands
from ..metrics import build_registry
from .api import add_api_routes, json_response
from .auth import Authenticator
from .call_control import add_call_control_routes
from .cors import apply_cors
from .errors import ApiError
from .openapi import openapi_document

__all__ = ["WebSettings", "build_app"]

log = Logger(namespace="pbxis.web")

RETRY_AFTER_SECONDS = 5


@dataclass
class WebSettings:
    """The ``[http]`` and agent settings the web layer needs."""

    public_base_url: str
    api_keys: Sequence[str]
    allowed_origins: Sequence[str]
    metrics_public: bool = True
    interface_template: str = "SIP/{agent}"
    originate_context: str = "agents"
    originate_timeout: float = 30.0
    grace_period: float = 60.0
    caller_id_template: str | None = None
    transfer_context: str = ""  # empty: originate_context
    spy_context: str = "pbxis-spy"


def build_app(
    *,
    settings: WebSettings,
    hub: Any,
    tracker: Any,
    ami: Any,
    sync: Any,
    streams_installer: Callable[[Klein], Any],
    client_installer: Callable[[Klein], Any] | None = None,
    clock: IReactorTime | None = None,
    now_ms: Callable[[], int] | None = None,
    extra_collectors: Sequence[Collector] = (),
) -> Klein:
    """Build the app; ``streams_installer(app)`` adds ``/stream/...`` and returns its stats source.

    ``clock`` (the reactor by default) dates ``/health``'s last-event age; it must tell
    wall-clock seconds like the AMI factory's ``last_event_time``. ``now_ms`` stamps
    the events of a registration (epoch milliseconds).
    """
    if clock is None:
        from twisted.internet import reactor as clock  # type: ignore[assignment]
    wall_clock: IReactorTime = clock
    now = now_ms if now_ms is not None else lambda: int(wall_clock.seconds() * 1000)

    app = Klein()
    auth = Authenticator(settings.api_keys, hub)
    commands = Commands(
        ami,
        tracker,
        interface_template=settings.interface_template,
        originate_context=settings.originate_context,
        originate_timeout=settings.originate_timeout,
        caller_id_template=settings.caller_id_template,
    )
    origins = settings.allowed_origins
    control = CallControl(
        commands,
        tracker,
        hub.publish,
        now,
        transfer_context=settings.transfer_context or settings.originate_context,
        spy_context=settings.spy_context,
    )

    @app.handle_errors(Exception)
    def render_error(request: IRequest, failure: Failure) -> bytes | None:
        return _render_error(request, failure, origins)

    add_api_routes(
        app,
        hub=hub,
        tracker=tracker,
        sync=sync,
        commands=commands,
        auth=auth,
        public_base_url=settings.public_base_url,
        grace_period=settings.grace_period,
        allowed_origins=origins,
        now_ms=now,
    )
    add_call_control_routes(app, hub=hub, control=control, auth=auth, allowed_origins=origins)
    streams = streams_installer(app)
    if client_installer is not None:
        client_installer(app)
    registry = build_registry(ami=ami, hub=hub, streams=streams, sync=sync)
    for collector in extra_collectors:  # e.g. webhook delivery
        registry.register(collector)
    document = json.dumps(openapi_document(settings.public_base_url or "/")).encode("utf-8")

    @app.route("/health", methods=["GET"])
    def health(request: IRequest) -> bytes:
        apply_cors(request, origins)
        body = health_document(ami, hub, sync, wall_clock.seconds())
        if not body["ami"]["connected"]:
            request.setHeader(b"retry-after", str(RETRY_AFTER_SECONDS).encode())
            return json_response(request, body, 503)
        return json_response(request, body)

    @app.route("/metrics", methods=["GET"])
    def metrics(request: IRequest) -> bytes:
        if not settings.metrics_public:
            auth.require_crm(request)
        apply_cors(request, origins)
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(registry)

    @app.route("/openapi.json", methods=["GET"])
    def openapi(request: IRequest) -> bytes:
        apply_cors(request, origins)
        request.setHeader(b"content-type", b"application/json")
        return document

    return app


def health_document(ami: Any, hub: Any, sync: Any, now: float) -> dict[str, Any]:
    """``/health``'s body; ``now`` in the same wall-clock seconds as ``last_event_time``."""
    stats = ami.stats
    connected = bool(ami.connected)
    last_event = stats.last_event_time
    hub_stats = hub.stats()
    return {
        "status": "ok" if connected else "unavailable",
        "ami": {
            "connected": connected,
            "state": str(stats.state),
            "lastEventAge": None if last_event is None else round(max(0.0, now - last_event), 3),
            "reconnects": stats.reconnects,
        },
        "synced": bool(sync.ready),
        "agents": hub_stats.get("agents", 0),
        "clients": dict(hub_stats.get("clients", {})),
    }


_STREAM_TOKEN = re.compile(rb"^(/stream/)[^/?]+")


def _loggable_path(request: IRequest) -> str:
    """The request path without query and with any stream token blanked out."""
    path = request.path if isinstance(request.path, bytes) else b""
    return _STREAM_TOKEN.sub(rb"\1<token>", path).decode("utf-8", "replace")


def _render_error(request: IRequest, failure: Failure, origins: Sequence[str]) -> bytes | None:
    error = failure.value
    if isinstance(error, MethodNotAllowed) and request.method == b"OPTIONS":
        # A CORS preflight: werkzeug found the route but no OPTIONS rule, which is
        # exactly "this path exists". Answering here keeps unknown paths a 404 and
        # saves every route from declaring OPTIONS.
        apply_cors(request, origins, preflight=True)
        request.setHeader(b"allow", ", ".join(sorted(error.valid_methods or ())).encode())
        request.setResponseCode(204)
        return b""
    api_error = _as_api_error(error)
    if api_error is None:
        log.failure(
            "unhandled error answering {method} {path}",
            failure,
            method=request.method.decode("latin-1"),
            path=_loggable_path(request),
        )
        api_error = ApiError(500, "internal_error", "pbxis failed to answer; the error has been logged")
    if request.startedWriting:
        # A stream already sent its headers; an error document would corrupt it.
        return None
    apply_cors(request, origins)
    for name, value in api_error.headers.items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
    request.setResponseCode(api_error.status)
    request.setHeader(b"content-type", b"application/json")
    return api_error.body()


def _as_api_error(error: BaseException) -> ApiError | None:
    if isinstance(error, ApiError):
        return error
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", "no such route; GET /openapi.json lists them")
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(error.valid_methods or ()))
        return ApiError(
            405, "method_not_allowed", f"this route answers {allowed} only", headers={"Allow": allowed}
        )
    if isinstance(error, RequestRedirect):
        return ApiError(error.code, "redirect", f"use {error.new_url}", headers={"Location": error.new_url})
    if isinstance(error, HTTPException) and error.code is not None and error.code < 500:
        return ApiError(error.code, "bad_request", error.description or "bad request")
    return None
