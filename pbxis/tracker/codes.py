"""Asterisk's numeric codes, spelled the way the contract spells them.

Three tables matter: device states (QueueMemberStatus ``Status``), extension states
(ExtensionStatus ``Status``, a bit field) and the originate failure reasons
(OriginateResponse ``Reason`` and the outgoing leg's ``DialStatus``). Unknown codes map
to ``unknown``/``failed`` rather than raising: a newer Asterisk must not crash us.
"""

from __future__ import annotations

from typing import Final

from ..events import MEMBER_STATUSES

__all__ = [
    "dial_failure_reason",
    "extension_status",
    "hangup_failure_reason",
    "member_status",
    "originate_reason",
    "to_int",
    "truth",
]


def to_int(value: str | None, default: int = 0) -> int:
    """``int(value)`` for AMI numbers, ``default`` for anything else (empty, junk)."""
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        return default


def truth(value: str | None) -> bool:
    """Asterisk's ``ast_true``: ``1``, ``yes``, ``true``, ``on`` (any case)."""
    if value == "0":  # what Asterisk writes for booleans (Paused, InCall, Ringinuse)
        return False
    if value == "1":
        return True
    return (value or "").strip().lower() in {"1", "yes", "true", "on", "y", "t"}


def member_status(code: int) -> str:
    """Device state 0..8 (``enum ast_device_state``) -> contract vocabulary."""
    if 0 <= code < len(MEMBER_STATUSES):
        return MEMBER_STATUSES[code]
    return "unknown"


# Extension state bits (include/asterisk/pbx.h).
_INUSE, _BUSY, _UNAVAILABLE, _RINGING, _ONHOLD = 1, 2, 4, 8, 16


def extension_status(code: int | None) -> str:
    """Extension state bit field -> contract vocabulary.

    The field combines bits (``9`` = in use and ringing, ``17`` = in use on hold), so
    we read it the way a phone's BLF lamp would: ringing first, then hold, busy, in use.
    """
    if code is None or code < 0:
        return "unknown"
    if code == 0:
        return "not_inuse"
    if code & _UNAVAILABLE:
        return "unavailable"
    if code & _RINGING:
        return "ringinuse" if code & (_INUSE | _BUSY | _ONHOLD) else "ringing"
    if code & _ONHOLD:
        return "onhold"
    if code & _BUSY:
        return "busy"
    if code & _INUSE:
        return "inuse"
    return "unknown"


# OriginateResponse Reason: control frame numbers (main/pbx.c pbx_dial_reason).
_ORIGINATE_REASONS: Final = {5: "busy", 3: "no_answer", 8: "congestion"}


def originate_reason(code: int) -> str:
    """OriginateResponse ``Reason`` -> ``busy``/``no_answer``/``congestion``/``failed``."""
    return _ORIGINATE_REASONS.get(code, "failed")


# Hangup Cause of the agent's own leg of an Originate that failed (Q.850).
_HANGUP_FAILURES: Final = {17: "busy", 18: "no_answer", 19: "no_answer", 34: "congestion", 42: "congestion"}


def hangup_failure_reason(cause: int) -> str:
    """The ``originateFailed`` reason a failed leg's Hangup ``Cause`` gives (default ``failed``).

    Asterisk 21+ answers an Originate whose phone said 486 with ``Reason: 0`` (PJSIP
    hangs the channel up before any BUSY control frame reaches the originate thread):
    busy is only in ``DialEnd DialStatus: BUSY`` and ``Hangup Cause: 17``.
    """
    return _HANGUP_FAILURES.get(cause, "failed")


_DIAL_FAILURES: Final = {
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CONGESTION": "congestion",
    "CHANUNAVAIL": "failed",
}


def dial_failure_reason(dial_status: str | None) -> str | None:
    """A DialEnd ``DialStatus`` that means the dialled number was not reached, else ``None``.

    ``CANCEL``/``ABORT`` are our own side giving up, ``ANSWER``/``CONTINUE``/``GOTO`` are
    not failures.
    """
    return _DIAL_FAILURES.get((dial_status or "").strip().upper())


# Contract's extension vocabulary for completeness checks in tests.
EXTENSION_CODES: Final = (-2, -1, 0, 1, 2, 4, 8, 9, 16, 17)
