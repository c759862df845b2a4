"""A TCP relay that counts what crosses it: bytes each way and AMI actions sent.

Put between pbxis and the simulated Asterisk it measures exactly what a real link would
carry, without touching either side's code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.protocols import portforward

__all__ = ["Counters", "listen_relay"]

_ACTION = re.compile(rb"(?:^|\n)Action:", re.IGNORECASE)


@dataclass
class Counters:
    to_server: int = 0
    to_client: int = 0
    actions: int = 0

    def reset(self) -> None:
        self.to_server = self.to_client = self.actions = 0


class _ServerSide(portforward.ProxyClient):
    def dataReceived(self, data: bytes) -> None:
        self.factory.counters.to_client += len(data)  # type: ignore[attr-defined]
        super().dataReceived(data)


class _ServerSideFactory(portforward.ProxyClientFactory):
    protocol = _ServerSide
    noisy = False

    def __init__(self, counters: Counters) -> None:
        self.counters = counters


class _ClientSide(portforward.ProxyServer):
    def dataReceived(self, data: bytes) -> None:
        counters: Counters = self.factory.counters  # type: ignore[attr-defined]
        counters.to_server += len(data)
        # Actions are small and written whole by pbxis; a split "Action:" would only
        # undercount, and the figure is cross-checked against RebuildStats.actions.
        counters.actions += len(_ACTION.findall(data))
        super().dataReceived(data)


class _RelayFactory(portforward.ProxyFactory):
    protocol = _ClientSide
    noisy = False

    def __init__(self, host: str, port: int, counters: Counters) -> None:
        super().__init__(host, port)
        self.counters = counters

    def buildProtocol(self, addr: object) -> _ClientSide:
        proto: _ClientSide = super().buildProtocol(addr)  # type: ignore[assignment]
        proto.clientProtocolFactory = lambda: _ServerSideFactory(self.counters)  # type: ignore[method-assign]
        return proto


def listen_relay(reactor: object, target_port: int, counters: Counters) -> IListeningPort:
    """Listen on 127.0.0.1 (ephemeral port) and relay to ``127.0.0.1:target_port``."""
    factory: Factory = _RelayFactory("127.0.0.1", target_port, counters)
    return reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
