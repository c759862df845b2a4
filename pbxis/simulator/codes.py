"""Asterisk's numeric vocabularies, as Asterisk 20 prints them.

Kept in one table module so every flow spells a state, a cause or an event class
the same way (and the way ``reference.md`` section 4 documents them).
"""

from __future__ import annotations

from typing import Final

# Device states (enum ast_device_state): number -> DeviceStateChange token.
UNKNOWN, NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD = range(9)
DEVICE_TOKENS: Final = (
    "UNKNOWN",
    "NOT_INUSE",
    "INUSE",
    "BUSY",
    "INVALID",
    "UNAVAILABLE",
    "RINGING",
    "RINGINUSE",
    "ONHOLD",
)

# Device state -> (extension state, StatusText) for hints.
EXTENSION_STATES: Final = {
    UNKNOWN: (0, "Idle"),
    NOT_INUSE: (0, "Idle"),
    INUSE: (1, "InUse"),
    BUSY: (2, "Busy"),
    INVALID: (4, "Unavailable"),
    UNAVAILABLE: (4, "Unavailable"),
    RINGING: (8, "Ringing"),
    RINGINUSE: (9, "InUse&Ringing"),
    ONHOLD: (16, "Hold"),
}

# Channel states (ChannelState / ChannelStateDesc).
DOWN, RING, RINGING_STATE, UP = 0, 4, 5, 6
CHANNEL_STATE_DESC: Final = {
    0: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    4: "Ring",
    5: "Ringing",
    6: "Up",
    7: "Busy",
}

# Cause -> the SIP response PJSIP reports as TechCause (captures-pjsip22).
SIP_RESPONSES: Final = {17: "486", 19: "480"}

# Hangup causes and their Cause-txt.
CAUSES: Final = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    34: "Circuit/channel congestion",
}
NORMAL_CLEARING, USER_BUSY, NO_ANSWER, ANSWERED_ELSEWHERE = 16, 17, 19, 26

# OriginateResponse Reason codes (pbx_dial_reason).
REASON_FAILURE, REASON_NO_ANSWER, REASON_ANSWERED, REASON_BUSY = 0, 3, 4, 5

# Manager event classes (manager.conf read=/write=, the Events mask).
CLASSES: Final = (
    "system",
    "call",
    "log",
    "verbose",
    "command",
    "agent",
    "user",
    "config",
    "dtmf",
    "reporting",
    "cdr",
    "dialplan",
    "originate",
    "agi",
    "cc",
    "aoc",
    "test",
    "security",
    "message",
)

_AGENT = (
    "QueueMemberStatus QueueMemberAdded QueueMemberRemoved QueueMemberPause QueueMemberPenalty "
    "QueueMemberRinginuse QueueCallerJoin QueueCallerLeave QueueCallerAbandon AgentCalled "
    "AgentConnect AgentComplete AgentRingNoAnswer AgentDump"
)
EVENT_CLASS: Final = {
    **{name: "agent" for name in _AGENT.split()},
    "VarSet": "dialplan",
    "Newexten": "dialplan",
    "FullyBooted": "system",
    "Shutdown": "system",
    "Reload": "system",
    "Cdr": "cdr",
    "UserEvent": "user",
}


def event_class(name: str) -> str:
    """The class of an asynchronous event: ``call`` unless listed otherwise."""
    return EVENT_CLASS.get(name, "call")
