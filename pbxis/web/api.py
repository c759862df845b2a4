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
from .scope import Scope, pbx_route
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


def add_api_routes(
    app: Klein, *, center: CallCenter, auth: Authenticator, public_base_url: str, scope: Scope | None = None
) -> None:
    """Install ``/agents/...`` and ``/queues`` on ``app`` (and under ``/pbx/{pbx}``)."""
    scope = scope or Scope(center, auth)

    @pbx_route(app, "/agents/<agent>", ["PUT"])
    async def put_agent(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        where = scope.crm(request, pbx)
        v.agent_name(agent)
        body = v.Fields(v.read_json_object(request), {"queues", "name"})
        queues = body.get("queues", v.queue_list, [])
        name = body.get("name", lambda value, key: v.text(value, key, max_length=64))
        registration = await _run(center.register_agent_async(agent, queues, name=name, pbx=where))
        return json_response(
            request,
            {
                "agent": registration.agent,
                "pbx": registration.pbx,
                "queues": list(registration.queues),
                "name": registration.name,
                "token": registration.token,
                "streams": _stream_urls(public_base_url or request_base_url(request), registration.token),
                "gracePeriod": center.grace_period_of(where),
            },
        )

    @pbx_route(app, "/agents/<agent>", ["DELETE"])
    def delete_agent(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        where = scope.crm(request, pbx)
        v.agent_name(agent)
        _call(center.unregister_agent, agent, pbx=where)
        request.setResponseCode(204)
        return b""

    @pbx_route(app, "/agents/<agent>", ["GET"])
    async def get_agent(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        _, where = scope.agent(request, agent, pbx)
        v.agent_name(agent)
        return json_response(request, await _run(center.agent_state_async(agent, pbx=where)))

    @pbx_route(app, "/queues", ["GET"])
    async def get_queues(request: IRequest, pbx: str | None = None) -> bytes:
        where = scope.crm(request, pbx)
        return json_response(request, await _run(center.queues_async(pbx=where)))

    @pbx_route(app, "/agents/<agent>/originate", ["POST"])
    async def originate(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        principal, where = scope.agent(request, agent, pbx)
        v.agent_name(agent)
        body = v.Fields(v.read_json_object(request), {"number", "callerId", "variables"})
        number = body.get("number", v.phone_number)
        if number is None:
            raise ApiError(400, "invalid_field", 'number: required, e.g. {"number": "0911234567"}')
        caller_id = body.get("callerId", lambda value, key: v.text(value, key, max_length=128))
        variables = body.get("variables", v.variables, {})
        action_id = await _run(
            center.originate(
                agent, number, caller_id=caller_id, variables=variables, caller=_caller(principal), pbx=where
            )
        )
        return json_response(request, {"actionId": action_id}, 202)

    def queue_route(action: str) -> str:
        return f"/agents/<agent>/queues/<queue>/{action}"

    def checked(request: IRequest, agent: str, queue: str, pbx: str | None) -> tuple[Caller, str]:
        principal, where = scope.agent(request, agent, pbx)
        v.agent_name(agent)
        v.queue_name(queue)
        return _caller(principal), where

    @pbx_route(app, queue_route("login"), ["POST"])
    async def queue_login(request: IRequest, agent: str, queue: str, pbx: str | None = None) -> bytes:
        caller, where = checked(request, agent, queue, pbx)
        body = v.Fields(v.read_json_object(request), {"penalty", "paused", "memberName"})
        penalty = body.get("penalty", lambda x, k: v.integer(x, k, minimum=0, maximum=v.MAX_PENALTY), 0)
        paused = body.get("paused", v.boolean, False)
        member_name = body.get("memberName", lambda value, key: v.text(value, key, max_length=64))
        await _run(
            center.queue_action(
                agent,
                queue,
                "login",
                pbx=where,
                caller=caller,
                penalty=penalty,
                paused=paused,
                member_name=member_name,
            )
        )
        return json_response(request, {"agent": agent, "queue": queue, "loggedIn": True, "paused": paused})

    @pbx_route(app, queue_route("logoff"), ["POST"])
    async def queue_logoff(request: IRequest, agent: str, queue: str, pbx: str | None = None) -> bytes:
        caller, where = checked(request, agent, queue, pbx)
        v.Fields(v.read_json_object(request), set())
        await _run(center.queue_action(agent, queue, "logoff", pbx=where, caller=caller))
        return json_response(request, {"agent": agent, "queue": queue, "loggedIn": False})

    @pbx_route(app, queue_route("pause"), ["POST"])
    async def queue_pause(request: IRequest, agent: str, queue: str, pbx: str | None = None) -> bytes:
        caller, where = checked(request, agent, queue, pbx)
        body = v.Fields(v.read_json_object(request), {"reason"})
        reason = body.get("reason", lambda value, key: v.text(value, key, max_length=128))
        await _run(center.queue_action(agent, queue, "pause", pbx=where, caller=caller, reason=reason))
        return json_response(request, {"agent": agent, "queue": queue, "paused": True})

    @pbx_route(app, queue_route("unpause"), ["POST"])
    async def queue_unpause(request: IRequest, agent: str, queue: str, pbx: str | None = None) -> bytes:
        caller, where = checked(request, agent, queue, pbx)
        v.Fields(v.read_json_object(request), set())
        await _run(center.queue_action(agent, queue, "unpause", pbx=where, caller=caller))
        return json_response(request, {"agent": agent, "queue": queue, "paused": False})


def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` with a :class:`CommandError` rendered as its status."""
    try:
        return function(*args, **kwargs)
    except CommandError as e:
        raise api_error_for(e) from None
