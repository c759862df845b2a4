"""Serializing actions to the wire, refusing anything that could inject headers.

A value with CR or LF in it would end the header early and let the rest be read as
new headers (``Number: 123\\r\\nAction: Command``): a CRM user could run any AMI action
with our credentials. So every key and value is checked here, at the last point before
the socket, whatever validation the layers above already did.
"""

from __future__ import annotations

from .message import HeaderInput, Message, normalise_headers
from .parser import LocalProtocolError

__all__ = ["MAX_LINES", "MAX_LINE_BYTES", "check_header", "format_action"]

MAX_LINE_BYTES = 1024
"""Asterisk discards longer lines of an action (``Failed to parse message: line too long``)."""
MAX_LINES = 128
"""Asterisk refuses actions with more lines (``Too many lines in message``)."""

_FORBIDDEN = ("\r", "\n")


def check_header(key: str, value: str) -> None:
    """Raise :class:`LocalProtocolError` unless ``key: value`` is one safe AMI line."""
    if not key or ":" in key or key != key.strip():
        raise LocalProtocolError(f"invalid AMI header name {key!r}")
    for ch in _FORBIDDEN:
        if ch in key or ch in value:
            raise LocalProtocolError(f"AMI header {key!r} holds a CR or LF; refused (header injection)")
    if "\x00" in key or "\x00" in value:
        raise LocalProtocolError(f"AMI header {key!r} holds a NUL byte; refused")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no bytes could carry it
        raise LocalProtocolError(f"AMI header {key!r} is not valid Unicode text; refused") from None
    if len(key) + 2 + len(encoded) + 2 > MAX_LINE_BYTES:
        raise LocalProtocolError(
            f"AMI header {key!r} is longer than Asterisk's {MAX_LINE_BYTES}-byte line limit"
        )


def format_action(name: str, headers: HeaderInput | None = None, action_id: str | None = None) -> bytes:
    """``Action: name``, ``ActionID``, then ``headers``, as CRLF-framed bytes.

    Raises :class:`LocalProtocolError` for CR/LF/NUL anywhere, over-long lines or too
    many lines: nothing is written in that case.
    """
    pairs: list[tuple[str, str]] = [("Action", name)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    for key, value in normalise_headers(headers):
        if key.lower() in ("action", "actionid"):
            raise LocalProtocolError(f"header {key!r} is set by the AMI client itself")
        pairs.append((key, value))
    if len(pairs) > MAX_LINES:
        raise LocalProtocolError(f"an AMI action may hold at most {MAX_LINES} lines")
    for key, value in pairs:
        check_header(key, value)
    return Message._trusted(tuple(pairs)).to_bytes()
