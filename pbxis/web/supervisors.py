"""Supervisor registration (``/supervisors/{name}``) and the wallboard page (``/wallboard``).

A supervisor is registered in the hub exactly like an agent, under the key
``supervisor:<name>`` (:func:`pbxis.supervisors.supervisor_key`), so its token, stream
URLs, replay, grace period and ``reset`` are the agents' own: the stream routes serve
both without knowing the difference. Its token authorizes reading its stream and
``GET /supervisors/{name}``; no agent command (it is nobody's agent token).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from ..config import SupervisorsConfig
from ..supervisors import supervisor_key
from . import validation as v
from .api import _stream_urls as stream_urls
from .api import json_response, request_base_url
from .auth import Authenticator
from .client import STATIC_DIR
from .client import _html_headers as html_headers
from .client import _script_json as script_json
from .cors import apply_cors
from .errors import ApiError

__all__ = ["add_supervisor_routes"]

log = Logger(namespace="pbxis.web.supervisors")

_WALLBOARD_PAGE = "wallboard.html"
_CONFIG_MARK = "{{config}}"


class _Registration(Protocol):
    agent: str
    queues: Sequence[str]
    name: str | None
    token: str


class _Hub(Protocol):
    def register(self, agent: str, queues: Sequence[str], name: str | None) -> _Registration: ...
    def unregister(self, agent: str) -> bool: ...
    def get(self, agent: str) -> _Registration | None: ...


class _Supervisors(Protocol):
    def supervisor_registered(self, key: str, queues: Sequence[str]) -> Deferred[None]: ...
    def supervisor_unregistered(self, key: str) -> None: ...
    def state(self, key: str) -> dict[str, Any] | None: ...


def add_supervisor_routes(
    app: Klein,
    *,
    hub: _Hub,
    supervisors: _Supervisors,
    auth: Authenticator,
    settings: SupervisorsConfig,
    public_base_url: str,
    grace_period: float,
    allowed_origins: Sequence[str],
) -> None:
    """Install ``/supervisors/<name>`` (PUT, GET, DELETE) and ``GET /wallboard``."""

    def reply(request: IRequest, document: Any, status: int = 200) -> bytes:
        apply_cors(request, allowed_origins)
        return json_response(request, document, status)

    def load_failed(failure: Failure, name: str) -> None:
        log.failure("loading the queues of supervisor {name} failed", failure, name=name)

    @app.route("/supervisors/<name>", methods=["PUT"])
    def put_supervisor(request: IRequest, name: str) -> bytes:
        auth.require_crm(request)
        v.agent_name(name, "supervisor")
        body = v.Fields(v.read_json_object(request), {"queues", "name"})
        queues = body.get("queues", v.queue_list, [])
        if not queues:
            raise ApiError(400, "invalid_field", 'queues: at least one queue, e.g. {"queues": ["sales"]}')
        display = body.get("name", lambda value, key: v.text(value, key, max_length=64))
        key = supervisor_key(name)
        registration = hub.register(key, queues, display)
        supervisors.supervisor_registered(key, list(registration.queues)).addErrback(load_failed, name)
        log.info("supervisor {name} registered for queues {queues}", name=name, queues=list(queues))
        base = public_base_url or request_base_url(request)
        return reply(
            request,
            {
                "supervisor": name,
                "pbx": "default",
                "queues": list(registration.queues),
                "name": registration.name,
                "token": registration.token,
                "streams": stream_urls(base, registration.token),
                "wallboard": f"{base.rstrip('/')}/wallboard?token={registration.token}",
                "gracePeriod": grace_period,
            },
        )

    @app.route("/supervisors/<name>", methods=["DELETE"])
    def delete_supervisor(request: IRequest, name: str) -> bytes:
        auth.require_crm(request)
        v.agent_name(name, "supervisor")
        key = supervisor_key(name)
        if not hub.unregister(key):
            raise _unknown(name)
        supervisors.supervisor_unregistered(key)
        log.info("supervisor {name} unregistered", name=name)
        apply_cors(request, allowed_origins)
        request.setResponseCode(204)
        return b""

    @app.route("/supervisors/<name>", methods=["GET"])
    def get_supervisor(request: IRequest, name: str) -> bytes:
        v.agent_name(name, "supervisor")
        key = supervisor_key(name)
        auth.require_agent(request, key)
        registration = hub.get(key)
        state = supervisors.state(key) if registration is not None else None
        if registration is None or state is None:
            raise _unknown(name)
        return reply(request, {"supervisor": name, "pbx": "default", "name": registration.name, **state})

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


def _unknown(name: str) -> ApiError:
    return ApiError(
        404,
        "unknown_supervisor",
        f"supervisor {name} is not registered; register it with PUT /supervisors/{name}",
    )
