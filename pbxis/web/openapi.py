"""The OpenAPI 3 description of every route, served as ``GET /openapi.json``.

Written out by hand rather than generated from the routes: the document is the
contract (``shared/api-contract.md``) in machine form, and a test walks the app's
``url_map`` to check that the two agree both ways. The patterns here are the ones
:mod:`pbxis.web.validation` enforces, so a fuzzer reading this document probes the
same boundaries the code checks.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import __version__
from ..names import AGENT_PATTERN, NUMBER_PATTERN, PBX_PATTERN, QUEUE_PATTERN
from . import validation
from .call_control import SharedResponses, call_control_paths, call_control_schemas
from .openapi_supervisors import supervisor_paths, supervisor_schemas

__all__ = ["openapi_document"]

_AGENT = {"type": "string", "pattern": AGENT_PATTERN, "example": "1001"}
_QUEUE = {"type": "string", "pattern": QUEUE_PATTERN, "example": "sales"}
# Free text bound for AMI headers: no control characters (pbxis.web.validation.text).
_NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "`Bearer`, the scheme to use.", "schema": {"type": "string"}}
}

_AUTH_ERRORS = {
    "401": {
        **_error("No or bad credentials: send `Authorization: Bearer <api key or stream token>`."),
        "headers": _WWW_AUTHENTICATE,
    },
    "403": _error(
        "A stream token used for another agent, a queue it is not registered for, or a CRM-only route;"
        " or (`origin_not_allowed`) a state-changing request from a page whose Origin is not in"
        " `[http].allowed_origins`."
    ),
}
_BODY_ERRORS = {
    "400": _error("Bad input: invalid JSON, unknown field, wrong type or forbidden characters."),
    "413": _error(
        f"The body is larger than {validation.MAX_BODY_BYTES} bytes (declared or as it arrives;"
        " answered before the rest is read, and the connection is closed)."
    ),
    "415": _error("A body not sent as `application/json` (a missing Content-Type included)."),
}
_PBX_ERRORS = {
    "502": _error("Asterisk refused the action for a reason pbxis does not know; the message says why."),
    "503": {**_error("Asterisk is unreachable or the link dropped."), "headers": _RETRY_AFTER},
    "504": _error("Asterisk did not answer in time; the action may still run."),
}
_NOT_FOUND = {"404": _error("Unknown agent or queue.")}
_PATH_ERRORS = {"400": _error("An agent or queue name in the path is not valid.")}


def _agent_param() -> dict[str, Any]:
    return {"name": "agent", "in": "path", "required": True, "schema": _AGENT}


def _queue_param() -> dict[str, Any]:
    return {"name": "queue", "in": "path", "required": True, "schema": _QUEUE}


def _token_param() -> dict[str, Any]:
    return {
        "name": "token",
        "in": "path",
        "required": True,
        "description": "The stream token returned by `PUT /agents/{agent}`.",
        "schema": {"type": "string"},
    }


def _body(schema_name: str, *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _queue_command(summary: str, ok: str, body: str | None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": ["commands"],
        "summary": summary,
        "parameters": [_agent_param(), _queue_param()],
        "responses": {
            "200": _json(_ref("QueueCommandResult"), ok),
            **_BODY_ERRORS,
            **_AUTH_ERRORS,
            "404": _error("Asterisk has no such queue."),
            "409": _error("Conflicts with Asterisk's queue state (already a member, not a member, static)."),
            **_PBX_ERRORS,
        },
    }
    if body is not None:
        operation["requestBody"] = _body(body, required=False)
    return operation


def _paths() -> dict[str, Any]:
    agent = {
        "parameters": [_agent_param()],
        "put": {
            "tags": ["agents"],
            "summary": "Register an agent (again: keeps the token, updates queues and name).",
            "requestBody": _body("Registration", required=False),
            "responses": {
                "200": _json(_ref("Registered"), "Registered; stream URLs are absolute."),
                **_BODY_ERRORS,
                **_AUTH_ERRORS,
            },
        },
        "delete": {
            "tags": ["agents"],
            "summary": "Unregister: streams get a `closed` event, then end.",
            "responses": {
                "204": {"description": "Unregistered."},
                **_PATH_ERRORS,
                **_AUTH_ERRORS,
                **_NOT_FOUND,
            },
        },
        "get": {
            "tags": ["agents"],
            "summary": "The agent's current state as one document.",
            "responses": {
                "200": _json(_ref("AgentState"), "The agent's state."),
                **_PATH_ERRORS,
                **_AUTH_ERRORS,
                **_NOT_FOUND,
            },
        },
    }
    stream = {"parameters": [_token_param()]}
    return {
        "/agents/{agent}": agent,
        "/agents/{agent}/originate": {
            "post": {
                "tags": ["commands"],
                "summary": "Ring the agent's phone, then dial the number (click to call).",
                "description": "Answers once Asterisk has queued the call; a failure arrives "
                "later on the agent's stream as `originateFailed` with this `actionId`.",
                "parameters": [_agent_param()],
                "requestBody": _body("Originate", required=True),
                "responses": {
                    "202": _json(_ref("Originated"), "Queued by Asterisk."),
                    **_BODY_ERRORS,
                    **_AUTH_ERRORS,
                    "403": _error(
                        "Another agent's token; `callerId` from an agent's token; or the number is refused"
                        " by the `[originate]` policy (`number_not_allowed`)."
                    ),
                    "404": _error("The agent is not registered."),
                    "429": {
                        **_error("Too many originates for this agent or for all (`rate_limited`)."),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
                    **_PBX_ERRORS,
                },
            }
        },
        "/agents/{agent}/queues/{queue}/login": {
            "post": _queue_command("Add the agent to the queue.", "Logged in.", "QueueLogin")
        },
        "/agents/{agent}/queues/{queue}/logoff": {
            "post": _queue_command("Remove the agent from the queue.", "Logged off.", "Empty")
        },
        "/agents/{agent}/queues/{queue}/pause": {
            "post": _queue_command("Pause the agent in the queue.", "Paused.", "QueuePause")
        },
        "/agents/{agent}/queues/{queue}/unpause": {
            "post": _queue_command("Unpause the agent in the queue.", "Unpaused.", "Empty")
        },
        "/queues": {
            "get": {
                "tags": ["queues"],
                "summary": "Every tracked queue: waiting callers and members with their state.",
                "responses": {"200": _json(_ref("Queues"), "The queues."), **_AUTH_ERRORS},
            }
        },
        "/stream/{token}/sse": {
            **stream,
            "get": {
                "tags": ["streams"],
                "security": [],
                "summary": "Server-Sent Events; honours `Last-Event-ID`.",
                "parameters": [
                    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "`id: N`, `event: <type>`, `data: <event JSON>` frames.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "404": _error("Unknown or expired stream token."),
                    "429": _error("The registration has `[agents] max_clients` clients already."),
                },
            },
        },
        "/stream/{token}/poll": {
            **stream,
            "get": {
                "tags": ["streams"],
                "security": [],
                "summary": "Long-poll: answers at once when events are due, else waits.",
                "parameters": [
                    {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "timeout", "in": "query", "schema": {"type": "number", "minimum": 0}},
                ],
                "responses": {
                    "200": _json(_ref("PollResult"), "Events after `since`."),
                    "400": _error("Bad `since` or `timeout`."),
                    "404": _error("Unknown or expired stream token."),
                    "429": _error("The registration has `[agents] max_clients` clients already."),
                },
            },
        },
        "/stream/{token}/ws": {
            **stream,
            "get": {
                "tags": ["streams"],
                "security": [],
                "summary": "WebSocket: one JSON event per text message.",
                "parameters": [{"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                "responses": {
                    "101": {"description": "Switching to the WebSocket protocol."},
                    "404": _error("Unknown or expired stream token (a plain GET too)."),
                    "426": _error("A plain GET, not a WebSocket handshake (with `Upgrade: websocket`)."),
                },
            },
        },
        "/client": {
            "get": {
                "tags": ["client"],
                "summary": "The demo's front page: pick an agent and a transport.",
                "security": [],
                "responses": {"200": _html("The page.")},
            }
        },
        "/client/{tech}/{agent}": {
            "get": {
                "tags": ["client"],
                "summary": "An HTML page showing one agent's live stream.",
                "security": [],
                "parameters": [
                    {
                        "name": "tech",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["long-poll", "sse", "websocket"]},
                    },
                    _agent_param(),
                ],
                "responses": {
                    "200": _html("The page."),
                    "400": _error("Unknown transport or invalid agent name."),
                },
            }
        },
        "/static/{name}": {
            "get": {
                "tags": ["client"],
                "summary": "Static files of the client page, among them the `pbxis.js` library.",
                "security": [],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$", "example": "pbxis.js"},
                    }
                ],
                "responses": {
                    "200": {"description": "The file.", "content": {"*/*": {"schema": {"type": "string"}}}},
                    "404": _error("No such static file."),
                },
            }
        },
        "/health": {
            "get": {
                "tags": ["operations"],
                "summary": "200 when the AMI link is up and logged in, else 503.",
                "security": [],
                "responses": {
                    "200": _json(_ref("Health"), "Asterisk is connected."),
                    "503": _json(_ref("Health"), "Asterisk is not connected.", headers=_RETRY_AFTER),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "summary": "Prometheus metrics (credentials needed unless `metrics_public`).",
                "security": [{}, {"bearerAuth": []}],
                "responses": {
                    "200": {
                        "description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_AUTH_ERRORS,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["operations"],
                "summary": "This document.",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3 document.")},
            }
        },
    }


def _text(max_length: int, example: str) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "pattern": _NO_CONTROLS, "example": example}


def _schemas() -> dict[str, Any]:
    closed = {"type": "object", "additionalProperties": False}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "Empty": {**closed, "properties": {}},
        "Registration": {
            **closed,
            "properties": {
                "queues": {"type": "array", "items": _QUEUE, "maxItems": 64, "example": ["sales", "support"]},
                "name": _text(64, "Alice"),
            },
        },
        "Registered": {
            "type": "object",
            "required": ["agent", "pbx", "queues", "name", "token", "streams", "gracePeriod"],
            "properties": {
                "agent": _AGENT,
                "pbx": {**_AGENT, "example": "default", "description": "The PBX the agent belongs to."},
                "queues": {"type": "array", "items": _QUEUE},
                "name": {"type": ["string", "null"]},
                "token": {"type": "string"},
                "streams": {
                    "type": "object",
                    "required": ["sse", "websocket", "longPoll"],
                    "properties": {
                        "sse": {"type": "string", "format": "uri"},
                        "websocket": {"type": "string", "format": "uri"},
                        "longPoll": {"type": "string", "format": "uri"},
                    },
                },
                "gracePeriod": {"type": "number", "description": "Seconds a log outlives its last client."},
            },
        },
        "AgentState": {
            "type": "object",
            "required": ["agent", "extension", "queues", "call", "pbxConnected"],
            "properties": {
                "agent": _AGENT,
                "extension": {"type": "string", "description": "Extension status, as in `extensionStatus`."},
                "queues": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "membership": {"type": ["string", "null"], "enum": ["dynamic", "static", None]},
                            "loggedIn": {"type": "boolean"},
                            "status": {"type": "string"},
                            "paused": {"type": "boolean"},
                            "reason": {"type": "string"},
                            "count": {"type": "integer", "description": "Callers waiting."},
                        },
                    },
                },
                "call": {
                    "type": ["object", "null"],
                    "description": "The current call, as in `phoneNumber`; null when idle.",
                },
                "pbxConnected": {"type": "boolean"},
            },
        },
        "Queues": {
            "type": "object",
            "required": ["queues", "connected"],
            "properties": {
                "queues": {
                    "type": "object",
                    "description": "Every tracked queue by name.",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["queue", "count", "members"],
                        "properties": {
                            "queue": _QUEUE,
                            "count": {"type": "integer", "description": "Callers waiting."},
                            "members": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "agent": _AGENT,
                                        "interface": {"type": "string"},
                                        "membership": {"type": "string"},
                                        "status": {"type": "string"},
                                        "paused": {"type": "boolean"},
                                        "pausedReason": {"type": "string"},
                                        "inCall": {"type": "boolean"},
                                    },
                                },
                            },
                        },
                    },
                },
                "connected": {"type": "boolean", "description": "Whether the AMI link is up."},
            },
        },
        "Originate": {
            **closed,
            "required": ["number"],
            "properties": {
                "number": {"type": "string", "pattern": NUMBER_PATTERN, "example": "0911234567"},
                "callerId": _text(128, '"Sales" <0211234567>'),
                "variables": {
                    "type": "object",
                    "maxProperties": validation.MAX_VARIABLES,
                    "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                    "additionalProperties": _text(validation.MAX_VARIABLE_VALUE, "4711"),
                    "description": "Channel variables, set on the agent's channel.",
                    "example": {"CRM_TICKET": "4711"},
                },
            },
        },
        "Originated": {
            "type": "object",
            "required": ["actionId"],
            "properties": {"actionId": {"type": "string"}},
        },
        "QueueLogin": {
            **closed,
            "properties": {
                "penalty": {"type": "integer", "minimum": 0, "maximum": validation.MAX_PENALTY},
                "paused": {"type": "boolean"},
                "memberName": _text(64, "Alice"),
            },
        },
        "QueuePause": {**closed, "properties": {"reason": _text(128, "lunch")}},
        "QueueCommandResult": {
            "type": "object",
            "required": ["agent", "queue"],
            "properties": {
                "agent": _AGENT,
                "queue": _QUEUE,
                "loggedIn": {"type": "boolean"},
                "paused": {"type": "boolean"},
            },
        },
        "Event": {
            "type": "object",
            "required": ["id", "type", "agent", "time"],
            "properties": {
                "id": {"type": "integer"},
                "type": {"type": "string"},
                "agent": _AGENT,
                "time": {"type": "integer", "description": "Unix epoch milliseconds."},
            },
            "additionalProperties": True,
        },
        "PollResult": {
            "type": "object",
            "required": ["events", "next"],
            "properties": {"events": {"type": "array", "items": _ref("Event")}, "next": {"type": "integer"}},
        },
        "Health": {
            "type": "object",
            "required": ["status", "ami"],
            "description": "With [[tenants]], a caller without a key gets status, ami.connected"
            " and synced only; a tenant's key, its PBXes' figures.",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "ami": {
                    "type": "object",
                    "description": "Every PBX the caller may see together (connected: all of them).",
                    "required": ["connected"],
                    "properties": {
                        "connected": {"type": "boolean"},
                        "state": {"type": "string"},
                        "lastEventAge": {
                            "type": ["number", "null"],
                            "description": "Seconds since the last AMI event; null before the first.",
                        },
                        "reconnects": {"type": "integer"},
                    },
                },
                "synced": {"type": "boolean"},
                "instance": {
                    "type": "object",
                    "description": "This pbxis process: a new `id` means it restarted and its"
                    " in-memory registrations are gone (register the agents again).",
                    "required": ["id", "startedAt"],
                    "properties": {
                        "id": {"type": "string"},
                        "startedAt": {"type": "integer", "description": "Epoch milliseconds."},
                    },
                },
                "agents": {"type": "integer"},
                "supervisors": {"type": "integer"},
                "clients": {"type": "object", "additionalProperties": {"type": "integer"}},
                "pbx": {
                    "type": "object",
                    "description": "Per PBX the caller may see: link state, last event age, agents, clients.",
                    "additionalProperties": _ref("PbxHealth"),
                },
            },
        },
        "PbxHealth": {
            "type": "object",
            "required": ["connected", "state", "lastEventAge", "synced"],
            "properties": {
                "pbx": {"type": "string"},
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "connected": {"type": "boolean"},
                "state": {"type": "string"},
                "lastEventAge": {"type": ["number", "null"]},
                "reconnects": {"type": "integer"},
                "synced": {"type": "boolean"},
                "agents": {"type": "integer"},
                "supervisors": {"type": "integer"},
                "clients": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
    }


#: the routes that also exist under ``/pbx/{pbx}`` (pbxis.web.scope)
_PBX_SCOPED = ("/agents/", "/queues", "/supervisors/")


def _pbx_param() -> dict[str, Any]:
    return {
        "name": "pbx",
        "in": "path",
        "required": True,
        "description": "A PBX of the config's [[pbx]] tables; the unprefixed route is the PBX `default`.",
        "schema": {"type": "string", "pattern": PBX_PATTERN, "example": "east"},
    }


def _with_pbx_prefix(paths: dict[str, Any]) -> dict[str, Any]:
    """Every agent, queue and supervisor path again under ``/pbx/{pbx}``."""
    out = dict(paths)
    for path, item in paths.items():
        if path.startswith(_PBX_SCOPED):
            scoped = copy.deepcopy(item)
            scoped["parameters"] = [_pbx_param(), *scoped.get("parameters", [])]
            for operation in scoped.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["responses"].setdefault(
                        "404", _error("No such PBX (or not one this key may see), or no such agent.")
                    )
            out[f"/pbx/{{pbx}}{path}"] = scoped
    out["/health/pbx/{pbx}"] = {
        "get": {
            "tags": ["operations"],
            "summary": "200 when that PBX's AMI link is up and logged in, else 503.",
            "description": "Public as /health; with [[tenants]], an API key is needed and sees its"
            " PBXes only.",
            "security": [{}, {"bearerAuth": []}],
            "parameters": [_pbx_param()],
            "responses": {
                "200": _json(_ref("PbxHealth"), "The PBX's link is up and logged in."),
                "404": _error("No such PBX (or not one this key may see)."),
                "503": _json(_ref("PbxHealth"), "The PBX's link is down.", headers=_RETRY_AFTER),
            },
        }
    }
    return out


def _call_control_paths() -> dict[str, Any]:
    shared = SharedResponses(_BODY_ERRORS, _AUTH_ERRORS, _PBX_ERRORS, _json, _error, _ref)
    return call_control_paths(_agent_param(), shared)


def openapi_document(public_base_url: str) -> dict[str, Any]:
    """The document for a server reachable at ``public_base_url``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pbxis",
            "version": __version__,
            "description": "An Asterisk call center on the web: agent commands and live agent event streams.",
        },
        "servers": [{"url": public_base_url.rstrip("/") or "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": "agents", "description": "Registration (CRM API key)."},
            {"name": "commands", "description": "API key, or the agent's own stream token."},
            {"name": "queues"},
            {"name": "streams", "description": "Authorized by the stream token in the path."},
            {"name": "supervisors", "description": "Supervisors of whole queues (CRM API key)."},
            {"name": "client"},
            {"name": "operations"},
        ],
        "paths": _with_pbx_prefix({**_paths(), **_call_control_paths(), **supervisor_paths()}),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A CRM API key, or an agent's stream token (that agent's routes only).",
                }
            },
            "schemas": {**_schemas(), **call_control_schemas(), **supervisor_schemas()},
        },
    }
