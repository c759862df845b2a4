"""Checking what clients send before any of it gets near Asterisk.

Every value that ends up in an AMI header is checked twice: here, so the client gets
a 400 that names the field, and again in :func:`pbxis.ami.action.format_action`, the
last line of defence. Rules here are deliberately narrower than Asterisk's own: an
agent or queue name is one token of ``A-Za-z0-9_.-``, a number is what a phone can
dial (both rules live in :mod:`pbxis.names`), and no free text may hold a control
character (CR and LF would end an AMI header and let the rest be read as a new action).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from twisted.web.iweb import IRequest

from ..names import AGENT_HINT, NUMBER_HINT, QUEUE_HINT, is_agent, is_number, is_queue, is_variable
from .errors import ApiError

__all__ = [
    "MAX_BODY_BYTES",
    "Fields",
    "agent_name",
    "phone_number",
    "queue_name",
    "read_json_object",
    "text",
    "variables",
]

MAX_BODY_BYTES = 64 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

MAX_VARIABLES = 32
"""An action may hold 128 lines; this leaves room for the Originate headers."""
MAX_VARIABLE_VALUE = 512
MAX_PENALTY = 2**31 - 1
"""Asterisk keeps a member's penalty in a C int."""
MAX_QUEUES = 64


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{field}: {message}")


def agent_name(value: str, field: str = "agent") -> str:
    """An agent is named by its extension: 1 to 32 of ``A-Za-z0-9_.-``."""
    if not is_agent(value):
        raise _bad(field, f"use {AGENT_HINT}")
    return value


def queue_name(value: str, field: str = "queue") -> str:
    """A queue name as configured in queues.conf, restricted to one safe token."""
    if not is_queue(value):
        raise _bad(field, f"use {QUEUE_HINT}")
    return value


def queue_list(value: object, field: str = "queues") -> list[str]:
    """Queue names, duplicates dropped, order kept."""
    if not isinstance(value, list):
        raise _bad(field, 'must be an array of queue names, e.g. ["sales"]')
    if len(value) > MAX_QUEUES:
        raise _bad(field, f"at most {MAX_QUEUES} queues")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _bad(field, "every queue name must be a string")
        queue_name(item, field)
        if item not in out:
            out.append(item)
    return out


def phone_number(value: object, field: str = "number") -> str:
    """Something a phone can dial: digits, ``+``, ``*``, ``#``; 1 to 32 of them."""
    if not isinstance(value, str) or not is_number(value):
        raise _bad(field, f"use {NUMBER_HINT}")
    return value


def text(value: object, field: str, *, max_length: int) -> str:
    """Free text bound for an AMI header: no control characters, bounded length."""
    if not isinstance(value, str):
        raise _bad(field, "must be a string")
    if _CONTROL.search(value):
        raise _bad(field, "must not contain control characters (CR, LF, NUL, ...)")
    if len(value) > max_length:
        raise _bad(field, f"must be at most {max_length} characters")
    return value


def variables(value: object, field: str = "variables") -> dict[str, str]:
    """Channel variables for Originate: ``{"NAME": "value"}``, names as in dialplan."""
    if not isinstance(value, dict):
        raise _bad(field, 'must be an object of strings, e.g. {"CRM_TICKET": "4711"}')
    if len(value) > MAX_VARIABLES:
        raise _bad(field, f"at most {MAX_VARIABLES} variables")
    out: dict[str, str] = {}
    for name, item in value.items():
        if not is_variable(name):
            raise _bad(
                field,
                f"variable name {name[:40]!r} is invalid: use 1 to 64 of A-Za-z0-9_, "
                "not starting with a digit",
            )
        out[name] = text(item, f"{field}.{name}", max_length=MAX_VARIABLE_VALUE)
    return out


def boolean(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(field, "must be true or false")
    return value


def integer(value: object, field: str, *, minimum: int, maximum: int) -> int:
    # bool is an int in Python; JSON true is not a penalty. 3.0 is an integer in JSON
    # Schema (and to JavaScript), so it is one here too.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(field, "must be an integer")
    if not minimum <= value <= maximum:
        raise _bad(field, f"must be between {minimum} and {maximum}")
    return value


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_json_object(request: IRequest) -> dict[str, Any]:
    """The request body as a JSON object; no body at all is ``{}``.

    A body needs ``Content-Type: application/json`` (415 otherwise, a missing type
    included): a browser sends a cross-site request without a CORS preflight only with a
    "simple" type (none, text/plain, form), so this is what keeps another site's page
    from driving the API. Every string in the document, keys included, must be
    encodable (no lone surrogate such as ``"\\ud800"``), checked here once for all fields.

    The site (:mod:`pbxis.web.site`) refuses an oversized body while it arrives; the
    size check here only protects callers that serve the app on a plain ``Site``.
    """
    content = request.content
    body = content.read(MAX_BODY_BYTES + 1) if content is not None else b""
    if not body:
        return {}
    raw_type = request.getHeader(b"content-type")
    content_type = raw_type.decode("latin-1") if isinstance(raw_type, bytes) else (raw_type or "")
    if not _is_json(content_type):
        raise ApiError(415, "unsupported_media_type", "send the body as Content-Type: application/json")
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return {}
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ApiError(400, "invalid_json", f"the body is not valid UTF-8 JSON ({_short(e)})") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    bad = _unencodable(document)
    if bad is not None:
        raise _bad(bad[:80], "must be valid Unicode text (a lone surrogate such as \\ud800 is not)")
    return document


def _unencodable(document: object, path: str = "") -> str | None:
    """The path of the first string (or key) in ``document`` that is not valid UTF-8 text.

    JSON's ``\\uXXXX`` escapes can spell half a surrogate pair, which Python decodes to
    a ``str`` that cannot be encoded again; anything downstream that encodes it (an
    AMI header, a log line, the hub's JSON) would fail far from the cause.
    """
    stack: list[tuple[str, object]] = [(path, document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return where or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else str(key)
                if not _encodable(key):
                    return where or "body"
                stack.append((name, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None


def _encodable(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__


class Fields:
    """Typed access to a JSON object's fields that refuses unknown keys up front.

    A typo (``"memberame"``) silently ignored is a bug report a week later; an
    immediate 400 naming the field is not.
    """

    def __init__(self, document: Mapping[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(document) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise ApiError(
                400,
                "unknown_field",
                f"unknown field {unknown[0]!r}"[:120] + f"; allowed fields: {known}",
            )
        self._document = document

    def get(self, key: str, check: Callable[[object, str], Any], default: Any = None) -> Any:
        """``check(value, key)`` for a present, non-null field; ``default`` otherwise."""
        value = self._document.get(key)
        if value is None:
            return default
        return check(value, key)
