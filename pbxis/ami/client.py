"""The Twisted AMI client: :class:`AMIProtocol` (one link) and :class:`AMIClientFactory`.

Most code needs only the factory::

    factory = AMIClientFactory("pbxis", secret)
    factory.add_observer(sync)
    factory.connect(clientFromString(reactor, "tcp:host=pbx:port=5038"))
    result = await factory.send_action("QueueStatus")  # ActionResult(response, events)
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from pbxis.config import AMIConfig

from .factory import ActionListener, AMIClientFactory, AMIStats, backoff_delay
from .message import HeaderInput
from .protocol import MAX_ACTION_ID_LENGTH, ActionResult, AMIProtocol, LinkHandler, LinkSettings, md5_key

__all__ = [
    "MAX_ACTION_ID_LENGTH",
    "AMIClientFactory",
    "AMIProtocol",
    "AMIStats",
    "ActionListener",
    "ActionResult",
    "ActionSender",
    "LinkHandler",
    "LinkSettings",
    "backoff_delay",
    "link_from_config",
    "md5_key",
]


class ActionSender(Protocol):
    """What sends AMI actions: :class:`AMIClientFactory` (or one :class:`AMIProtocol`).

    The one narrow interface the commands and the state sync are written against, so
    they can be tested with a fake and never see a socket.
    """

    def send_action(
        self,
        name: str,
        headers: HeaderInput | None = None,
        *,
        timeout: float | None = None,
        action_id: str | None = None,
    ) -> Deferred[ActionResult]: ...


def link_from_config(settings: AMIConfig, *, clock: IReactorTime) -> AMIClientFactory:
    """The reconnecting client for an ``[ami]`` section: the one place its keys meet the
    factory's parameters."""
    return AMIClientFactory(
        settings.username,
        settings.secret,
        auth=settings.auth,
        events=settings.events,
        action_timeout=settings.action_timeout,
        keepalive_interval=settings.keepalive_interval,
        keepalive_timeout=settings.keepalive_timeout,
        min_delay=settings.reconnect_min_delay,
        max_delay=settings.reconnect_max_delay,
        reset_after=settings.reconnect_reset_after,
        clock=clock,
    )
