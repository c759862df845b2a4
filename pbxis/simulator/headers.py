"""How Asterisk 20 prints channels, bridges and queue members inside events.

Every event that carries a channel uses the same header block in the same order
(``manager_channels.c``); ``Dest``-prefixed for the called side. Building them in
one place is what keeps the simulator's events field-for-field identical.
"""

from __future__ import annotations

from . import codes
from .model import Bridge, Channel, Member

Pairs = list[tuple[str, str]]

__all__ = ["Pairs", "bridge_header", "channel_header", "member_fields", "queue_member_item"]


def channel_header(ch: Channel, prefix: str = "") -> Pairs:
    return [
        (prefix + "Channel", ch.name),
        (prefix + "ChannelState", str(ch.state)),
        (prefix + "ChannelStateDesc", codes.CHANNEL_STATE_DESC.get(ch.state, "Unknown")),
        (prefix + "CallerIDNum", ch.cid_num),
        (prefix + "CallerIDName", ch.cid_name),
        (prefix + "ConnectedLineNum", ch.conn_num),
        (prefix + "ConnectedLineName", ch.conn_name),
        (prefix + "Language", ch.language),
        (prefix + "AccountCode", ch.account_code),
        (prefix + "Context", ch.context),
        (prefix + "Exten", ch.exten),
        (prefix + "Priority", str(ch.priority)),
        (prefix + "Uniqueid", ch.uniqueid),
        (prefix + "Linkedid", ch.linkedid),
    ]


def bridge_header(bridge: Bridge) -> Pairs:
    return [
        ("BridgeUniqueid", bridge.uniqueid),
        ("BridgeType", "basic"),
        ("BridgeTechnology", bridge.technology),
        ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", str(len(bridge.channels))),
        ("BridgeVideoSourceMode", "none"),
    ]


def _member_state(m: Member, status: int) -> Pairs:
    """Penalty to PausedReason: the run both member shapes share, in Asterisk's order."""
    return [
        ("Penalty", str(m.penalty)),
        ("CallsTaken", str(m.calls_taken)),
        ("LastCall", str(m.last_call)),
        ("LastPause", str(m.last_pause)),
        ("LoginTime", str(m.login_time)),
        ("InCall", "1" if m.in_call else "0"),
        ("Status", str(status)),
        ("Paused", "1" if m.paused else "0"),
        ("PausedReason", m.paused_reason),
    ]


def member_fields(m: Member, status: int) -> Pairs:
    """The body of QueueMemberStatus/Added/Removed/Pause (``queue_member_blob_create``)."""
    return [
        ("Queue", m.queue),
        ("MemberName", m.name),
        ("Interface", m.interface),
        ("StateInterface", m.state_interface),
        ("Membership", m.membership),
        *_member_state(m, status),
        ("Ringinuse", str(m.ringinuse)),
        ("Wrapuptime", str(m.wrapuptime)),
    ]


def queue_member_item(m: Member, status: int) -> Pairs:
    """A ``QueueMember`` list item: ``Name``/``Location``, no Ringinuse (QueueStatus)."""
    return [
        ("Queue", m.queue),
        ("Name", m.name),
        ("Location", m.interface),
        ("StateInterface", m.state_interface),
        ("Membership", "dynamic" if m.membership == "dynamic" else "static"),
        *_member_state(m, status),
        ("Wrapuptime", str(m.wrapuptime)),
    ]
