"""format_action: exact bytes, and refusal of anything that could inject headers."""

from __future__ import annotations

import pytest

from pbxis.ami.action import MAX_LINE_BYTES, MAX_LINES, format_action
from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser, LocalProtocolError


def test_bytes_on_the_wire() -> None:
    data = format_action("QueuePause", {"Interface": "SIP/1001", "Paused": True, "Reason": None}, "pbxis-1")
    assert data == (b"Action: QueuePause\r\nActionID: pbxis-1\r\nInterface: SIP/1001\r\nPaused: true\r\n\r\n")
    assert format_action("Ping") == b"Action: Ping\r\n\r\n"


def test_round_trips_through_the_parser() -> None:
    data = format_action("Originate", [("Variable", "A=1"), ("Variable", "B=2")], "o-1")
    parser = AMIParser(expect_banner=False)
    parser.receive_data(data)
    (m,) = list(parser.messages())
    assert isinstance(m, Message) and m.get_all("Variable") == ["A=1", "B=2"]


@pytest.mark.parametrize(
    "value",
    [
        "123\r\nAction: Command\r\nCommand: core stop now",
        "123\nAction: Command",
        "123\rAction: Command",
        "a\x00b",
    ],
)
def test_injection_in_values_refused(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_action("Originate", {"Exten": value}, "x")
    with pytest.raises(ValueError):  # LocalProtocolError is a ValueError
        format_action("Originate", {"Exten": value})


@pytest.mark.parametrize("key", ["Bad\r\nKey", "Bad\nKey", "Co:lon", "", " Lead", "Nul\x00"])
def test_bad_keys_refused(key: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_action("Originate", [(key, "v")])


def test_name_and_action_id_checked_too() -> None:
    with pytest.raises(LocalProtocolError):
        format_action("Ping\r\nAction: Command")
    with pytest.raises(LocalProtocolError):
        format_action("Ping", None, "id\r\nAction: Command")


@pytest.mark.parametrize("key", ["Action", "actionid", "ACTIONID"])
def test_client_owned_headers_refused(key: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_action("Ping", {key: "x"})


def test_line_length_limit() -> None:
    key = "Data"
    fits = "x" * (MAX_LINE_BYTES - len(key) - 4)  # "Data: " + value + CRLF == 1024
    format_action("UserEvent", {key: fits})
    with pytest.raises(LocalProtocolError):
        format_action("UserEvent", {key: fits + "x"})
    with pytest.raises(LocalProtocolError):  # counted in bytes, not characters
        format_action("UserEvent", {key: "é" * (len(fits) // 2 + 1)})


def test_line_count_limit() -> None:
    format_action("UserEvent", [("V", str(i)) for i in range(MAX_LINES - 2)], "id")
    with pytest.raises(LocalProtocolError):
        format_action("UserEvent", [("V", str(i)) for i in range(MAX_LINES - 1)], "id")
    with pytest.raises(LocalProtocolError):
        format_action("UserEvent", [("V", str(i)) for i in range(200)])
