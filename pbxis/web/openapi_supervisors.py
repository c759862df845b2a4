"""The supervisor routes' part of ``/openapi.json`` (merged by :mod:`pbxis.web.openapi`)."""

from __future__ import annotations

from typing import Any

from . import validation

__all__ = ["supervisor_paths", "supervisor_schemas"]

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$", "example": "floor"}
_QUEUE = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$", "example": "sales"}
# Free text bound for AMI headers and logs: no control characters (validation.text).
_TEXT = {"type": "string", "maxLength": 64, "pattern": r"^[^\x00-\x1f\x7f]*$", "example": "Floor"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_AUTH = {"401": _error("No or bad credentials."), "403": _error("Not allowed with this credential.")}
_UNKNOWN = {"404": _error("No such supervisor is registered.")}
_BAD = {"400": _error("A bad name or body; the message names the field.")}


def supervisor_paths() -> dict[str, Any]:
    return {
        "/supervisors/{name}": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": _NAME}],
            "put": {
                "tags": ["supervisors"],
                "summary": "Register a supervisor of whole queues (again: keeps the token, updates queues).",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SupervisorRegistration")}},
                },
                "responses": {
                    "200": _json(_ref("SupervisorRegistered"), "Registered; stream URLs are absolute."),
                    **_BAD,
                    "413": _error("Body over 64 KiB."),
                    "415": _error("Body not JSON."),
                    **_AUTH,
                },
            },
            "get": {
                "tags": ["supervisors"],
                "summary": "The supervisor's queues now (CRM, or the supervisor's own token).",
                "responses": {
                    "200": _json(_ref("SupervisorState"), "Stats, waiting callers and members per queue."),
                    **_BAD,
                    **_AUTH,
                    **_UNKNOWN,
                },
            },
            "delete": {
                "tags": ["supervisors"],
                "summary": "Unregister: streams get a `closed` event, then end.",
                "responses": {"204": {"description": "Unregistered."}, **_BAD, **_AUTH, **_UNKNOWN},
            },
        },
        "/wallboard": {
            "get": {
                "tags": ["client"],
                "summary": "The wallboard: a supervisor's queues, live (`?token=` from `PUT /supervisors`).",
                "security": [],
                "description": "The page reads its own query, so none of it reaches the server: "
                "`token` (from `PUT /supervisors/{name}`), `transport` (`websocket`, `sse`, "
                "`long-poll`), the thresholds `waitAmber`, `waitRed` (s), `slAmber`, `slRed` (%), "
                "and, with an open API only, `queues` (the page then registers itself).",
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def supervisor_schemas() -> dict[str, Any]:
    return {
        "SupervisorRegistration": {
            "type": "object",
            "additionalProperties": False,
            "required": ["queues"],
            "properties": {
                "queues": {
                    "type": "array",
                    "items": _QUEUE,
                    "minItems": 1,
                    "maxItems": validation.MAX_QUEUES,
                },
                "name": _TEXT,
            },
        },
        "SupervisorRegistered": {
            "type": "object",
            "required": ["supervisor", "pbx", "queues", "token", "streams", "gracePeriod"],
            "properties": {
                "supervisor": _NAME,
                "pbx": {"type": "string"},
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
                "wallboard": {"type": "string", "format": "uri", "description": "The wallboard page."},
                "gracePeriod": {"type": "number"},
            },
        },
        "SupervisorState": {
            "type": "object",
            "required": ["supervisor", "queues", "pbxConnected"],
            "properties": {
                "supervisor": _NAME,
                "pbx": {"type": "string"},
                "name": {"type": ["string", "null"]},
                "pbxConnected": {"type": "boolean"},
                "queues": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "stats": {"type": "object", "description": "As the `queueStats` event."},
                            "callers": {"type": "array", "items": {"type": "object"}},
                            "members": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
    }
