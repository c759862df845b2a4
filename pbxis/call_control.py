"""Controlling the call an agent is on: hang up, transfer, pause the recording, spy.

Each command acts on the agent's *current call as the tracker knows it* (the event
stream, never a guess from channel names): the agent's own channel for a hangup and as
the transferer, the caller's channel whose MixMonitor records a queue call (app_queue
starts it there, reference §3.8), the agent's channel as the one a supervisor spies on.
No call: :class:`~pbxis.commands.Conflict` ``no_call`` (409).

Actions and the Asterisk 20 texts read here (main/manager.c, apps/app_mixmonitor.c):

* ``Hangup`` (``Channel Hungup`` / ``No such channel``);
* ``BlindTransfer`` Channel/Exten/Context (``Transfer succeeded``; ``Channel specified
  does not exist``, ``Transfer invalid`` when the channel is in no bridge, ``Transfer not
  permitted``, ``Transfer failed``). The transferer's bridged peer leaves for
  ``Exten@Context`` and dials the target itself, so its ``DialEnd`` says whether the
  target answered: busy or no answer becomes ``transferFailed``;
* ``Atxfer`` Channel/Exten/Context (``Atxfer successfully queued``): Asterisk dials the
  target through ``Local/<to>@<context>``; the agent talks to the target and completes
  by hanging up (``AttendedTransfer``), or ``CancelAtxfer`` (``CancelAtxfer successfully
  queued``) returns to the caller, reported as ``transferFailed`` ``cancelled``;
* ``MixMonitorMute`` Channel/Direction ``both``/State ``1``|``0`` (``Cannot set mute
  flag`` when the channel has no MixMonitor): ``recordingStatus`` on the agent's stream
  once Asterisk confirmed it;
* ``Originate`` of the supervisor's phone into ``<spy_context>`` at extension
  ``listen``/``whisper``/``barge`` with ``PBXIS_SPY`` = the agent's channel; the dialplan
  there runs ``ChanSpy`` (README), so who may spy is the PBX administrator's decision.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from .commands import Commands, escape_variable_value
from .errors import Conflict, PbxRefused
from .events import AgentEvent
from .tracker import CurrentCall

__all__ = ["SPY_MODES", "TRANSFER_MODES", "CallControl"]

TRANSFER_MODES: Final = ("blind", "attended")
SPY_MODES: Final = ("listen", "whisper", "barge")


class CallTracker(Protocol):
    """What call control needs of the tracker."""

    def current_call(self, agent: str) -> CurrentCall | None: ...
    def note_transfer(
        self,
        action_id: str,
        agent: str,
        to: str,
        *,
        transferee: str | None = None,
        consult: str | None = None,
    ) -> None: ...
    def transfer_cancelled(self, agent: str, action_id: str, to: str, now_ms: int) -> list[AgentEvent]: ...
    def recording_paused(self, agent: str, paused: bool, now_ms: int) -> list[AgentEvent]: ...


def _no_call(agent: str) -> Conflict:
    return Conflict("no_call", f"agent {agent} is on no call right now")


class CallControl:
    """The call-control commands; every method raises only :class:`~pbxis.commands.CommandError`."""

    def __init__(
        self,
        commands: Commands,
        tracker: CallTracker,
        publish: Callable[[Sequence[AgentEvent]], None],
        now_ms: Callable[[], int],
        *,
        transfer_context: str = "agents",
        spy_context: str = "pbxis-spy",
        spy_timeout: float = 30.0,
    ) -> None:
        self._commands = commands
        self._tracker = tracker
        self._publish = publish
        self._now_ms = now_ms
        self._transfer_context = transfer_context
        self._spy_context = spy_context
        self._spy_timeout_ms = int(spy_timeout * 1000)
        # agent -> (action id, target) of its attended transfer in progress (one each)
        self._attended: dict[str, tuple[str, str]] = {}

    def _call(self, agent: str) -> CurrentCall:
        call = self._tracker.current_call(agent)
        if call is None:
            raise _no_call(agent)
        return call

    async def _act(
        self, agent: str, name: str, headers: list[tuple[str, str]], action_id: str | None = None
    ) -> None:
        """Send; a channel Asterisk no longer has means the call ended meanwhile: ``no_call``."""
        try:
            await self._commands.send(name, headers, action_id=action_id)
        except PbxRefused as refused:
            text = refused.message
            if "No such channel" in text or "does not exist" in text:
                raise Conflict("no_call", f"agent {agent}'s call ended before {name} reached it") from None
            if "Transfer invalid" in text:
                raise Conflict(
                    "no_call", f"agent {agent}'s call is not connected (nothing to transfer)"
                ) from None
            if "Cannot set mute flag" in text:
                raise Conflict("not_recording", f"agent {agent}'s call is not being recorded") from None
            raise

    async def hangup(self, agent: str) -> None:
        """Hang up the agent's own leg (the caller is released as after any hangup)."""
        call = self._call(agent)
        await self._act(agent, "Hangup", [("Channel", call.channel)])

    async def transfer(self, agent: str, to: str, mode: str = "blind") -> str:
        """Transfer the agent's caller to ``to`` (an agent's extension or a number)."""
        if mode not in TRANSFER_MODES:
            raise ValueError(f"mode must be one of {TRANSFER_MODES}")
        call = self._call(agent)
        action_id = f"transfer-{secrets.token_hex(8)}"
        headers = [("Channel", call.channel), ("Exten", to), ("Context", self._transfer_context)]
        if mode == "blind":
            self._tracker.note_transfer(action_id, agent, to, transferee=call.peer_id)
            await self._act(agent, "BlindTransfer", headers, action_id)
        else:
            consult = f"Local/{to}@{self._transfer_context}-"
            self._tracker.note_transfer(action_id, agent, to, consult=consult)
            await self._act(agent, "Atxfer", headers, action_id)
            self._attended[agent] = (action_id, to)
        return action_id

    async def cancel_transfer(self, agent: str) -> str:
        """Abandon the agent's attended transfer: back to the caller; ``transferFailed`` cancelled."""
        pending = self._attended.get(agent)
        if pending is None:
            raise Conflict("no_transfer", f"agent {agent} has no attended transfer to cancel")
        call = self._call(agent)
        await self._act(agent, "CancelAtxfer", [("Channel", call.channel)])
        del self._attended[agent]
        action_id, to = pending
        self._publish(self._tracker.transfer_cancelled(agent, action_id, to, self._now_ms()))
        return action_id

    async def recording(self, agent: str, *, paused: bool) -> CurrentCall:
        """Stop (``paused``) or restart writing the call's recording, both directions."""
        call = self._call(agent)
        if call.recorded_channel is None:
            raise Conflict("not_recording", f"agent {agent}'s call is not being recorded")
        headers = [
            ("Channel", call.recorded_channel),
            ("Direction", "both"),
            ("State", "1" if paused else "0"),
        ]
        await self._act(agent, "MixMonitorMute", headers)
        self._publish(self._tracker.recording_paused(agent, paused, self._now_ms()))
        return call

    async def spy(self, agent: str, supervisor: str, mode: str, *, caller_id: str | None = None) -> str:
        """Ring the supervisor's phone; answered, it joins the agent's call in ``mode``."""
        if mode not in SPY_MODES:
            raise ValueError(f"mode must be one of {SPY_MODES}")
        call = self._call(agent)
        action_id = f"spy-{secrets.token_hex(8)}"
        headers = [
            ("Channel", self._commands.interface(supervisor)),
            ("Context", self._spy_context),
            ("Exten", mode),
            ("Priority", "1"),
            ("CallerID", caller_id or f"Spy {agent} <{agent}>"),
            ("Timeout", str(self._spy_timeout_ms)),
            ("Async", "true"),
            ("Variable", f"PBXIS_SPY={escape_variable_value(call.channel)}"),
        ]
        await self._act(agent, "Originate", headers, action_id)
        return action_id
