"""The Twisted AMI client: :class:`AMIProtocol` (one link) and :class:`AMIClientFactory`.

Most code needs only the factory::

    factory = AMIClientFactory("pbxis", secret)
    factory.add_observer(sync)
    factory.connect(clientFromString(reactor, "tcp:host=pbx:port=5038"))
    result = await factory.send_action("QueueStatus")  # ActionResult(response, events)
"""

from .factory import ActionListener, AMIClientFactory, AMIStats, backoff_delay
from .protocol import MAX_ACTION_ID_LENGTH, ActionResult, AMIProtocol, LinkHandler, LinkSettings, md5_key

__all__ = [
    "MAX_ACTION_ID_LENGTH",
    "AMIClientFactory",
    "AMIProtocol",
    "AMIStats",
    "ActionListener",
    "ActionResult",
    "LinkHandler",
    "LinkSettings",
    "backoff_delay",
    "md5_key",
]
