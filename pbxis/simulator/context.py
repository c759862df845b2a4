"""The narrow seams between the simulator's parts, instead of the ``Simulator`` façade.

Action handlers see an :class:`ActionContext` (the PBX, the live calls, the
configuration and the credentials) and a :class:`SessionState` (the asking
session's login, mask and filters); an AMI session sees a :class:`SessionHost`
(where to attach itself, the action table, the clock). The façade satisfies all of
them, but no handler or session imports it, the way :mod:`pbxis.ami` hands its
links a ``LinkHandler`` rather than the engine. This keeps the import graph one
way: ``session`` -> ``actions`` -> handlers -> ``pbx``/``center`` -> flows -> model.

A new action is a function with the :data:`Handler` signature in its own module,
listed in that module's ``ACTIONS`` table and merged by :func:`.actions.action_table`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, MutableMapping
from typing import Protocol

from twisted.internet.interfaces import IReactorTime

from ..ami.message import Message
from .center import CallCenter
from .config import SimulatorConfig
from .filters import EventFilter
from .pbx import PBX
from .replies import Reply

__all__ = ["ActionContext", "EventSink", "Handler", "SessionHost", "SessionState"]


class SessionState(Protocol):
    """The per-connection facts an action may read or change."""

    authenticated: bool
    username: str | None
    challenge: str | None
    mask: frozenset[str]
    filters: list[EventFilter]


class ActionContext(Protocol):
    """What an action handler may use; nothing about sockets or other sessions."""

    config: SimulatorConfig
    pbx: PBX
    center: CallCenter
    rng: random.Random
    username: str
    secret: str
    booted: bool
    shutting_down: bool


#: An AMI action: context, the asking session and the action in; the reply out.
Handler = Callable[[ActionContext, SessionState, Message], Reply]


class EventSink(Protocol):
    """A session as the event publisher sees it."""

    def deliver(self, message: Message, event_class: str, text: str) -> None: ...

    def stall(self, on: bool) -> None: ...


class SessionHost(ActionContext, Protocol):
    """What an AMI session needs from the PBX it is connected to."""

    clock: IReactorTime
    stalled: bool
    #: lower-case action name -> handler; the personality's action set
    actions: MutableMapping[str, Handler]

    def attach(self, session: EventSink) -> None: ...

    def detach(self, session: EventSink) -> None: ...
