"""The PBX's moving parts as plain data: channels, bridges, queue members, queues.

No clock, no I/O: the flows in :mod:`.calls` mutate these and ask
:mod:`.headers` to print them the way Asterisk does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from . import codes
from .config import PhoneConfig

__all__ = ["Bridge", "Channel", "Member", "QueueCaller", "QueueState", "QueuedCall"]


@dataclass
class Channel:
    """One channel, with exactly the fields of Asterisk's standard channel header."""

    name: str
    uniqueid: str
    linkedid: str
    state: int = codes.DOWN
    cid_num: str = "<unknown>"
    cid_name: str = "<unknown>"
    conn_num: str = "<unknown>"
    conn_name: str = "<unknown>"
    context: str = ""
    exten: str = ""
    priority: int = 1
    created: float = 0.0
    application: str = ""
    app_data: str = ""
    bridge: str = ""
    on_hold: bool = False
    language: str = "en"
    account_code: str = ""

    @property
    def tech(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def device(self) -> str:
        """``SIP/1001-0000000a`` -> ``SIP/1001``; Local channels -> ``Local/x@ctx``."""
        base = self.name.rsplit(";", 1)[0] if self.tech == "Local" else self.name
        return base.rsplit("-", 1)[0]


@dataclass
class Bridge:
    uniqueid: str
    technology: str = "simple_bridge"
    channels: list[Channel] = field(default_factory=list)


@dataclass
class Member:
    """A queue member; ``Status`` is the device state of ``state_interface``."""

    queue: str
    interface: str
    name: str
    state_interface: str
    membership: str = "dynamic"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: bool = False
    paused: bool = False
    paused_reason: str = ""
    ringinuse: int = 0
    wrapuptime: int = 0


@dataclass
class QueueCaller:
    """A caller waiting in a queue (the ``;2`` Local channel in the lab)."""

    channel: Channel
    joined: float
    original_position: int
    call: QueuedCall  # the flow that owns it (a customer.CustomerCall)


class QueuedCall(Protocol):
    """What app_queue's distribution needs from a waiting call."""

    done: bool

    @property
    def ringing(self) -> bool: ...

    def ring(self, m: Member, phone: PhoneConfig, *, more: bool = False) -> None: ...


@dataclass
class QueueState:
    name: str
    strategy: str
    timeout: float
    retry: float
    members: dict[str, Member] = field(default_factory=dict)
    callers: list[QueueCaller] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    holdtime: int = 0
    talktime: int = 0
    rr_last: str | None = None
    within_sl: int = 0
    abandoned_within_sl: int = 0
    service_level: int = 20

    def record_connected(self, hold: int) -> None:
        """An agent answered: app_queue's ``recalc_holdtime`` runs now, before AgentConnect,
        a running average ``(old * 3 + new) / 4``."""
        self.holdtime = (self.holdtime * 3 + hold) // 4

    def record_completed(self, hold: int, talk: int) -> None:
        """The call ended (``update_queue``): completed, within the service level as
        decided at the answer, and the talk time's running average."""
        self.completed += 1
        if hold <= self.service_level:
            self.within_sl += 1
        self.talktime = (self.talktime * 3 + talk) // 4

    def record_abandoned(self, waited: int) -> None:
        """``record_abandoned``: every unanswered exit that sends QueueCallerAbandon."""
        self.abandoned += 1
        if waited <= self.service_level:
            self.abandoned_within_sl += 1
