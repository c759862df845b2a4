"""The command API: agent registration, agent state, queues and agent commands.

Each route does the same four things in the same order: authenticate, validate the
path and body (:mod:`pbxis.web.validation`), call one layer, render JSON. Failures
are :class:`~pbxis.web.errors.ApiError`; the app's error handler renders them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from ..commands import (
    CommandError,
    Commands,
    Conflict,
    PbxRefused,
    PbxTimeout,
    PbxUnavailable,
    UnknownQueue,
    UnsafeInput,
)
from ..events import AgentEvent
from . import validation as v
from .auth import Authenticator
from .cors import apply_cors
from .errors import ApiError
from .site import request_base_url

__all__ = ["add_api_routes", "api_error_for", "json_response"]

log = Logger(namespace="pbxis.web.api")

T = TypeVar("T")


class Registration(Protocol):
    agent: str
    queues: Sequence[str]
    name: str | None
    token: str


class Hub(Protocol):
    def register(self, agent: str, queues: Sequence[str], name: str | None) -> Registration: ...
    def unregister(self, agent: str) -> bool: ...
    def get(self, agent: str) -> Registration | None: ...
    def publish(self, events: Sequence[AgentEvent]) -> None: ...


class Tracker(Protocol):
    def register(self, agent: str, queues: Sequence[str], now_ms: int) -> list[AgentEvent]: ...
    def unregister(self, agent: str) -> None: ...
    def agent_state(self, agent: str) -> dict[str, Any] | None: ...
    def queues_state(self) -> dict[str, Any]: ...


class Sync(Protocol):
    def agent_registered(self, agent: str) -> Deferred[Any]: ...


_STATUS_OF: tuple[tuple[type[CommandError], int], ...] = (
    (UnsafeInput, 400),
    (UnknownQueue, 404),
    (Conflict, 409),
    (PbxRefused, 502),
    (PbxUnavailable, 503),
    (PbxTimeout, 504),
)


def api_error_for(error: CommandError) -> ApiError:
    """The HTTP answer to a failed command."""
    status = next((s for cls, s in _STATUS_OF if isinstance(error, cls)), 502)
    headers = {}
    if isinstance(error, PbxUnavailable):
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


def add_api_routes(
    app: Klein,
    *,
    hub: Hub,
    tracker: Tracker,
    sync: Sync,
    commands: Commands,
    auth: Authenticator,
    public_base_url: str,
    grace_period: float,
    allowed_origins: Sequence[str],
    now_ms: Callable[[], int],
) -> None:
    """Install ``/agents/...`` and ``/queues`` on ``app``."""

    def reply(request: IRequest, document: Any, status: int = 200) -> bytes:
        apply_cors(request, allowed_origins)
        return json_response(request, document, status)

    def sync_failed(failure: Failure, agent: str) -> None:
        log.failure("state sync for newly registered agent {agent} failed", failure, agent=agent)

    @app.route("/agents/<agent>", methods=["PUT"])
    def put_agent(request: IRequest, agent: str) -> bytes:
        auth.require_crm(request)
        v.agent_name(agent)
        body = v.Fields(v.read_json_object(request), {"queues", "name"})
        queues = body.get("queues", v.queue_list, [])
        name = body.get("name", lambda value, key: v.text(value, key, max_length=64))
        registration = hub.register(agent, queues, name)
        hub.publish(tracker.register(agent, list(registration.queues), now_ms()))
        # Asterisk may know of calls or queues we have not tracked yet; the sync fetches
        # them in the background. The answer does not wait: the stream will carry them.
        sync.agent_registered(agent).addErrback(sync_failed, agent)
        log.info(
            "agent {agent} registered for queues {queues}", agent=agent, queues=list(registration.queues)
        )
        return reply(
            request,
            {
                "agent": registration.agent,
                "queues": list(registration.queues),
                "name": registration.name,
                "token": registration.token,
                "streams": _stream_urls(public_base_url or request_base_url(request), registration.token),
                "gracePeriod": grace_period,
            },
        )

    @app.route("/agents/<agent>", methods=["DELETE"])
    def delete_agent(request: IRequest, agent: str) -> bytes:
        auth.require_crm(request)
        v.agent_name(agent)
        if not hub.unregister(agent):
            raise _unknown_agent(agent)
        tracker.unregister(agent)
        log.info("agent {agent} unregistered", agent=agent)
        apply_cors(request, allowed_origins)
        request.setResponseCode(204)
        return b""

    @app.route("/agents/<agent>", methods=["GET"])
    def get_agent(request: IRequest, agent: str) -> bytes:
        auth.require_agent(request, agent)
        v.agent_name(agent)
        state = tracker.agent_state(agent)
        if state is None:
            raise _unknown_agent(agent)
        return reply(request, state)

    @app.route("/queues", methods=["GET"])
    def get_queues(request: IRequest) -> bytes:
        auth.require_crm(request)
        return reply(request, tracker.queues_state())

    @app.route("/agents/<agent>/originate", methods=["POST"])
    async def originate(request: IRequest, agent: str) -> bytes:
        auth.require_agent(request, agent)
        v.agent_name(agent)
        body = v.Fields(v.read_json_object(request), {"number", "callerId", "variables"})
        number = body.get("number", v.phone_number)
        if number is None:
            raise ApiError(400, "invalid_field", 'number: required, e.g. {"number": "0911234567"}')
        caller_id = body.get("callerId", lambda value, key: v.text(value, key, max_length=128))
        variables = body.get("variables", v.variables, {})
        registration = hub.get(agent)
        if registration is None:
            # The failure of a click-to-call arrives on the agent's stream; without a
            # registration nobody would ever hear of it.
            raise _unknown_agent(agent)
        action_id = await _run(
            commands.originate(
                agent, number, caller_id=caller_id, variables=variables, name=registration.name
            )
        )
        log.info("agent {agent}: originate {action_id} queued", agent=agent, action_id=action_id)
        return reply(request, {"actionId": action_id}, 202)

    def queue_route(action: str) -> str:
        return f"/agents/<agent>/queues/<queue>/{action}"

    @app.route(queue_route("login"), methods=["POST"])
    async def queue_login(request: IRequest, agent: str, queue: str) -> bytes:
        _check_names(request, auth, agent, queue)
        body = v.Fields(v.read_json_object(request), {"penalty", "paused", "memberName"})
        penalty = body.get("penalty", lambda x, k: v.integer(x, k, minimum=0, maximum=v.MAX_PENALTY), 0)
        paused = body.get("paused", v.boolean, False)
        member_name = body.get("memberName", lambda value, key: v.text(value, key, max_length=64))
        if member_name is None:
            registration = hub.get(agent)
            member_name = registration.name if registration is not None else None
        await _run(
            commands.queue_login(agent, queue, penalty=penalty, paused=paused, member_name=member_name)
        )
        return reply(request, {"agent": agent, "queue": queue, "loggedIn": True, "paused": paused})

    @app.route(queue_route("logoff"), methods=["POST"])
    async def queue_logoff(request: IRequest, agent: str, queue: str) -> bytes:
        _check_names(request, auth, agent, queue)
        v.Fields(v.read_json_object(request), set())
        await _run(commands.queue_logoff(agent, queue))
        return reply(request, {"agent": agent, "queue": queue, "loggedIn": False})

    @app.route(queue_route("pause"), methods=["POST"])
    async def queue_pause(request: IRequest, agent: str, queue: str) -> bytes:
        _check_names(request, auth, agent, queue)
        body = v.Fields(v.read_json_object(request), {"reason"})
        reason = body.get("reason", lambda value, key: v.text(value, key, max_length=128))
        await _run(commands.queue_pause(agent, queue, paused=True, reason=reason))
        return reply(request, {"agent": agent, "queue": queue, "paused": True})

    @app.route(queue_route("unpause"), methods=["POST"])
    async def queue_unpause(request: IRequest, agent: str, queue: str) -> bytes:
        _check_names(request, auth, agent, queue)
        v.Fields(v.read_json_object(request), set())
        await _run(commands.queue_pause(agent, queue, paused=False))
        return reply(request, {"agent": agent, "queue": queue, "paused": False})


def _check_names(request: IRequest, auth: Authenticator, agent: str, queue: str) -> None:
    auth.require_agent(request, agent)
    v.agent_name(agent)
    v.queue_name(queue)


def _unknown_agent(agent: str) -> ApiError:
    return ApiError(
        404, "unknown_agent", f"agent {agent} is not registered; register it with PUT /agents/{agent}"
    )
