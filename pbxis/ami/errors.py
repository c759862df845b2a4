"""Why an AMI action did not succeed. The HTTP layer maps each to a status."""

from __future__ import annotations

from .message import Message

__all__ = [
    "AMIError",
    "ActionFailed",
    "ActionTimeout",
    "AuthenticationFailed",
    "ConnectionLost",
    "NotConnected",
]


class AMIError(Exception):
    """Base class for every failure of an AMI action."""


class ActionFailed(AMIError):
    """Asterisk answered ``Response: Error``. ``message`` is Asterisk's own text."""

    def __init__(self, action: str, message: str, response: Message | None = None) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message
        self.response = response


class NotConnected(AMIError):
    """No logged-in AMI link right now; nothing was sent."""


class ConnectionLost(AMIError):
    """The link dropped after the action was sent; it may or may not have run."""


class ActionTimeout(AMIError):
    """Asterisk did not answer within the action's timeout; it may still run."""


class AuthenticationFailed(AMIError):
    """Asterisk refused our username/secret (``Authentication failed``)."""
