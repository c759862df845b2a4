"""What the command API asks of Asterisk, with no HTTP in sight.

Each command is one AMI action. Asterisk answers refusals with English text
(``Unable to add interface: Already there``); this module is the one place that reads
those texts and turns them into :class:`CommandError` subclasses the web layer maps to
statuses. Texts are Asterisk 20's (apps/app_queue.c, main/manager.c), checked against
the captures in ``shared/ami/captures`` (login, logoff, pause, originate_fail).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .ami.client import ActionSender
from .ami.errors import ActionFailed, ActionTimeout, ConnectionLost, NotConnected
from .ami.parser import LocalProtocolError
from .config import AgentsConfig
from .errors import (
    AlreadyLoggedIn,
    CommandError,
    Conflict,
    MemberNotDynamic,
    NotLoggedIn,
    PbxRefused,
    PbxTimeout,
    PbxUnavailable,
    UnknownQueue,
    UnsafeInput,
)

__all__ = [
    "ActionSender",
    "CommandError",
    "Commands",
    "Conflict",
    "PbxRefused",
    "PbxTimeout",
    "PbxUnavailable",
    "UnknownQueue",
    "UnsafeInput",
    "escape_variable_value",
]


class OriginateNotes(Protocol):
    """The part of the tracker that must hear of an originate before Asterisk does."""

    def note_originate(self, action_id: str, agent: str, number: str) -> None: ...


# (substring of Asterisk's message, error factory), first match wins. "No such queue"
# comes first: "Unable to remove interface from queue: No such queue" must not read
# as anything else.
_QUEUE_ERRORS: tuple[tuple[str, Callable[[str, str], CommandError]], ...] = (
    ("No such queue", lambda a, q: UnknownQueue(f"Asterisk has no queue {q!r}; check queues.conf")),
    (
        "Already there",
        lambda a, q: AlreadyLoggedIn(f"agent {a} is already a member of queue {q}; nothing to do"),
    ),
    ("Not there", lambda a, q: NotLoggedIn(f"agent {a} is not a member of queue {q}")),
    (
        "Member not dynamic",
        lambda a, q: MemberNotDynamic(
            f"agent {a} is a static member of queue {q} (queues.conf); remove it there, not through the API"
        ),
    ),
    (
        "Interface not found",
        lambda a, q: NotLoggedIn(f"agent {a} is not a member of queue {q}; log in first"),
    ),
)

# Asterisk splits a Variable header on commas (manager.c man_do_variable_value ->
# AST_STANDARD_APP_ARGS), honouring quotes, brackets and backslash escapes, and drops
# the quote and backslash characters. Escaping each of them makes the value literal.
_ARG_SPECIAL = re.compile(r'([\\",()\[\]])')


def escape_variable_value(value: str) -> str:
    """``value`` escaped so Asterisk sets exactly it, commas and quotes included."""
    return _ARG_SPECIAL.sub(r"\\\1", value)


_DEFAULT_AGENTS = AgentsConfig()


def _new_originate_id() -> str:
    return f"originate-{secrets.token_hex(8)}"


class Commands:
    """Agent commands as AMI actions; every method raises only :class:`CommandError`.

    ``settings`` is the ``[agents]`` section as is: ``interface`` names the agent's
    queue-member interface, which is also the channel originate rings first
    (``PJSIP/{agent}``, ``SIP/{agent}``); ``caller_id`` (with ``{agent}`` and ``{name}``)
    is the CallerID of originated calls when the client gives none.
    """

    def __init__(
        self,
        ami: ActionSender,
        tracker: OriginateNotes,
        settings: AgentsConfig = _DEFAULT_AGENTS,
        *,
        new_action_id: Callable[[], str] = _new_originate_id,
    ) -> None:
        # Format the templates once now: a typo in config fails at start, not per call.
        settings.interface.format(agent="1001")
        caller_id_template = settings.caller_id or None
        if caller_id_template is not None:
            caller_id_template.format(agent="1001", name="Alice")
        self._ami = ami
        self._tracker = tracker
        self._interface_template = settings.interface
        self._context = settings.originate_context
        self._timeout_ms = int(settings.originate_timeout * 1000)
        self._caller_id_template = caller_id_template
        self._new_action_id = new_action_id

    def interface(self, agent: str) -> str:
        return self._interface_template.format(agent=agent)

    async def originate(
        self,
        agent: str,
        number: str,
        *,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> str:
        """Ring the agent's phone, then dial ``number``; return the ActionID once queued.

        ``name`` (the agent's display name) fills the CallerID template. The tracker
        hears of the ActionID before Asterisk does, so an ``OriginateResponse``
        failure, however fast, becomes ``originateFailed``.
        """
        if caller_id is None and self._caller_id_template is not None:
            caller_id = self._caller_id_template.format(agent=agent, name=name or agent)
        headers: list[tuple[str, str]] = [
            ("Channel", self.interface(agent)),
            ("Context", self._context),
            ("Exten", number),
            ("Priority", "1"),
        ]
        if caller_id is not None:
            headers.append(("CallerID", caller_id))
        headers += [("Timeout", str(self._timeout_ms)), ("Async", "true")]
        headers += [
            ("Variable", f"{name}={escape_variable_value(value)}")
            for name, value in (variables or {}).items()
        ]
        action_id = self._new_action_id()
        self._tracker.note_originate(action_id, agent, number)
        await self._send("Originate", headers, action_id=action_id)
        return action_id

    async def queue_login(
        self,
        agent: str,
        queue: str,
        *,
        penalty: int = 0,
        paused: bool = False,
        member_name: str | None = None,
    ) -> None:
        interface = self.interface(agent)
        headers = [
            ("Queue", queue),
            ("Interface", interface),
            ("MemberName", member_name if member_name is not None else agent),
            ("Penalty", str(penalty)),
            ("StateInterface", interface),
            ("Paused", "true" if paused else "false"),
        ]
        await self._queue_action("QueueAdd", headers, agent, queue)

    async def queue_logoff(self, agent: str, queue: str) -> None:
        headers = [("Queue", queue), ("Interface", self.interface(agent))]
        await self._queue_action("QueueRemove", headers, agent, queue)

    async def queue_pause(self, agent: str, queue: str, *, paused: bool, reason: str | None = None) -> None:
        headers = [
            ("Queue", queue),
            ("Interface", self.interface(agent)),
            ("Paused", "true" if paused else "false"),
        ]
        if reason is not None:
            headers.append(("Reason", reason))
        await self._queue_action("QueuePause", headers, agent, queue)

    async def _queue_action(self, name: str, headers: list[tuple[str, str]], agent: str, queue: str) -> None:
        try:
            await self._send(name, headers)
        except PbxRefused as refused:
            for needle, error in _QUEUE_ERRORS:
                if needle in refused.message:
                    raise error(agent, queue) from None
            raise

    async def send(self, name: str, headers: list[tuple[str, str]], *, action_id: str | None = None) -> Any:
        """One AMI action with this module's error mapping (for :mod:`pbxis.call_control`)."""
        return await self._send(name, headers, action_id=action_id)

    async def _send(self, name: str, headers: list[tuple[str, str]], *, action_id: str | None = None) -> Any:
        try:
            return await self._ami.send_action(name, headers, action_id=action_id)
        except LocalProtocolError as e:
            raise UnsafeInput(f"refused to send {name}: {e}") from None
        except ActionFailed as e:
            raise PbxRefused(f"Asterisk refused {name}: {e.message}") from None
        except NotConnected:
            raise PbxUnavailable(
                "Asterisk is not connected right now; nothing was sent, retry later"
            ) from None
        except ConnectionLost:
            raise PbxUnavailable(
                f"the link to Asterisk dropped while {name} was pending; it may or may not "
                "have run; check the agent's state before retrying"
            ) from None
        except ActionTimeout:
            raise PbxTimeout(
                f"Asterisk did not answer {name} in time; it may still run; check the "
                "agent's state before retrying"
            ) from None
