"""pbxis.commands without HTTP or a reactor: the actions sent and the errors read back."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from twisted.internet import defer
from twisted.python.failure import Failure

from pbxis.ami.errors import ActionFailed, ActionTimeout, ConnectionLost, NotConnected
from pbxis.ami.message import Message
from pbxis.ami.parser import LocalProtocolError
from pbxis.commands import (
    Commands,
    Conflict,
    PbxRefused,
    PbxTimeout,
    PbxUnavailable,
    UnknownQueue,
    UnsafeInput,
    escape_variable_value,
)
from pbxis.config import AgentsConfig


class Sender:
    """Answers each action from a script: a message text for success or an exception."""

    def __init__(self, log: list[Any], answer: str | Exception = "ok") -> None:
        self.log = log
        self.answer = answer

    def send_action(
        self, name: str, headers: Any = None, *, timeout: float | None = None, action_id: str | None = None
    ) -> defer.Deferred[Any]:
        self.log.append(("send", name, list(headers), action_id))
        if isinstance(self.answer, Exception):
            return defer.fail(self.answer)
        return defer.succeed(Message([("Response", "Success"), ("Message", self.answer)]))


class Notes:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def note_originate(self, action_id: str, agent: str, number: str) -> None:
        self.log.append(("note", action_id, agent, number))


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """The result of a coroutine whose Deferreds all fire synchronously."""
    d = defer.ensureDeferred(coro)
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the command did not complete synchronously"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def commands(answer: str | Exception = "ok", **kwargs: Any) -> tuple[Commands, list[Any]]:
    log: list[Any] = []
    ids = iter(["originate-1", "originate-2"])
    names = {"interface_template": "interface", "caller_id_template": "caller_id"}
    settings = AgentsConfig(**{names.get(k, k): v for k, v in kwargs.items()})
    return Commands(Sender(log, answer), Notes(log), settings, new_action_id=lambda: next(ids)), log


def test_originate_notes_tracker_first_then_sends_async_originate() -> None:
    cmds, log = commands(caller_id_template='"{name}" <{agent}>', originate_timeout=20)
    action_id = run(cmds.originate("1001", "0911", variables={"A": "1", "B": "x=y"}, name="Alice"))
    assert action_id == "originate-1"
    assert log == [
        ("note", "originate-1", "1001", "0911"),
        (
            "send",
            "Originate",
            [
                ("Channel", "SIP/1001"),
                ("Context", "agents"),
                ("Exten", "0911"),
                ("Priority", "1"),
                ("CallerID", '"Alice" <1001>'),
                ("Timeout", "20000"),
                ("Async", "true"),
                ("Variable", "A=1"),
                ("Variable", "B=x=y"),
            ],
            "originate-1",
        ),
    ]


def test_originate_caller_id_given_wins_and_none_without_template() -> None:
    cmds, log = commands(caller_id_template="{agent}")
    run(cmds.originate("1001", "0911", caller_id="Sales <0211>"))
    assert ("CallerID", "Sales <0211>") in log[1][2]
    cmds, log = commands()
    run(cmds.originate("1001", "0911"))
    assert "CallerID" not in dict(log[1][2])


def test_default_action_ids_are_unique_and_prefixed() -> None:
    log: list[Any] = []
    cmds = Commands(Sender(log), Notes(log))
    ids = {run(cmds.originate("1001", "1")) for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("originate-") for i in ids)


def test_templates_are_checked_at_construction() -> None:
    with pytest.raises(KeyError):
        commands(interface_template="SIP/{extension}")
    with pytest.raises(KeyError):
        commands(caller_id_template="{agent} {company}")


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ("Smith, John", r"Smith\, John"),
        ('say "hi"', r"say \"hi\""),
        ("a\\b", r"a\\b"),
        ("f(x)[0]", r"f\(x\)\[0\]"),
        ("a=b", "a=b"),
    ],
)
def test_escape_variable_value(value: str, escaped: str) -> None:
    assert escape_variable_value(value) == escaped


def _separate_args(buf: str) -> list[str]:
    """Asterisk's __ast_app_separate_args(buf, ',', remove_chars=1) (main/app.c), in Python."""
    args, current, paren, bracket, quote, i = [], [], 0, 0, False, 0
    while i < len(buf):
        ch = buf[i]
        if ch == "(":
            paren += 1
        elif ch == ")" and paren:
            paren -= 1
        elif ch == "[":
            bracket += 1
        elif ch == "]" and bracket:
            bracket -= 1
        elif ch == '"':
            quote = not quote
            i += 1
            continue
        elif ch == "\\":
            i += 1
            if i < len(buf):
                current.append(buf[i])
            i += 1
            continue
        elif ch == "," and not paren and not quote and not bracket:
            args.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    args.append("".join(current))
    return args


@pytest.mark.parametrize("value", ["Smith, John", 'a "b", c', "x\\,y", "(a,b", "]a,b[", "", "ü,ö"])
def test_escaped_value_survives_asterisk_argument_splitting(value: str) -> None:
    assert _separate_args(f"NOTE={escape_variable_value(value)}") == [f"NOTE={value}"]


def test_queue_actions_headers() -> None:
    cmds, log = commands(interface_template="PJSIP/{agent}")
    run(cmds.queue_login("1001", "sales", penalty=3, paused=True, member_name="Alice"))
    run(cmds.queue_logoff("1001", "sales"))
    run(cmds.queue_pause("1001", "sales", paused=True, reason="lunch"))
    run(cmds.queue_pause("1001", "sales", paused=False))
    assert [entry[1:3] for entry in log] == [
        (
            "QueueAdd",
            [
                ("Queue", "sales"),
                ("Interface", "PJSIP/1001"),
                ("MemberName", "Alice"),
                ("Penalty", "3"),
                ("StateInterface", "PJSIP/1001"),
                ("Paused", "true"),
            ],
        ),
        ("QueueRemove", [("Queue", "sales"), ("Interface", "PJSIP/1001")]),
        (
            "QueuePause",
            [("Queue", "sales"), ("Interface", "PJSIP/1001"), ("Paused", "true"), ("Reason", "lunch")],
        ),
        ("QueuePause", [("Queue", "sales"), ("Interface", "PJSIP/1001"), ("Paused", "false")]),
    ]


# Asterisk 20's texts, as in the captures login / logoff / pause.
@pytest.mark.parametrize(
    ("action", "text", "error", "code"),
    [
        ("login", "Unable to add interface: Already there", Conflict, "already_logged_in"),
        ("login", "Unable to add interface to queue: No such queue", UnknownQueue, "unknown_queue"),
        ("logoff", "Unable to remove interface: Not there", Conflict, "not_logged_in"),
        ("logoff", "Unable to remove interface from queue: No such queue", UnknownQueue, "unknown_queue"),
        ("logoff", "Member not dynamic", Conflict, "member_not_dynamic"),
        ("pause", "Interface not found", Conflict, "not_logged_in"),
        ("pause", "Permission denied", PbxRefused, "pbx_refused"),
    ],
)
def test_asterisk_refusals_become_domain_errors(action: str, text: str, error: type, code: str) -> None:
    cmds, _ = commands(ActionFailed("X", text))
    call = {
        "login": lambda: cmds.queue_login("1001", "sales"),
        "logoff": lambda: cmds.queue_logoff("1001", "sales"),
        "pause": lambda: cmds.queue_pause("1001", "sales", paused=True),
    }[action]
    with pytest.raises(error) as raised:
        run(call())
    assert raised.value.code == code
    assert raised.value.message


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (NotConnected("down"), PbxUnavailable),
        (ConnectionLost("dropped"), PbxUnavailable),
        (ActionTimeout("slow"), PbxTimeout),
        (ActionFailed("Originate", "Extension does not exist."), PbxRefused),
        (LocalProtocolError("CR in header"), UnsafeInput),
    ],
)
def test_link_failures_become_domain_errors(failure: Exception, error: type) -> None:
    cmds, _ = commands(failure)
    with pytest.raises(error):
        run(cmds.originate("1001", "0911"))
    with pytest.raises(error):
        run(cmds.queue_logoff("1001", "sales"))


def test_refused_originate_keeps_asterisk_text() -> None:
    cmds, _ = commands(ActionFailed("Originate", "Extension does not exist."))
    with pytest.raises(PbxRefused, match="Extension does not exist"):
        run(cmds.originate("1001", "0911"))
