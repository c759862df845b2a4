"""chan_sip's actions (Asterisk 20 and older): SIPpeers."""

from __future__ import annotations

from ..ami.message import Message
from .context import ActionContext, Handler, SessionState
from .replies import Reply, event_list, list_item

__all__ = ["ACTIONS", "sip_peers"]


def sip_peers(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    peers = [(p.exten, p.sip_port) for p in sim.config.phones]
    peers.append((sim.config.trunk.split("/", 1)[1], sim.config.trunk_port))
    items = [
        list_item(
            msg,
            "PeerEntry",
            [
                ("Channeltype", "SIP"),
                ("ObjectName", name),
                ("ChanObjectType", "peer"),
                ("IPaddress", "127.0.0.1"),
                ("IPport", str(port)),
                ("Dynamic", "no"),
                ("AutoForcerport", "no"),
                ("Forcerport", "no"),
                ("AutoComedia", "no"),
                ("Comedia", "no"),
                ("VideoSupport", "no"),
                ("TextSupport", "no"),
                ("ACL", "no"),
                ("Status", "Unmonitored"),
                ("RealtimeDevice", "no"),
                ("Description", ""),
                ("Accountcode", ""),
            ],
            id_first=True,
        )
        for name, port in peers
    ]
    return event_list(msg, "Peer status list will follow", "PeerlistComplete", items)


ACTIONS: dict[str, Handler] = {"sippeers": sip_peers}
