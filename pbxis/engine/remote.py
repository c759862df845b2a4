"""Commands run on another node: what a web node sends and how the answer is read back.

A node without an AMI link (``[node] role = "web"``) hands originate and queue actions
to a :class:`CommandRelay` (in the daemon: :class:`pbxis.store.redis_commands.CommandSender`
over Redis); the node holding the link runs them with :meth:`CallCenter.execute_remote
<pbxis.engine.CallCenter.execute_remote>`, through the same checks and ``[originate]``
policy as a local command. A failure comes back as the same typed error
(:mod:`pbxis.errors`), so the web layer cannot tell which path ran.

The relay's own failures are typed errors too: no collector is
:class:`~pbxis.errors.PbxUnavailable` (503, ``Retry-After``), no answer in time is
:class:`~pbxis.errors.PbxTimeout` (504) saying whether the command may have run.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from pbxis import errors
from pbxis.errors import CommandError, Conflict, PbxRefused, PbxUnavailable, RateLimited

__all__ = ["ORIGINATE", "QUEUE", "CommandRelay", "error_from_reply", "result_of"]

ORIGINATE: Final = "originate"
QUEUE: Final = "queue"

#: seconds a web node waits beyond the AMI action timeout: the two Redis round trips
#: and the collector's turn
RELAY_MARGIN: Final = 2.0


class CommandRelay(Protocol):
    """Where a node without an AMI link sends its commands."""

    async def send(self, kind: str, args: dict[str, Any], timeout: float) -> Any:
        """The executing node's reply: ``{"ok": result}`` or ``{"error": name, "message":
        ..., "code"?, "retry_after"?}``. Raises a :class:`~pbxis.errors.CommandError` when
        the command could not be handed over or answered."""
        ...


def result_of(reply: Any) -> Any:
    """The result in ``reply``, or raise the error it carries, typed as the executing
    node raised it."""
    if isinstance(reply, dict) and "ok" in reply:
        return reply["ok"]
    raise error_from_reply(reply if isinstance(reply, dict) else {})


def error_from_reply(reply: dict[str, Any]) -> CommandError:
    """The :class:`~pbxis.errors.CommandError` an error reply describes."""
    name = str(reply.get("error", ""))
    message = str(reply.get("message", ""))
    cls = getattr(errors, name, None) if name in errors.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, CommandError)):
        # not a domain error: a bug or a fault on the executing node (it is logged there)
        return PbxRefused(f"the collector could not run the command ({name or 'no answer'}: {message})")
    retry_after = reply.get("retry_after")
    if issubclass(cls, (RateLimited, PbxUnavailable)):
        wait = retry_after if isinstance(retry_after, int) and retry_after > 0 else 5
        return cls(message, retry_after=wait)
    if cls is Conflict:
        return Conflict(str(reply.get("code") or "conflict"), message)
    return cls(message)
