"""Supervisor registration (``/supervisors/{name}``) and the wallboard page (``/wallboard``).

Thin, as every route: validate, call the :class:`~pbxis.engine.CallCenter`, render. A
supervisor's token authorizes reading its stream and ``GET /supervisors/{name}``; no
agent command (it is nobody's agent token: see :mod:`pbxis.engine.supervision`).
"""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest

from ..config import SupervisorsConfig
from ..engine import CallCenter
from ..supervisors import supervisor_key
from . import validation as v
from .api import _call, _run, _stream_urls, json_response
from .auth import Authenticator
from .client import STATIC_DIR
from .client import _html_headers as html_headers
from .client import _script_json as script_json
from .scope import Scope, pbx_route
from .site import request_base_url

__all__ = ["add_supervisor_routes"]

_WALLBOARD_PAGE = "wallboard.html"
_CONFIG_MARK = "{{config}}"


def add_supervisor_routes(
    app: Klein, *, center: CallCenter, auth: Authenticator, public_base_url: str, scope: Scope | None = None
) -> None:
    """Install ``/supervisors/<name>`` (PUT, GET, DELETE; also under ``/pbx/{pbx}``) and
    ``GET /wallboard``."""
    settings = center.config.supervisors
    scope = scope or Scope(center, auth)

    @pbx_route(app, "/supervisors/<name>", ["PUT"])
    async def put_supervisor(request: IRequest, name: str, pbx: str | None = None) -> bytes:
        where = scope.crm(request, pbx)
        v.agent_name(name, "supervisor")
        body = v.Fields(v.read_json_object(request), {"queues", "name"})
        queues = body.get("queues", v.queue_list, [])
        display = body.get("name", lambda value, key: v.text(value, key, max_length=64))
        registration = await _run(center.register_supervisor_async(name, queues, name=display, pbx=where))
        base = public_base_url or request_base_url(request)
        return json_response(
            request,
            {
                "supervisor": registration.supervisor,
                "pbx": registration.pbx,
                "queues": list(registration.queues),
                "name": registration.name,
                "token": registration.token,
                "streams": _stream_urls(base, registration.token),
                "wallboard": f"{base.rstrip('/')}/wallboard?token={registration.token}",
                "gracePeriod": center.grace_period_of(where),
            },
        )

    @pbx_route(app, "/supervisors/<name>", ["DELETE"])
    def delete_supervisor(request: IRequest, name: str, pbx: str | None = None) -> bytes:
        where = scope.crm(request, pbx)
        v.agent_name(name, "supervisor")
        _call(center.unregister_supervisor, name, pbx=where)
        request.setResponseCode(204)
        return b""

    @pbx_route(app, "/supervisors/<name>", ["GET"])
    async def get_supervisor(request: IRequest, name: str, pbx: str | None = None) -> bytes:
        v.agent_name(name, "supervisor")
        _, where = scope.agent(request, supervisor_key(name), pbx)
        return json_response(request, await _run(center.supervisor_state_async(name, pbx=where)))

    @app.route("/wallboard", methods=["GET", "HEAD"])
    def wallboard(request: IRequest) -> bytes:
        """The page; its script takes the token from its own URL and opens the stream."""
        html_headers(request)
        thresholds = {
            "defaults": _thresholds(settings, None),
            "queues": {queue: _thresholds(settings, queue) for queue, _ in settings.queues},
        }
        template = (STATIC_DIR / _WALLBOARD_PAGE).read_text("utf-8")
        return template.replace(_CONFIG_MARK, script_json({"thresholds": thresholds}), 1).encode("utf-8")


def _thresholds(settings: SupervisorsConfig, queue: str | None) -> dict[str, float]:
    t = settings.defaults if queue is None else settings.thresholds(queue)
    return {
        "waitAmber": t.wait_amber,
        "waitRed": t.wait_red,
        "slAmber": t.service_level_amber,
        "slRed": t.service_level_red,
    }
