"""pbxis's own Asterisk Manager Interface layer.

``message``, ``parser`` and ``action`` are sans-I/O (bytes in, messages out, no
Twisted); the Twisted protocol and reconnecting factory live in ``client``.
"""

from .action import format_action
from .message import Banner, Message
from .parser import (
    NEED_DATA,
    AMIParser,
    AMIProtocolError,
    LocalProtocolError,
    RemoteProtocolError,
)

__all__ = [
    "NEED_DATA",
    "AMIParser",
    "AMIProtocolError",
    "Banner",
    "LocalProtocolError",
    "Message",
    "RemoteProtocolError",
    "format_action",
]
