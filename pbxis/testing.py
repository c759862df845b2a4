"""Test your own pbxis program without an Asterisk: a CallCenter on the simulated one.

Like ``treq.testing`` for treq: :func:`simulated_call_center` starts pbxis's simulated
Asterisk 20 on a free loopback port, connects a real :class:`~pbxis.engine.CallCenter`
to it over TCP and hands you both, so a test drives calls through the simulator and
watches what your code does with the events::

    from pbxis.testing import simulated_call_center

    async def test_screen_pop(reactor):
        sim = await simulated_call_center(reactor, agents=["1001"], queues=["sales"])
        try:
            seen = []
            sim.center.register_agent("1001", ["sales"], listeners=[seen.append])
            await sim.center.queue_action("1001", "sales", "login")
            sim.simulator.customer_call("sales", number="0911234567")
            ...  # wait for a phoneNumber event in ``seen``
        finally:
            await sim.stop()

The simulator's methods (``customer_call``, ``set_phone``, ``drop_connections``...) are
documented in :mod:`pbxis.simulator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime

from pbxis.config import parse_config
from pbxis.engine import CallCenter
from pbxis.simulator import Simulator, SimulatorConfig
from pbxis.simulator.personality import personality

__all__ = ["SimulatedCallCenter", "simulated_call_center"]

USERNAME = "pbxis"
SECRET = "pbxis-test-secret"


@dataclass
class SimulatedCallCenter:
    """A connected call center, the simulated Asterisk it talks to, and its port."""

    center: CallCenter
    simulator: Simulator
    port: IListeningPort

    def stop(self) -> Deferred[None]:
        """Disconnect the call center, then stop the simulator listening."""

        async def stop() -> None:
            await self.center.disconnect()
            await defer.maybeDeferred(self.port.stopListening)

        return defer.ensureDeferred(stop())


def simulated_call_center(
    reactor: Any,
    *,
    agents: Sequence[str] = ("1001", "1002", "1003"),
    queues: Sequence[str] = ("sales", "support"),
    logged_in: bool = False,
    seed: int = 0,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    asterisk: str = "20",
) -> Deferred[SimulatedCallCenter]:
    """Start a simulated Asterisk with ``agents`` (phones) and ``queues`` and a CallCenter
    connected to it; fires once the call center is ready.

    ``logged_in`` makes the agents members of every queue from the start; ``config``
    adds sections or keys to pbxis's config (``{"originate": {"agent_rate": 0}}``);
    ``[ami]`` is filled in to reach the simulator. ``asterisk="22"`` simulates Asterisk
    22 with PJSIP endpoints; ``[agents] interface`` then defaults to ``PJSIP/{agent}``.
    """

    async def start() -> SimulatedCallCenter:
        clock: IReactorTime = reactor
        tcp: IReactorTCP = reactor
        plays = personality(asterisk)
        simulator = Simulator(
            SimulatorConfig.demo(
                agents=list(agents), queues=list(queues), logged_in=logged_in, personality=plays
            ),
            clock=clock,
            seed=seed,
            username=USERNAME,
            secret=SECRET,
        )
        port = tcp.listenTCP(0, simulator.factory, interface="127.0.0.1")
        data: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (config or {}).items()}
        data.setdefault("agents", {}).setdefault("interface", f"{plays.tech}/{{agent}}")
        data.setdefault("ami", {}).update(
            {"host": "127.0.0.1", "port": port.getHost().port, "username": USERNAME, "secret": SECRET}  # type: ignore[attr-defined]
        )
        center = CallCenter(reactor, parse_config(data, source="<pbxis.testing>"))
        center.start()
        try:
            await center.when_ready()
        except BaseException:
            await center.disconnect()
            await defer.maybeDeferred(port.stopListening)
            raise
        return SimulatedCallCenter(center, simulator, port)

    return defer.ensureDeferred(start())
