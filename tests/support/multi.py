"""Two simulated Asterisks, ``east`` and ``west``, under one in-process daemon.

:func:`start_two` starts two :class:`~pbxis.simulator.Simulator` on loopback ports and
the whole daemon (``PbxisService``, the one ``twistd pbxis`` runs) with a ``[[pbx]]``
table for each, no Redis; HTTP on an ephemeral port. ``stop_link`` and
``restore_link`` take one PBX's Asterisk away (its port closed, its sessions cut) and
bring it back on the same port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.interfaces import IListeningPort

from pbxis.config import parse_config
from pbxis.simulator import Simulator, SimulatorConfig
from pbxis.simulator.personality import personality
from tests.support.stack import Stack

USERNAME = "pbxis"
SECRET = "pbxis-multi-secret"
PBXES = ("east", "west")


@dataclass
class TwoPbx:
    stack: Stack
    sims: dict[str, Simulator]
    ports: dict[str, IListeningPort]
    numbers: dict[str, int] = field(default_factory=dict)

    @property
    def service(self) -> Any:
        return self.stack.service

    async def stop_link(self, pbx: str) -> None:
        """Asterisk ``pbx`` goes away: no port, every AMI session cut."""
        await defer.maybeDeferred(self.ports[pbx].stopListening)
        self.sims[pbx].drop_connections()
        unit = self.service.center.units[pbx]
        await self.stack.wait_for(lambda: not unit.connected, 10.0, f"{pbx} link down")

    async def restore_link(self, pbx: str) -> None:
        """Asterisk ``pbx`` is back on its port; waits for pbxis's new login and rebuild."""
        unit = self.service.center.units[pbx]
        logins = unit.ami.stats.logins
        self.ports[pbx] = reactor.listenTCP(self.numbers[pbx], self.sims[pbx].factory, interface="127.0.0.1")
        await self.stack.wait_for(
            lambda: unit.ami.stats.logins > logins and unit.ready, 15.0, f"{pbx} logged in again"
        )


async def start_two(
    *, api_keys: list[str] | None = None, tenants: list[dict[str, Any]] | None = None, **http: Any
) -> TwoPbx:
    sims: dict[str, Simulator] = {}
    ports: dict[str, IListeningPort] = {}
    tables = []
    for seed, pbx in enumerate(PBXES, start=1):
        sims[pbx] = Simulator(
            SimulatorConfig.demo(
                agents=["1001", "1002"], queues=["sales"], logged_in=False, personality=personality("20")
            ),
            clock=reactor,
            seed=seed,
            username=USERNAME,
            secret=SECRET,
        )
        ports[pbx] = reactor.listenTCP(0, sims[pbx].factory, interface="127.0.0.1")
        tables.append(
            {
                "name": pbx,
                "host": "127.0.0.1",
                "port": ports[pbx].getHost().port,  # type: ignore[attr-defined]
                "username": USERNAME,
                "secret": SECRET,
                "keepalive_interval": 5.0,
                "reconnect_min_delay": 0.05,
                "reconnect_max_delay": 0.3,
            }
        )
    data: dict[str, Any] = {
        "pbx": tables,
        "http": {"listen": "tcp:0:interface=127.0.0.1", "api_keys": list(api_keys or []), **http},
        "agents": {"grace_period": 30.0, "interface": "SIP/{agent}"},
        "originate": {"agent_rate": 0, "global_rate": 0},
    }
    if tenants:
        data["tenants"] = tenants
    from pbxis.service import PbxisService

    service = PbxisService(parse_config(data), reactor)
    service.startService()
    stack = Stack(service, (api_keys or [None])[0])
    two = TwoPbx(stack, sims, ports, {p: ports[p].getHost().port for p in PBXES})  # type: ignore[attr-defined]
    await stack.wait_for(lambda: service.center.ready, 10.0, "both PBXes ready")
    return two


async def stop_two(two: TwoPbx) -> None:
    await defer.maybeDeferred(two.service.stopService)
    for port in two.ports.values():
        await defer.maybeDeferred(port.stopListening)
    await task.deferLater(reactor, 0.05, lambda: None)
