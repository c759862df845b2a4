"""The command API: agent registration, agent state, queues and agent commands.

Each route does the same four things in the same order: authenticate, validate the
path and body (:mod:`pbxis.web.validation`), call the :class:`~pbxis.engine.CallCenter`
once, render JSON. The rules (who may act on which queue, which numbers may be
dialled) are the call center's; a :class:`~pbxis.errors.CommandError` it raises is
mapped to its status here, and the app's error handler renders every
:class:`~pbxis.web.errors.ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from klein import Klein
from twisted.web.iweb import IRequest

from ..engine import CallCenter, Caller
from ..errors import (
    CommandError,
    Conflict,
    Forbidden,
    InvalidArgument,
    PbxRefused,
    PbxTimeout,
    PbxUnavailable,
    RateLimited,
    UnknownAgent,
    UnknownPbx,
    UnknownQueue,
    UnknownSupervisor,
)
from . import validation as v
from .auth import Authenticator, Principal
from .errors import ApiError
from .site import request_base_url

__all__ = ["add_api_routes", "api_error_for", "json_response", "request_base_url"]

T = TypeVar("T")


_STATUS_OF: tuple[tuple[type[CommandError], int], ...] = (
    (InvalidArgument, 400),
    (Forbidden, 403),
    (UnknownAgent, 404),
    (UnknownPbx, 404),
    (UnknownSupervisor, 404),
    (UnknownQueue, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (PbxRefused, 502),
    (PbxUnavailable, 503),
    (PbxTimeout, 504),
)


def api_error_for(error: CommandError) -> ApiError:
    """The HTTP answer to a failed command."""
    status = next((s for cls, s in _STATUS_OF if isinstance(error, cls)), 502)
    headers = {}
    if isinstance(error, (PbxUnavailable, RateLimited)):
        headers["Retry-After"] = str(error.retry_after)
    return ApiError(status, error.code, error.message, headers=headers)


async def _run(command: Awaitable[T]) -> T:
    try:
        return await command
    except CommandError as e:
        raise api_error_for(e) from None


def json_response(request: IRequest, document: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(document).encode("utf-8")


def _stream_urls(public_base_url: str, token: str) -> dict[str, str]:
    base = public_base_url.rstrip("/")
    path = f"/stream/{quote(token, safe='')}"
    scheme, netloc, prefix, _, _ = urlsplit(base)
    ws_scheme = "wss" if scheme == "https" else "ws"
    return {
        "sse": f"{base}{path}/sse",
        "websocket": urlunsplit((ws_scheme, netloc, f"{prefix}{path}/ws", "", "")),
        "longPoll": f"{base}{path}/poll",
    }


def _caller(principal: Principal) -> Caller:
    return Caller.CRM if principal.is_crm else Caller.AGENT


def add_api_routes(app: Klein, *, center: CallCenter, auth: Authenticator, public_base_url: str) -> None:
    """Install ``/agents/...`` and ``/queues`` on ``app``."""

    @app.route("/agents/<agent>", methods=["PUT"])
    async def put_agent(request: IRequest, agent: str) -> bytes:
        auth.require_crm(request)
        v.agent_name(agent)
        body = v.Fields(v.read_json_object(request), {"queues", "name"})
        queues = body.get("queues", v.queue_list, [])
        name = body.get("name", lambda value, key: v.text(value, key, max_length=64))
        registration = await _run(center.register_agent_async(agent, queues, name=name))
        return json_response(
            request,
            {
                "agent": registration.agent,
                "pbx": registration.pbx,
                "queues": list(registration.queues),
                "name": registration.name,
                "token": registration.token,
                "streams": _stream_urls(public_base_url or request_base_url(request), registration.token),
                "gracePeriod": center.grace_period,
            },
        )

    @app.route("/agents/<agent>", methods=["DELETE"])
    def delete_agent(request: IRequest, agent: str) -> bytes:
        auth.require_crm(request)
        v.agent_name(agent)
        _call(center.unregister_agent, agent)
        request.setResponseCode(204)
        return b""

    @app.route("/agents/<agent>", methods=["GET"])
    async def get_agent(request: IRequest, agent: str) -> bytes:
        auth.require_agent(request, agent)
        v.agent_name(agent)
        return json_response(request, await _run(center.agent_state_async(agent)))

    @app.route("/queues", methods=["GET"])
    async def get_queues(request: IRequest) -> bytes:
        auth.require_crm(request)
        return json_response(request, await _run(center.queues_async()))

    @app.route("/agents/<agent>/originate", methods=["POST"])
    async def originate(request: IRequest, agent: str) -> bytes:
        principal = auth.require_agent(request, agent)
        v.agent_name(agent)
        body = v.Fields(v.read_json_object(request), {"number", "callerId", "variables"})
        number = body.get("number", v.phone_number)
        if number is None:
            raise ApiError(400, "invalid_field", 'number: required, e.g. {"number": "0911234567"}')
        caller_id = body.get("callerId", lambda value, key: v.text(value, key, max_length=128))
        variables = body.get("variables", v.variables, {})
        action_id = await _run(
            center.originate(
                agent, number, caller_id=caller_id, variables=variables, caller=_caller(principal)
            )
        )
        return json_response(request, {"actionId": action_id}, 202)

    def queue_route(action: str) -> str:
        return f"/agents/<agent>/queues/<queue>/{action}"

    @app.route(queue_route("login"), methods=["POST"])
    async def queue_login(request: IRequest, agent: str, queue: str) -> bytes:
        caller = _check_names(request, auth, agent, queue)
        body = v.Fields(v.read_json_object(request), {"penalty", "paused", "memberName"})
        penalty = body.get("penalty", lambda x, k: v.integer(x, k, minimum=0, maximum=v.MAX_PENALTY), 0)
        paused = body.get("paused", v.boolean, False)
        member_name = body.get("memberName", lambda value, key: v.text(value, key, max_length=64))
        await _run(
            center.queue_action(
                agent, queue, "login", caller=caller, penalty=penalty, paused=paused, member_name=member_name
            )
        )
        return json_response(request, {"agent": agent, "queue": queue, "loggedIn": True, "paused": paused})

    @app.route(queue_route("logoff"), methods=["POST"])
    async def queue_logoff(request: IRequest, agent: str, queue: str) -> bytes:
        caller = _check_names(request, auth, agent, queue)
        v.Fields(v.read_json_object(request), set())
        await _run(center.queue_action(agent, queue, "logoff", caller=caller))
        return json_response(request, {"agent": agent, "queue": queue, "loggedIn": False})

    @app.route(queue_route("pause"), methods=["POST"])
    async def queue_pause(request: IRequest, agent: str, queue: str) -> bytes:
        caller = _check_names(request, auth, agent, queue)
        body = v.Fields(v.read_json_object(request), {"reason"})
        reason = body.get("reason", lambda value, key: v.text(value, key, max_length=128))
        await _run(center.queue_action(agent, queue, "pause", caller=caller, reason=reason))
        return json_response(request, {"agent": agent, "queue": queue, "paused": True})

    @app.route(queue_route("unpause"), methods=["POST"])
    async def queue_unpause(request: IRequest, agent: str, queue: str) -> bytes:
        caller = _check_names(request, auth, agent, queue)
        v.Fields(v.read_json_object(request), set())
        await _run(center.queue_action(agent, queue, "unpause", caller=caller))
        return json_response(request, {"agent": agent, "queue": queue, "paused": False})


def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` with a :class:`CommandError` rendered as its status."""
    try:
        return function(*args, **kwargs)
    except CommandError as e:
        raise api_error_for(e) from None


def _check_names(request: IRequest, auth: Authenticator, agent: str, queue: str) -> Caller:
    principal = auth.require_agent(request, agent)
    v.agent_name(agent)
    v.queue_name(queue)
    return _caller(principal)
