"""What every call flow shares: the OriginateResponse, timers, dial events, hold.

The flows themselves live in :mod:`.customer` (a customer in a queue) and
:mod:`.click2call` (an agent's originated call); :mod:`.center` runs app_queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall

from . import codes
from .headers import Pairs, channel_header
from .model import Channel, QueueState
from .pbx import PBX

__all__ = ["CID_PRES", "Flow", "FlowHost", "Origin", "Timers", "dial_event", "hold"]

CID_PRES = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")


@dataclass
class Origin:
    """The Originate action a flow answers with an ``OriginateResponse`` (Async only)."""

    action_id: str | None
    channel: str
    context: str = ""
    exten: str = ""
    application: str = ""
    data: str = ""
    cid_num: str = "<unknown>"
    cid_name: str = "<unknown>"
    asynchronous: bool = True
    on_result: Callable[[bool], None] | None = None

    def response(self, pbx: PBX, reason: int, ch: Channel | None) -> None:
        if self.on_result is not None:
            self.on_result(reason == codes.REASON_ANSWERED)
        if not self.asynchronous:
            return
        pairs: Pairs = []
        if self.action_id is not None:
            pairs.append(("ActionID", self.action_id))
        pairs.append(("Response", "Success" if reason == codes.REASON_ANSWERED else "Failure"))
        pairs.append(("Channel", ch.name if ch is not None else self.channel))
        if self.application:
            pairs += [("Application", self.application), ("Data", self.data)]
        else:
            pairs += [("Context", self.context), ("Exten", self.exten)]
        pairs += [
            ("Reason", str(reason)),
            ("Uniqueid", ch.uniqueid if ch is not None else "<unknown>"),
            ("CallerIDNum", self.cid_num),
            ("CallerIDName", self.cid_name),
        ]
        pbx.emit("OriginateResponse", pairs)


class Flow(Protocol):
    """What :class:`CallCenter` needs from a call flow."""

    timers: Timers
    done: bool

    def hangup_channel(self, ch: Channel, cause: int) -> None: ...

    def hold(self, ch: Channel, on: bool) -> None: ...


class FlowHost(Protocol):
    """What a flow needs from the live-call registry (:class:`.center.CallCenter`)."""

    pbx: PBX

    def own(self, flow: Flow, *channels: Channel) -> None: ...

    def finished(self, flow: Flow) -> None: ...

    def dispatch(self, q: QueueState) -> None: ...


class Timers:
    """The flow's pending ``callLater``s, so hanging up cancels whatever was planned."""

    def __init__(self, pbx: PBX) -> None:
        self._clock = pbx.clock
        self._calls: list[IDelayedCall] = []

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
        call = self._clock.callLater(max(delay, 0.0), fn, *args)
        self._calls.append(call)
        return call

    def cancel(self) -> None:
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls.clear()


def dial_event(pbx: PBX, name: str, caller: Channel | None, dest: Channel, *extra: tuple[str, str]) -> None:
    pairs = channel_header(caller) if caller is not None else []
    pbx.emit(name, [*pairs, *channel_header(dest, "Dest"), *extra])


def hold(pbx: PBX, ch: Channel, on: bool) -> None:
    """The agent's phone put the call on hold (or took it off): Hold/Unhold, hint 16."""
    if ch.on_hold == on or ch.state != codes.UP:
        return
    ch.on_hold = on
    if on:
        pbx.channel_event("Hold", ch, ("MusicClass", "default"))
    else:
        pbx.channel_event("Unhold", ch)
    pbx.refresh_device(ch.device)
