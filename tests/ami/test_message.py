"""Message: ordered, repeated, case-insensitive headers; Banner."""

from __future__ import annotations

import pytest

from pbxis.ami.message import Banner, Message, normalise_headers


def test_lookup_is_case_insensitive_and_first_occurrence_wins() -> None:
    m = Message([("Event", "Cdr"), ("UniqueID", "1.1"), ("Uniqueid", "2.2")])
    assert m.get("uniqueid") == "1.1" and m["UNIQUEID"] == "1.1"
    assert m.get_all("UniqueId") == ["1.1", "2.2"]
    assert m.get("Missing") is None and m.get("Missing", "x") == "x"
    with pytest.raises(KeyError):
        m["Missing"]
    assert "uniqueid" in m and "missing" not in m and 3 not in m


def test_kind_properties() -> None:
    event = Message([("Event", "Hangup"), ("ActionID", "a")])
    response = Message([("Response", "Success"), ("ActionID", "b")])
    action = Message([("Action", "Ping"), ("ActionID", "c")])
    assert event.is_event and not event.is_response and event.event == "Hangup"
    assert response.is_response and response.response == "Success" and response.event is None
    assert action.action == "Ping" and not action.is_event and not action.is_response
    assert [m.action_id for m in (event, response, action)] == ["a", "b", "c"]
    originate = Message([("Event", "OriginateResponse"), ("Response", "Success")])
    assert originate.is_event and originate.response is None


def test_channel_variables_both_spellings() -> None:
    m = Message(
        [
            ("ChanVariable", "AGENT=1001"),
            ("ChanVariable(SIP/1001-00000001)", "MIXMON=/rec/a.wav"),
            ("ChanVariable", "AGENT=ignored-second"),
            ("DestChanVariable", "AGENT=1002"),
            ("ChanVariable", "NOEQUALS"),
        ]
    )
    assert m.channel_variables() == {"AGENT": "1001", "MIXMON": "/rec/a.wav"}
    assert m.channel_variables("Dest") == {"AGENT": "1002"}


def test_to_bytes_is_crlf_framed() -> None:
    m = Message([("Event", "X"), ("Empty", ""), ("A", "b c")])
    assert m.to_bytes() == b"Event: X\r\nEmpty: \r\nA: b c\r\n\r\n"


def test_normalise_headers() -> None:
    assert normalise_headers(None) == []
    assert normalise_headers(
        {"Variable": ["a=1", "b=2"], "Async": True, "Paused": False, "Skip": None, "N": 5}
    ) == [("Variable", "a=1"), ("Variable", "b=2"), ("Async", "true"), ("Paused", "false"), ("N", "5")]
    assert normalise_headers([("K", 1), ("K", 2)]) == [("K", "1"), ("K", "2")]


def test_equality_hash_len_iter_replace() -> None:
    a = Message([("Event", "X"), ("A", "1")])
    b = Message([("Event", "X"), ("A", "1")])
    assert a == b and hash(a) == hash(b) and a != Message([("A", "1"), ("Event", "X")])
    assert len(a) == 2 and list(a) == [("Event", "X"), ("A", "1")]
    c = a.replace(a="2", New="n")
    assert c.headers == (("Event", "X"), ("A", "2"), ("New", "n"))
    assert a.headers == (("Event", "X"), ("A", "1"))  # immutable
    assert "Event" in repr(a)


def test_banner() -> None:
    banner = Banner("Asterisk Call Manager/9.0.0")
    assert banner.version == "9.0.0"
    assert Banner("no slash").version == ""
    assert banner == Banner("Asterisk Call Manager/9.0.0") != Banner("x/1")
    assert hash(banner) == hash(Banner("Asterisk Call Manager/9.0.0"))
