"""A supervisor spying on an agent's call: the lab's ``pbxis-spy`` dialplan.

pbxis originates the supervisor's phone into ``<spy_context>`` at ``listen``,
``whisper`` or ``barge`` with ``PBXIS_SPY`` set to the agent's channel; the dialplan the
README gives runs ``ChanSpy(${PBXIS_SPY},qE)`` (``qwE``, ``qBE``). The supervisor's phone
rings as for any originate (:class:`~.click2call.AgentCall`); once it answers, app_chanspy
publishes ``ChanSpyStart`` (``Spyer…`` and ``Spyee…`` channel snapshots, apps/app_chanspy.c
``publish_chanspy_message``), and ``ChanSpyStop`` when the spied channel goes (option
``E``), after which the dialplan ends and the supervisor's channel hangs up.
"""

from __future__ import annotations

from . import codes
from .click2call import AgentCall
from .config import PhoneConfig
from .flow import FlowHost, Origin
from .headers import channel_header

__all__ = ["SPY_CONTEXT", "SPY_EXTENS", "SpyCall"]

SPY_CONTEXT = "pbxis-spy"
SPY_EXTENS = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}


class SpyCall(AgentCall):
    """Ring the supervisor, then ``ChanSpy`` on ``spied`` until that channel hangs up."""

    def __init__(
        self, center: FlowHost, phone: PhoneConfig, origin: Origin, timeout: float, spied: str
    ) -> None:
        super().__init__(center, phone, origin, timeout, talk_time=0.0)
        self.spied = spied

    def _dial_out(self, number: str) -> None:
        pbx, ch = self.pbx, self.ch
        ch.context, ch.exten, ch.priority = SPY_CONTEXT, number, 1
        ch.application, ch.app_data = "ChanSpy", f"{self.spied},{SPY_EXTENS.get(number, 'qE')}"
        spyee = pbx.find_channel(self.spied)
        if spyee is None:  # nothing to spy on any more: ChanSpy returns, the dialplan ends
            self._end_agent(codes.NORMAL_CLEARING)
            return
        pbx.emit("ChanSpyStart", [*channel_header(ch, "Spyer"), *channel_header(spyee, "Spyee")])
        self.answered = True
        self.timers.later(1.0, self._watch, spyee.name)

    def _watch(self, name: str) -> None:
        pbx = self.pbx
        spyee = pbx.channels.get(name)
        if spyee is not None:
            self.timers.later(1.0, self._watch, name)
            return
        pbx.emit("ChanSpyStop", [*channel_header(self.ch, "Spyer")])
        self._end_agent(codes.NORMAL_CLEARING)

    def hangup_channel(self, ch: object, cause: int) -> None:
        if self.done:
            return
        if self.answered:
            self.pbx.emit("ChanSpyStop", [*channel_header(self.ch, "Spyer")])
            self._end_agent(cause or codes.NORMAL_CLEARING)
            return
        super().hangup_channel(ch, cause)  # type: ignore[arg-type]
