"""res_pjsip's actions (Asterisk 22): PJSIPShowEndpoints, PJSIPShowContacts.

Layouts as ``captures-pjsip22/state_dump.client.ami`` shows them for the lab's
endpoints (static ``contact=`` in each AOR, see ``asterisk-config-pjsip22/pjsip.conf``):
the endpoint list names each endpoint's contact and its device state; the contact list
is empty (``No Contacts found``), as static contacts are not listed there.
"""

from __future__ import annotations

from ..ami.message import Message
from .context import ActionContext, Handler, SessionState
from .replies import Reply, error, event_list, list_item

__all__ = ["ACTIONS", "pjsip_show_contacts", "pjsip_show_endpoints"]

#: ast_devstate_str(): the device state as the endpoint list spells it
DEVICE_STATE_TEXT = (
    "Unknown",
    "Not in use",
    "In use",
    "Busy",
    "Invalid",
    "Unavailable",
    "Ringing",
    "Ring+Inuse",
    "On Hold",
)


def pjsip_show_endpoints(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    pbx, config = sim.pbx, sim.config
    endpoints = [(p.exten, f"sip:{p.exten}@127.0.0.1:{p.sip_port}", p.device) for p in config.phones]
    trunk = config.trunk.split("/", 1)[1]
    endpoints.append((trunk, f"sip:127.0.0.1:{config.trunk_port}", config.trunk))
    items = []
    for name, contact, device in endpoints:
        active = sum(1 for c in pbx.channels.values() if c.device == device)
        items.append(
            list_item(
                msg,
                "EndpointList",
                [
                    ("ObjectType", "endpoint"),
                    ("ObjectName", name),
                    ("Transport", ""),
                    ("Aor", name),
                    ("Auths", ""),
                    ("OutboundAuths", ""),
                    ("Contacts", f"{name}/{contact},"),
                    ("DeviceState", DEVICE_STATE_TEXT[pbx.device_state(device)]),
                    ("ActiveChannels", str(active)),
                ],
                id_first=True,
            )
        )
    return event_list(msg, "A listing of Endpoints follows, presented as EndpointList events",
                      "EndpointListComplete", items)  # fmt: skip


def pjsip_show_contacts(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    return error(msg, "No Contacts found")


ACTIONS: dict[str, Handler] = {
    "pjsipshowendpoints": pjsip_show_endpoints,
    "pjsipshowcontacts": pjsip_show_contacts,
}
