"""What the simulated PBX contains: phones, queues, members, the trunk.

``SimulatorConfig.lab()`` reproduces the lab the captures in ``shared/ami/captures``
were recorded with (``shared/ami/asterisk-config``), so a scenario replayed on the
simulator meets the same queues, members and phones; ``lab(ASTERISK_22)`` the same lab
on Asterisk 22 with PJSIP endpoints (``captures-pjsip22``, ``asterisk-config-pjsip22``).
``demo()`` builds a bigger, livelier call center for the browser demo.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .personality import ASTERISK_20, Personality

Behaviour = Literal["answer", "busy", "no_answer", "unavailable"]
BEHAVIOURS: tuple[str, ...] = ("answer", "busy", "no_answer", "unavailable")

__all__ = [
    "BEHAVIOURS",
    "Behaviour",
    "MemberConfig",
    "PhoneConfig",
    "QueueConfig",
    "SimulatorConfig",
]


@dataclass(frozen=True)
class PhoneConfig:
    """An agent phone (a chan_sip peer or a PJSIP endpoint, with a hint in ``hint_context``)."""

    exten: str
    name: str
    behaviour: Behaviour = "answer"
    ring_delay: float = 1.0
    sip_port: int = 5060
    tech: str = "SIP"

    @property
    def device(self) -> str:
        return f"{self.tech}/{self.exten}"


@dataclass(frozen=True)
class MemberConfig:
    """A static queue member (``member =>`` in queues.conf)."""

    interface: str
    name: str
    state_interface: str | None = None
    penalty: int = 0


@dataclass(frozen=True)
class QueueConfig:
    name: str
    strategy: Literal["ringall", "rrmemory"] = "ringall"
    timeout: float = 15.0
    retry: float = 1.0
    members: tuple[MemberConfig, ...] = ()


@dataclass(frozen=True)
class SimulatorConfig:
    """The PBX's fixed configuration; runtime state lives in the simulator.

    ``queues`` is in Asterisk's container order (what ``QueueStatus`` lists first).
    ``personality`` is the Asterisk it plays (version, channel driver); its phones and
    trunk use the personality's technology.
    """

    phones: tuple[PhoneConfig, ...]
    queues: tuple[QueueConfig, ...]
    hint_context: str = "agents"
    trunk: str = "SIP/pstn"
    trunk_port: int = 5080
    monitor_dir: str = "/var/spool/asterisk/monitor"
    monitor_format: str = "wav"
    persistent_members: bool = True
    trunk_answer_delay: float = 1.0
    dial_timeout: float = 30.0
    default_talk: float = 8.0
    boot_time: float = 1.0
    #: manager.conf ``authtimeout``: a session not logged in by then is closed
    auth_timeout: float = 30.0
    personality: Personality = ASTERISK_20
    number_behaviour: dict[str, Behaviour] = field(default_factory=dict)
    #: dynamic members restored at start, as ``persistentmembers=yes`` restores them
    persisted: tuple[tuple[str, MemberConfig], ...] = ()

    def __post_init__(self) -> None:
        tech = self.personality.tech
        wrong = [p.device for p in self.phones if p.tech != tech]
        if not self.trunk.startswith(f"{tech}/") or wrong:
            raise ValueError(
                f"Asterisk {self.personality.asterisk} with {tech}: phones and trunk must be "
                f"{tech}/..., got {', '.join([*wrong, self.trunk][:3])}"
            )

    @property
    def version(self) -> str:
        """``CoreSettings`` AsteriskVersion."""
        return self.personality.version

    def phone(self, exten: str) -> PhoneConfig | None:
        for phone in self.phones:
            if phone.exten == exten:
                return phone
        return None

    @classmethod
    def lab(cls, personality: Personality = ASTERISK_20) -> SimulatorConfig:
        """The shared lab: agents 1001-1003, 1009 always busy, queues sales/support.

        Ring delays are what the lab's SIPp phones did: 1001 answers first, 1002 is
        slower than a one-second originate timeout, 1003 is still ringing when 1001
        takes a ringall call.
        """
        tech = personality.tech
        phones = (
            PhoneConfig("1001", "Agent 1001", "answer", 0.5, 5071, tech),
            PhoneConfig("1002", "Agent 1002", "answer", 1.5, 5072, tech),
            PhoneConfig("1003", "Agent 1003", "answer", 2.0, 5073, tech),
            PhoneConfig("1009", "Busy Phone 1009", "busy", 0.0, 5079, tech),
        )
        queues = (
            QueueConfig("support", "rrmemory"),
            QueueConfig(
                "sales",
                "ringall",
                members=(MemberConfig(f"{tech}/1003", "Agent 1003", f"{tech}/1003"),),
            ),
        )
        return cls(phones=phones, queues=queues, trunk=f"{tech}/pstn", personality=personality)

    @classmethod
    def demo(
        cls,
        agents: Iterable[str] = ("1001", "1002", "1003"),
        queues: Sequence[str] = ("sales", "support"),
        *,
        ring_delay: float = 2.0,
        logged_in: bool = True,
        personality: Personality = ASTERISK_20,
    ) -> SimulatorConfig:
        """A call center for the demo: every agent a phone, queues alternate strategies.

        With ``logged_in`` every agent starts as a dynamic member of every queue (as
        if restored from an earlier run), so customers are answered from the start.
        """
        tech = personality.tech
        phones = tuple(
            PhoneConfig(a, f"Agent {a}", "answer", ring_delay + (i % 3) * 0.5, tech=tech)
            for i, a in enumerate(agents)
        )
        qs = tuple(QueueConfig(q, "ringall" if i % 2 == 0 else "rrmemory") for i, q in enumerate(queues))
        persisted = (
            tuple((q.name, MemberConfig(p.device, p.name, p.device)) for q in qs for p in phones)
            if logged_in
            else ()
        )
        return cls(
            phones=phones, queues=qs, persisted=persisted, trunk=f"{tech}/pstn", personality=personality
        )


def parse_agents(spec: str) -> list[str]:
    """``"1001-1005,2001"`` -> ``["1001", ..., "1005", "2001"]`` (the CLI's ``--agents``)."""
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        if not sep:
            out.append(low)
            continue
        if not (low.isdigit() and high.isdigit()) or int(high) < int(low):
            raise ValueError(f"bad agent range {part!r}")
        if int(high) - int(low) > 1000:
            raise ValueError(f"agent range {part!r} is too large")
        width = len(low)
        out.extend(str(n).zfill(width) for n in range(int(low), int(high) + 1))
    if not out:
        raise ValueError("no agents given")
    return out
