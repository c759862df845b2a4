"""Building Asterisk's responses and event lists, byte-compatible with manager.c.

``ActionID`` is the second line of a response; list items carry it at the end
(queue lists, Status) or first (ExtensionStateList, DeviceStateList,
CoreShowChannels), exactly where Asterisk 20 puts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.defer import Deferred

from ..ami.message import Message
from .headers import Pairs

__all__ = ["Reply", "error", "event_list", "list_item", "response", "success", "truthy"]

_TRUE = {"yes", "true", "y", "t", "1", "on"}


@dataclass
class Reply:
    """What a handler answers: messages to write, and how the session goes on."""

    messages: list[Message] = field(default_factory=list)
    close: bool = False
    #: seconds to wait before writing (Asterisk sleeps 1 s on a failed login)
    delay: float = 0.0
    #: written right after the response, bypassing filters (login's FullyBooted)
    direct: list[Message] = field(default_factory=list)
    #: a synchronous Originate: fires with the response once the call is decided
    deferred: Deferred[list[Message]] | None = None


def response(msg: Message, status: str, *pairs: tuple[str, str]) -> Message:
    head: Pairs = [("Response", status)]
    if msg.action_id is not None:
        head.append(("ActionID", msg.action_id))
    return Message([*head, *pairs])


def success(msg: Message, text: str | None = None, *pairs: tuple[str, str]) -> Reply:
    extra = ((("Message", text),) if text is not None else ()) + pairs
    return Reply([response(msg, "Success", *extra)])


def error(msg: Message, text: str) -> Reply:
    return Reply([response(msg, "Error", ("Message", text))])


def list_item(msg: Message, event: str, pairs: Pairs, *, id_first: bool = False) -> Message:
    aid = [("ActionID", msg.action_id)] if msg.action_id is not None else []
    body = [*aid, *pairs] if id_first else [*pairs, *aid]
    return Message([("Event", event), *body])


def event_list(
    msg: Message, text: str, complete: str, items: list[Message], *extra: tuple[str, str]
) -> Reply:
    start = response(msg, "Success", ("EventList", "start"), ("Message", text))
    aid = [("ActionID", msg.action_id)] if msg.action_id is not None else []
    end = Message(
        [
            ("Event", complete),
            *aid,
            ("EventList", "Complete"),
            ("ListItems", str(len(items))),
            *extra,
        ]
    )
    return Reply([start, *items, end])


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE
