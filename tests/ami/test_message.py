"""Message: ordered, repeated, case-insensitive headers; Banner."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# -- a framed message's text look-ups answer what the pairs' index answers ---------------
_KEY_CHARS = st.sampled_from(list("AaBbEeIiDd:- ()/\u00e9\u212a\u0130\u03a3\u03c3"))
_VALUE_CHARS = st.sampled_from(list("xX: =/-\u00e9\t\u03a3"))
_KEYS = st.text(_KEY_CHARS, min_size=0, max_size=6).filter(lambda k: ": " not in k)


@given(
    pairs=st.lists(st.tuples(_KEYS, st.text(_VALUE_CHARS, max_size=8)), min_size=1, max_size=8),
    probes=st.lists(st.text(_KEY_CHARS, max_size=6), max_size=6),
)
def test_framed_lookups_agree_with_the_pairs_index(pairs: list[tuple[str, str]], probes: list[str]) -> None:
    """The parser's fast path keeps the text and searches it; a message built from the
    same pairs uses a dict. Every look-up (the keys in any case, absent keys, keys with
    ": ", non-ASCII text that lowering could move) answers the same, first one winning."""
    from pbxis.ami.parser import parse_block

    reference = Message(pairs)
    block = reference.to_bytes()[:-4]
    framed = parse_block(block)
    assert framed is not None
    asked = [*probes, *(k for k, _ in pairs), *(k.upper() for k, _ in pairs), *(k.lower() for k, _ in pairs)]
    expected = Message(framed.headers)  # what the text reads as pairs, through the index
    for key in asked:
        assert framed.get(key) == expected.get(key), key
        assert (key in framed) == (key in expected)
    assert framed.event == expected.event
    assert framed.to_bytes() == expected.to_bytes()


def test_framed_message_reads_its_pairs_only_when_asked() -> None:
    from pbxis.ami.parser import parse_block

    m = parse_block(b"Event: Hangup\r\nUniqueid: 1.1\r\nUniqueID: 2.2\r\nCause-txt: Normal: ok")
    assert m is not None
    assert m.event == "Hangup" and m.get("UNIQUEID") == "1.1" and m.get("cause-TXT") == "Normal: ok"
    assert m.get("Cause-txt: Normal") is None  # a key with ": " is not a line's key
    assert m.headers == (
        ("Event", "Hangup"),
        ("Uniqueid", "1.1"),
        ("UniqueID", "2.2"),
        ("Cause-txt", "Normal: ok"),
    )
    assert m == Message(m.headers) and hash(m) == hash(Message(m.headers))


@pytest.mark.parametrize("framed", [True, False], ids=["parsed-text", "pairs"])
def test_lacks_is_true_only_when_no_key_is_present_in_any_case(framed: bool) -> None:
    from pbxis.ami.parser import parse_block

    pairs = [("Event", "Hangup"), ("actionid", "7"), ("Channel", "SIP/1001-00000001")]
    if framed:
        message = parse_block("".join(f"{k}: {v}\r\n" for k, v in pairs).encode()[:-2])
        assert message is not None
    else:
        message = Message(pairs)
    assert not message.lacks(("ActionID", "ChanVariable"))
    assert not message.lacks(("ChanVariable", "CHANNEL"))
    assert message.lacks(("ChanVariable", "Uniqueid"))
    assert message.lacks(("Chan: nel",))  # no key holds ": "
    assert message.lacks(())
