"""Channel, hint and system actions: lists and inspection, Hangup, Core*."""

from __future__ import annotations

import time

from ..ami.message import Message
from . import codes
from .context import ActionContext, Handler, SessionState
from .headers import Pairs, channel_header
from .replies import Reply, error, event_list, list_item, response, success

__all__ = [
    "ACTIONS",
    "core_settings",
    "core_show_channels",
    "core_status",
    "device_state_list",
    "extension_state",
    "extension_state_list",
    "hangup",
    "status",
]


def _hint_pairs(sim: ActionContext, exten: str, context: str) -> Pairs:
    phone = sim.config.phone(exten) if context == sim.config.hint_context else None
    if phone is None:
        return [("Exten", exten), ("Context", context), ("Hint", ""), ("Status", "-1"),
                ("StatusText", "Unknown")]  # fmt: skip
    status, text = codes.EXTENSION_STATES[sim.pbx.device_state(phone.device)]
    return [
        ("Exten", exten),
        ("Context", context),
        ("Hint", phone.device),
        ("Status", str(status)),
        ("StatusText", text),
    ]


def extension_state(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    exten = msg.get("Exten")
    if not exten:
        return error(msg, "Extension not specified")
    pairs = _hint_pairs(sim, exten, msg.get("Context") or "default")
    return success(msg, "Extension Status", *pairs)


def extension_state_list(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    ctx = sim.config.hint_context
    items = [
        list_item(msg, "ExtensionStatus", _hint_pairs(sim, p.exten, ctx), id_first=True)
        for p in sim.config.phones
    ]
    if not items:
        return error(msg, "No dialplan hints are available")
    return event_list(msg, "Extension Statuses will follow", "ExtensionStateListComplete", items)


def device_state_list(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    items = [
        list_item(msg, "DeviceStateChange", [("Device", d), ("State", codes.DEVICE_TOKENS[s])], id_first=True)
        for d, s in sim.pbx.devices.items()
    ]
    return event_list(msg, "Device State Changes will follow", "DeviceStateListComplete", items)


# -- channels ----------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def core_show_channels(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    pbx = sim.pbx
    items = [
        list_item(
            msg,
            "CoreShowChannel",
            [
                *channel_header(ch),
                ("Application", ch.application),
                ("ApplicationData", ch.app_data),
                ("Duration", _duration(pbx.now() - ch.created)),
                ("BridgeId", ch.bridge),
            ],
            id_first=True,
        )
        for ch in pbx.channels.values()
    ]
    return event_list(msg, "Channels will follow", "CoreShowChannelsComplete", items)


def status(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    pbx = sim.pbx
    wanted = msg.get("Channel") or None
    if wanted is not None:
        ch = pbx.find_channel(wanted)
        if ch is None:
            return error(msg, "No such channel")
        chans = [ch]
    else:
        chans = list(pbx.channels.values())
    items: list[Message] = []
    for ch in chans:
        sip = ch.tech != "Local"
        pairs: Pairs = [
            ("Privilege", "Call"),
            *channel_header(ch),
            ("Type", ch.tech),
            ("DNID", ""),
            ("EffectiveConnectedLineNum", ch.conn_num),
            ("EffectiveConnectedLineName", ch.conn_name),
            ("TimeToHangup", "0"),
            ("BridgeID", ch.bridge),
            ("Application", ch.application),
            ("Data", ch.app_data),
            ("Nativeformats", "(ulaw)" if sip else "(slin)"),
            ("Readformat", "slin"),
            ("Readtrans", "(ulaw@8000)->(slin@8000)" if sip else ""),
            ("Writeformat", "slin"),
            ("Writetrans", "(slin@8000)->(ulaw@8000)" if sip else ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(int(pbx.now() - ch.created))),
        ]
        items.append(list_item(msg, "Status", pairs))
    return event_list(msg, "Channel status will follow", "StatusComplete", items, ("Items", str(len(items))))


def hangup(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    name = msg.get("Channel")
    if not name:
        return error(msg, "No channel specified")
    ch = sim.pbx.find_channel(name)
    if ch is None:
        return error(msg, "No such channel")
    try:
        cause = int(msg.get("Cause") or codes.NORMAL_CLEARING)
    except ValueError:
        cause = codes.NORMAL_CLEARING
    reply = success(msg, "Channel Hungup")
    sim.center.hangup(ch, cause)
    return reply


def core_status(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    started = time.gmtime(sim.pbx.epoch() - sim.pbx.uptime())
    date, clock = time.strftime("%Y-%m-%d", started), time.strftime("%H:%M:%S", started)
    return Reply(
        [
            response(
                msg,
                "Success",
                ("CoreStartupDate", date),
                ("CoreStartupTime", clock),
                ("CoreReloadDate", date),
                ("CoreReloadTime", clock),
                ("CoreCurrentCalls", str(len(sim.pbx.channels))),
                ("CoreProcessedCalls", str(sim.pbx._uid_seq)),
            )
        ]
    )


def core_settings(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    pairs = [
        ("AMIversion", sim.config.personality.ami_version),
        ("AsteriskVersion", sim.config.version),
        ("SystemName", ""),
        ("CoreMaxCalls", "0"),
        ("CoreMaxLoadAvg", "0.000000"),
        ("CoreRunUser", ""),
        ("CoreRunGroup", ""),
        ("CoreMaxFilehandles", "0"),
        ("CoreRealTimeEnabled", "No"),
        ("CoreCDRenabled", "Yes"),
        ("CoreHTTPenabled", "No"),
        ("SoundsSearchCustomDir", "No"),
    ]
    return Reply([response(msg, "Success", *pairs)])


ACTIONS: dict[str, Handler] = {
    "extensionstate": extension_state,
    "extensionstatelist": extension_state_list,
    "devicestatelist": device_state_list,
    "coreshowchannels": core_show_channels,
    "status": status,
    "hangup": hangup,
    "corestatus": core_status,
    "coresettings": core_settings,
}
