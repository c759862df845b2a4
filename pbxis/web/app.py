"""The one Klein app: every route, one error handler, CORS preflight, health and metrics.

``build_app`` is the only place the web layer meets the others: it takes one
:class:`~pbxis.engine.CallCenter` and the ``[http]`` settings; routes parse, call the
call center and render. CORS headers are the Site's (:mod:`pbxis.web.site`). Whatever a route raises ends in
:func:`_render_error`: an :class:`~pbxis.web.errors.ApiError` is rendered as the
contract's JSON, an unknown route or method becomes a JSON 404 or 405, and anything
else is logged (without tokens) and answered 500 ``internal_error`` with no detail.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, cast

from klein import Klein
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from ..config import HTTPConfig
from ..engine import CallCenter
from ..hub import Hub
from ..hub.hubs import HubSet
from ..metrics import AmiTotals, PbxCollector, build_registry, pbx_registry
from ..webhooks.metrics import WebhookCollector
from .api import add_api_routes, json_response
from .auth import Authenticator, Principal
from .call_control import add_call_control_routes
from .client import add_client_routes
from .cors import apply_cors
from .errors import ApiError
from .openapi import openapi_document
from .redact import redact_url
from .scope import Scope
from .streams import add_stream_routes
from .supervisors import add_supervisor_routes

__all__ = ["StreamOptions", "build_app"]

StreamOptions = Mapping[str, Any]
"""Keyword arguments for :func:`~pbxis.web.streams.add_stream_routes` (heartbeat...)."""

log = Logger(namespace="pbxis.web")

RETRY_AFTER_SECONDS = 5

NOT_FOUND = "no such route; GET /openapi.json lists them"


def build_app(
    center: CallCenter,
    http: HTTPConfig,
    *,
    clock: IReactorTime | None = None,
    streams: StreamOptions | None = None,
    client_routes: bool = True,
    api: bool = True,
    collectors: Sequence[Collector] = (),
) -> Klein:
    """The app over ``center``, configured by the ``[http]`` section as is.

    ``clock`` (the reactor by default) drives the streams' heartbeats and timeouts;
    ``streams`` overrides their tuning (tests). ``api=False`` is a collector node's
    listener: ``/health`` and ``/metrics`` only, every other path a 404 (no stream, no
    registration, no command: those are the web nodes'). ``collectors``: more collectors
    for ``/metrics`` (the Redis link's, :mod:`pbxis.store.redis_metrics`).
    """
    if clock is None:
        from twisted.internet import reactor

        clock = cast(IReactorTime, reactor)
    app = Klein()
    tenants = center.config.tenants
    auth = Authenticator(http.api_keys, center, tenants=[(t.api_keys, t.pbxes) for t in tenants])
    scope = Scope(center, auth)

    not_found = NOT_FOUND if api else "no such route: a collector node serves /health and /metrics only"

    @app.handle_errors(Exception)
    def render_error(request: IRequest, failure: Failure) -> bytes | None:
        return _render_error(request, failure, http.allowed_origins, not_found)

    units = list(center.units.values())
    # one PBX: its hub itself; several: one token space over their hubs (pbxis.hub.hubs)
    # (read at each use: a collector renews a PBX's unit when it hands that PBX over)
    hubs: Hub | HubSet = (
        center.hub if len(units) == 1 else HubSet(lambda: [unit.hub for unit in center.units.values()])
    )
    stream_routes = None
    if api:
        public = http.public_url.rstrip("/")
        add_api_routes(app, center=center, auth=auth, public_base_url=public, scope=scope)
        add_call_control_routes(app, center=center, auth=auth, scope=scope)
        add_supervisor_routes(app, center=center, auth=auth, public_base_url=public, scope=scope)
        stream_routes = add_stream_routes(
            app, hubs, allowed_origins=http.allowed_origins, clock=clock, **dict(streams or {})
        )
        if client_routes:
            add_client_routes(app)
        _add_openapi_route(app, http)
    if len(units) == 1:
        registry = build_registry(ami=center.ami, hub=center.hub, streams=stream_routes, sync=center.sync)
    else:
        totals = AmiTotals(lambda: [unit.ami for unit in center.units.values()])
        registry = build_registry(ami=totals, hub=hubs, streams=stream_routes, sync=None)
    # read at scrape time: a collector renews a PBX's unit when it hands that PBX over
    registry.register(PbxCollector(lambda: list(center.units.values())))

    def limited_registry(pbxes: list[str]) -> CollectorRegistry:
        return pbx_registry(lambda: [center.units[p] for p in pbxes])

    if center.webhooks is not None:
        registry.register(WebhookCollector(center.webhooks))
    for extra in collectors:
        registry.register(extra)
    # Who answers: a CRM that sees another id knows pbxis restarted (and, with the
    # in-memory store, that every registration and token is gone).
    instance = {"id": secrets.token_hex(8), "startedAt": center.now_ms()}

    @app.route("/health", methods=["GET"])
    def health(request: IRequest) -> bytes:
        principal = auth.optional(request)
        visible = scope.visible(principal)
        if visible or not center.pbxes:
            body = {**center.health(visible), "instance": instance}
        else:
            # [[tenants]] and no key: whether this node is up, nothing of any PBX
            overall = center.health()
            body = {
                "status": overall["status"],
                "ami": {"connected": overall["ami"]["connected"]},
                "synced": overall["synced"],
                "instance": instance,
            }
        if body["status"] != "ok":  # a web node: its shared store answers
            request.setHeader(b"retry-after", str(RETRY_AFTER_SECONDS).encode())
            return json_response(request, body, 503)
        return json_response(request, body)

    @app.route("/health/pbx/<pbx>", methods=["GET"])
    def pbx_health(request: IRequest, pbx: str) -> bytes:
        principal = auth.optional(request)
        if principal is None:
            # public as /health, unless PBXes are hidden from some keys: then a key's own
            principal = auth.authenticate(request) if tenants else Principal()
        body = center.pbx_health(scope.pbx(principal, pbx))
        if not body["connected"]:
            request.setHeader(b"retry-after", str(RETRY_AFTER_SECONDS).encode())
            return json_response(request, body, 503)
        return json_response(request, body)

    @app.route("/metrics", methods=["GET"])
    def metrics(request: IRequest) -> bytes:
        principal = auth.require_crm(request) if not http.metrics_public else auth.optional(request)
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        if principal is not None and principal.pbxes is not None:
            return bytes(generate_latest(limited_registry(scope.visible(principal))))
        return bytes(generate_latest(registry))

    return app


def _add_openapi_route(app: Klein, http: HTTPConfig) -> None:
    document = json.dumps(openapi_document(http.public_url.rstrip("/") or "/")).encode("utf-8")

    @app.route("/openapi.json", methods=["GET"])
    def openapi(request: IRequest) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return document


def _loggable_path(request: IRequest) -> str:
    """The request path without query and with any stream token blanked out."""
    path = request.path if isinstance(request.path, bytes) else b""
    return redact_url(path).decode("utf-8", "replace")


def _render_error(
    request: IRequest, failure: Failure, origins: Sequence[str], not_found: str = ""
) -> bytes | None:
    error = cast(BaseException, failure.value)
    if isinstance(error, MethodNotAllowed) and request.method == b"OPTIONS":
        # A CORS preflight: werkzeug found the route but no OPTIONS rule, which is
        # exactly "this path exists". Answering here keeps unknown paths a 404 and
        # saves every route from declaring OPTIONS.
        apply_cors(request, origins, preflight=True)
        request.setHeader(b"allow", ", ".join(sorted(error.valid_methods or ())).encode())
        request.setResponseCode(204)
        return b""
    api_error = _as_api_error(error, not_found or NOT_FOUND)
    if api_error is None:
        log.failure(
            "unhandled error answering {method} {path}",
            failure,
            method=request.method.decode("latin-1"),
            path=_loggable_path(request),
        )
        api_error = ApiError(500, "internal_error", "pbxis failed to answer; the error has been logged")
    if request.startedWriting:  # type: ignore[attr-defined]
        # A stream already sent its headers; an error document would corrupt it.
        return None
    for name, value in api_error.headers.items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
    request.setResponseCode(api_error.status)
    request.setHeader(b"content-type", b"application/json")
    return api_error.body()


def _as_api_error(error: BaseException, not_found: str = "") -> ApiError | None:
    if isinstance(error, ApiError):
        return error
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", not_found or NOT_FOUND)
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
