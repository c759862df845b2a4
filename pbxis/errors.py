"""The typed errors of every domain operation, importable as ``pbxis.<Name>``.

One hierarchy for the library and the HTTP API: :class:`CommandError` carries the
contract's snake_case ``code`` and a message that says what to do; the web layer maps
each class to a status (``pbxis.web.api``). No Twisted, no HTTP here.
"""

from __future__ import annotations

__all__ = [
    "AlreadyLoggedIn",
    "CommandError",
    "Conflict",
    "Forbidden",
    "InvalidArgument",
    "MemberNotDynamic",
    "NotLoggedIn",
    "NumberNotAllowed",
    "PbxRefused",
    "PbxTimeout",
    "PbxUnavailable",
    "RateLimited",
    "UnknownAgent",
    "UnknownPbx",
    "UnknownQueue",
    "UnknownSupervisor",
    "UnsafeInput",
]


class CommandError(Exception):
    """A command did not happen. ``code`` is the contract's snake_case error code."""

    code = "command_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(CommandError, ValueError):
    """A value no Asterisk could accept (a bad name, number, action or parameter)."""

    code = "invalid_field"


class UnsafeInput(InvalidArgument):
    """The AMI serializer refused a value (CR/LF, over-long line) validation let through."""


class UnknownAgent(CommandError, LookupError):
    """The agent is not registered (it never was, was unregistered, or expired)."""

    code = "unknown_agent"


class UnknownSupervisor(CommandError, LookupError):
    """The supervisor is not registered (it never was, was unregistered, or expired)."""

    code = "unknown_supervisor"


class UnknownPbx(CommandError, LookupError):
    """No PBX of that name is configured."""

    code = "unknown_pbx"


class UnknownQueue(CommandError, LookupError):
    code = "unknown_queue"


class Forbidden(CommandError):
    """The caller may not do this (an agent's token outside its own queues, say)."""

    code = "forbidden"


class NumberNotAllowed(Forbidden):
    """The ``[originate]`` number policy refuses this number (toll-fraud guard)."""

    code = "number_not_allowed"


class RateLimited(CommandError):
    """Too many originates; try again after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(CommandError):
    """Asterisk's queue state does not allow it (already a member, not a member...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AlreadyLoggedIn(Conflict):
    def __init__(self, message: str) -> None:
        super().__init__("already_logged_in", message)


class NotLoggedIn(Conflict):
    def __init__(self, message: str) -> None:
        super().__init__("not_logged_in", message)


class MemberNotDynamic(Conflict):
    def __init__(self, message: str) -> None:
        super().__init__("member_not_dynamic", message)


class PbxUnavailable(CommandError):
    """No AMI link, or it dropped mid-action; worth retrying after ``retry_after`` s."""

    code = "pbx_unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PbxTimeout(CommandError):
    code = "pbx_timeout"


class PbxRefused(CommandError):
    """Asterisk said no for a reason pbxis does not know (permissions, dialplan)."""

    code = "pbx_refused"
