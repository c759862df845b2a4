"""The live calls and app_queue's member selection (ringall, rrmemory, retries)."""

from __future__ import annotations

from . import codes
from .config import PhoneConfig
from .flow import Flow, hold
from .model import Channel, Member, QueueState
from .pbx import PBX

__all__ = ["CallCenter"]


class CallCenter:
    """The live calls and app_queue's member selection."""

    def __init__(self, pbx: PBX) -> None:
        self.pbx = pbx
        self.flows: list[Flow] = []
        self.owner: dict[str, Flow] = {}

    def own(self, flow: Flow, *channels: Channel) -> None:
        if flow not in self.flows:
            self.flows.append(flow)
        for ch in channels:
            self.owner[ch.name] = flow

    def finished(self, flow: Flow) -> None:
        if flow in self.flows:
            self.flows.remove(flow)
        for name in [n for n, f in self.owner.items() if f is flow]:
            del self.owner[name]
        self.dispatch_all()

    def reset(self) -> None:
        """Forget every call without events (the PBX is going down)."""
        for flow in self.flows:
            flow.timers.cancel()
            flow.done = True
        self.flows.clear()
        self.owner.clear()

    # -- app_queue -----------------------------------------------------------------------
    def dispatch_all(self) -> None:
        for q in list(self.pbx.queues.values()):
            self.dispatch(q)

    def _free(self, m: Member) -> PhoneConfig | None:
        pbx = self.pbx
        phone = pbx.phone(m.interface)
        if phone is None or m.paused:
            return None
        if pbx.behaviour.get(phone.exten) == "unavailable":
            return None
        if any(c.device == phone.device for c in pbx.channels.values()):
            return None
        return phone

    def dispatch(self, q: QueueState) -> None:
        """Offer waiting callers (in order) to free members; autofill=yes."""
        for entry in list(q.callers):
            call = entry.call
            if call.ringing or call.done:
                continue
            free = [(m, p) for m in q.members.values() if (p := self._free(m)) is not None]
            if not free:
                return
            if q.strategy == "rrmemory":
                names = [m.interface for m, _ in free]
                order = list(q.members)
                start = order.index(q.rr_last) + 1 if q.rr_last in order else 0
                rotated = order[start:] + order[:start]
                pick = next(i for i in rotated if i in names)
                free = [x for x in free if x[0].interface == pick]
                q.rr_last = pick
            for i, (m, phone) in enumerate(free):
                call.ring(m, phone, more=i < len(free) - 1)

    # -- agent actions -------------------------------------------------------------------
    def agent_channel(self, agent: str) -> Channel | None:
        phone = self.pbx.config.phone(agent)
        if phone is None:
            return None
        device = phone.device
        chans = [c for c in self.pbx.channels.values() if c.device == device]
        up = [c for c in chans if c.state == codes.UP]
        found = up or chans
        return found[0] if found else None

    def hangup(self, ch: Channel, cause: int = codes.NORMAL_CLEARING) -> bool:
        flow = self.owner.get(ch.name)
        if flow is None:
            self.pbx.hangup(ch, cause)
            self.pbx.refresh_device(ch.device)
            return True
        flow.hangup_channel(ch, cause)
        return True

    def hold(self, agent: str, on: bool) -> None:
        ch = self.agent_channel(agent)
        if ch is None:
            raise LookupError(f"agent {agent} has no call")
        flow = self.owner.get(ch.name)
        if flow is not None:
            flow.hold(ch, on)
        else:
            hold(self.pbx, ch, on)
