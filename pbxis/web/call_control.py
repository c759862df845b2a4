"""The call-control routes: hang up, transfer (and cancel), recording pause/resume, spy.

Thin like :mod:`.api`: authenticate, validate, call the engine
(:class:`~pbxis.engine.CallCenter`), render. The OpenAPI fragment for these routes lives here too (merged by
:mod:`.openapi`), next to the code it describes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from ..call_control import SPY_MODES, TRANSFER_MODES
from ..engine import CallCenter
from ..names import NUMBER_PATTERN
from . import validation as v
from .api import _run, json_response
from .auth import Authenticator
from .errors import ApiError
from .scope import Scope, pbx_route

__all__ = ["SharedResponses", "add_call_control_routes", "call_control_paths", "call_control_schemas"]

log = Logger(namespace="pbxis.web.call_control")


def _choice(choices: Sequence[str]) -> Callable[[object, str], str]:
    def check(value: object, field: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ApiError(400, "invalid_field", f"{field}: expected one of {', '.join(choices)}")
        return value

    return check


def add_call_control_routes(
    app: Klein, *, center: CallCenter, auth: Authenticator, scope: Scope | None = None
) -> None:
    """Install the call-control routes of the contract on ``app`` (and under ``/pbx/{pbx}``)."""
    scope = scope or Scope(center, auth)

    def allowed(request: IRequest, agent: str, pbx: str | None, *, crm_only: bool = False) -> str:
        if crm_only:
            where = scope.crm(request, pbx)
        else:
            _, where = scope.agent(request, agent, pbx)
        v.agent_name(agent)
        return where

    @pbx_route(app, "/agents/<agent>/hangup", ["POST"])
    async def hangup(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        where = allowed(request, agent, pbx)
        v.Fields(v.read_json_object(request), set())
        await _run(center.hangup(agent, pbx=where))
        log.info("agent {agent} of {pbx}: call hung up through the API", agent=agent, pbx=where)
        return json_response(request, {"agent": agent, "hungUp": True})

    @pbx_route(app, "/agents/<agent>/transfer", ["POST"])
    async def transfer(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        where = allowed(request, agent, pbx)
        body = v.Fields(v.read_json_object(request), {"to", "mode"})
        to = body.get("to", lambda value, key: v.phone_number(value, key))
        if to is None:
            raise ApiError(400, "invalid_field", 'to: required, e.g. {"to": "1002", "mode": "blind"}')
        mode = body.get("mode", _choice(TRANSFER_MODES), "blind")
        action_id = await _run(center.transfer(agent, to, mode=mode, pbx=where))
        log.info("agent {agent}: {mode} transfer to {to} ({id})", agent=agent, mode=mode, to=to, id=action_id)
        return json_response(request, {"actionId": action_id}, 202)

    @pbx_route(app, "/agents/<agent>/transfer/cancel", ["POST"])
    async def cancel_transfer(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        where = allowed(request, agent, pbx)
        v.Fields(v.read_json_object(request), set())
        action_id = await _run(center.cancel_transfer(agent, pbx=where))
        return json_response(request, {"actionId": action_id, "cancelled": True})

    async def recording(request: IRequest, agent: str, pbx: str | None, paused: bool) -> bytes:
        where = allowed(request, agent, pbx)
        v.Fields(v.read_json_object(request), set())
        change = center.pause_recording if paused else center.resume_recording
        call = await _run(change(agent, pbx=where))
        return json_response(
            request, {"uniqueId": call.unique_id, "recording": call.recording, "paused": paused}
        )

    @pbx_route(app, "/agents/<agent>/recording/pause", ["POST"])
    async def recording_pause(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        return await recording(request, agent, pbx, True)

    @pbx_route(app, "/agents/<agent>/recording/resume", ["POST"])
    async def recording_resume(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        return await recording(request, agent, pbx, False)

    @pbx_route(app, "/agents/<agent>/spy", ["POST"])
    async def spy(request: IRequest, agent: str, pbx: str | None = None) -> bytes:
        where = allowed(request, agent, pbx, crm_only=True)  # a team lead's power, not the agent's
        body = v.Fields(v.read_json_object(request), {"supervisor", "mode"})
        supervisor = body.get(
            "supervisor", lambda value, key: v.agent_name(value if isinstance(value, str) else "", key)
        )
        if supervisor is None:
            raise ApiError(400, "invalid_field", 'supervisor: required, e.g. {"supervisor": "1003"}')
        mode = body.get("mode", _choice(SPY_MODES), "listen")
        action_id = await _run(center.spy(agent, supervisor, mode=mode, pbx=where))
        log.info("agent {agent}: {who} spies ({mode})", agent=agent, who=supervisor, mode=mode)
        return json_response(request, {"actionId": action_id}, 202)


# -- OpenAPI -------------------------------------------------------------------------------

_AGENT = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,32}$", "example": "1001"}


@dataclass(frozen=True)
class SharedResponses:
    """The pieces of :mod:`.openapi` these paths reuse (so responses read the same)."""

    body_errors: dict[str, Any]
    auth_errors: dict[str, Any]
    pbx_errors: dict[str, Any]
    json: Callable[[dict[str, Any], str], dict[str, Any]]
    error: Callable[[str], dict[str, Any]]
    ref: Callable[[str], dict[str, Any]]


def call_control_paths(agent_param: dict[str, Any], shared: SharedResponses) -> dict[str, Any]:
    """The path items of the call-control routes."""
    ref, error = shared.ref, shared.error

    def op(summary: str, ok: str, status: str, response: str, body: str | None = None) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "tags": ["commands"],
            "summary": summary,
            "parameters": [agent_param],
            "responses": {
                status: shared.json(ref(response), ok),
                **shared.body_errors,
                **shared.auth_errors,
                "404": error("The agent is not registered."),
                "409": error("`no_call`: the agent is on no call (or `not_recording`, `no_transfer`)."),
                **shared.pbx_errors,
            },
        }
        operation["requestBody"] = {
            "required": body is not None,
            "content": {"application/json": {"schema": ref(body or "Empty")}},
        }
        return operation

    return {
        "/agents/{agent}/hangup": {
            "post": op("Hang up the agent's current call.", "Hung up.", "200", "HungUp")
        },
        "/agents/{agent}/transfer": {
            "post": op(
                "Transfer the agent's caller (blind, or attended: talk first, complete by hanging up).",
                "Asterisk took the transfer; a failure arrives as `transferFailed`.",
                "202",
                "Originated",
                "Transfer",
            )
        },
        "/agents/{agent}/transfer/cancel": {
            "post": op(
                "Cancel the attended transfer in progress.", "Back to the caller.", "200", "TransferCancelled"
            )
        },
        "/agents/{agent}/recording/pause": {
            "post": op("Stop writing the call's recording (PCI DSS).", "Paused.", "200", "RecordingStatus")
        },
        "/agents/{agent}/recording/resume": {
            "post": op("Write the call's recording again.", "Resumed.", "200", "RecordingStatus")
        },
        "/agents/{agent}/spy": {
            "post": {
                **op(
                    "Ring a supervisor's phone and join it to the agent's call (listen, whisper, barge).",
                    "The supervisor's phone is ringing.",
                    "202",
                    "Originated",
                    "Spy",
                ),
                "description": "CRM API key only.",
            }
        },
    }


def call_control_schemas() -> dict[str, Any]:
    closed = {"type": "object", "additionalProperties": False}
    return {
        "Transfer": {
            **closed,
            "required": ["to"],
            "properties": {
                "to": {"type": "string", "pattern": NUMBER_PATTERN, "example": "1002"},
                "mode": {"enum": list(TRANSFER_MODES)},
            },
        },
        "Spy": {
            **closed,
            "required": ["supervisor"],
            "properties": {"supervisor": _AGENT, "mode": {"enum": list(SPY_MODES)}},
        },
        "HungUp": {
            "type": "object",
            "required": ["agent", "hungUp"],
            "properties": {"agent": _AGENT, "hungUp": {"const": True}},
        },
        "TransferCancelled": {
            "type": "object",
            "required": ["actionId", "cancelled"],
            "properties": {"actionId": {"type": "string"}, "cancelled": {"const": True}},
        },
        "RecordingStatus": {
            "type": "object",
            "required": ["uniqueId", "recording", "paused"],
            "properties": {
                "uniqueId": {"type": "string"},
                "recording": {"type": ["string", "null"]},
                "paused": {"type": "boolean"},
            },
        },
    }
