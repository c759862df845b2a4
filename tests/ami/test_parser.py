"""AMIParser: framing quirks of real Asterisk, the captures, and arbitrary input."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxis.ami.message import Banner, Message
from pbxis.ami.parser import NEED_DATA, AMIParser, RemoteProtocolError
from tests.support.shared import captures_dir

CAPTURES = captures_dir()
SUMMARY_LINE = re.compile(r"^(\S+\.ami): (\d+) events, (\d+) responses: (.*)$")


def parse(data: bytes, **kw: object) -> list[Message | Banner]:
    parser = AMIParser(**kw)  # type: ignore[arg-type]
    parser.receive_data(data)
    return list(parser.messages())


def parse_chunks(chunks: list[bytes], **kw: object) -> list[Message | Banner]:
    parser = AMIParser(**kw)  # type: ignore[arg-type]
    out: list[Message | Banner] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        out.extend(parser.messages())
    return out


def summary() -> dict[str, tuple[int, int, Counter[str]]]:
    out = {}
    for line in (CAPTURES / "SUMMARY.txt").read_text().splitlines():
        m = SUMMARY_LINE.match(line)
        if m:
            names = Counter({k: int(v) for k, v in (p.split("=") for p in m[4].split(", ") if p)})
            out[m[1]] = (int(m[2]), int(m[3]), names)
    return out


SUMMARY = summary()


# -- framing ----------------------------------------------------------------------


def test_banner_has_no_blank_line_after_it() -> None:
    items = parse(b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nPing: Pong\r\n\r\n")
    assert items == [
        Banner("Asterisk Call Manager/9.0.0"),
        Message([("Response", "Success"), ("Ping", "Pong")]),
    ]
    assert isinstance(items[0], Banner) and items[0].version == "9.0.0"


def test_banner_alone_is_returned_before_any_message() -> None:
    parser = AMIParser()
    parser.receive_data(b"Asterisk Call Man")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"ager/9.0.0\r\n")
    assert parser.next_event() == Banner("Asterisk Call Manager/9.0.0")
    assert parser.next_event() is NEED_DATA


def test_without_banner_expected_first_line_is_a_header() -> None:
    assert parse(b"Action: Ping\r\n\r\n", expect_banner=False) == [Message([("Action", "Ping")])]
    # A parser expecting a banner still accepts a stream that starts with a message.
    assert parse(b"Event: Hangup\r\n\r\n") == [Message([("Event", "Hangup")])]


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_crlf_and_bare_lf(eol: bytes) -> None:
    data = eol.join([b"Action: Login", b"Username: u", b"Secret: s", b"", b"Action: Ping", b"", b""])
    assert parse(data, expect_banner=False) == [
        Message([("Action", "Login"), ("Username", "u"), ("Secret", "s")]),
        Message([("Action", "Ping")]),
    ]


def test_repeated_keys_kept_in_order() -> None:
    (m,) = parse(
        b"Event: Status\r\nChanVariable: A=1\r\nVariable: x=1\r\nChanVariable: B=2\r\nVariable: y=2\r\n\r\n"
    )
    assert isinstance(m, Message)
    assert m.get_all("chanvariable") == ["A=1", "B=2"]
    assert m.get_all("Variable") == ["x=1", "y=2"]
    assert m.keys() == ["Event", "ChanVariable", "Variable", "ChanVariable", "Variable"]


def test_empty_values() -> None:
    (m,) = parse(b"Event: QueueMemberAdded\r\nPausedReason: \r\nReason:\r\n\r\n")
    assert isinstance(m, Message)
    assert m.get("PausedReason") == "" and m.get("Reason") == ""
    assert "PausedReason" not in Message([("X", "1")])


def test_value_keeps_colons_and_inner_spaces() -> None:
    (m,) = parse(b"Event: X\r\nTimestamp: 12:30:00\r\nCallerIDName: A  B\r\n\r\n")
    assert isinstance(m, Message)
    assert m["Timestamp"] == "12:30:00" and m["CallerIDName"] == "A  B"


def test_one_megabyte_value() -> None:
    big = b"x" * (1024 * 1024)
    data = b"Event: Cdr\r\nUserField: " + big + b"\r\nEnd: 1\r\n\r\n"
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    (m,) = parse_chunks(chunks)
    assert isinstance(m, Message)
    assert m["UserField"] == big.decode() and m["End"] == "1"


def test_size_limit_raises_remote_protocol_error_and_stays_broken() -> None:
    parser = AMIParser(max_message_size=1000)
    parser.receive_data(b"Event: Hangup\r\n\r\nEvent: X\r\nData: " + b"y" * 2000)
    assert parser.next_event() == Message([("Event", "Hangup")])
    with pytest.raises(RemoteProtocolError):
        parser.next_event()
    parser.receive_data(b"\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        parser.next_event()


def test_pre14_command_follows_with_blank_lines_inside() -> None:
    data = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"
        b"Name/username    Host\n\nsip/1001         (Unspecified)\n1 sip peers\n"
        b"--END COMMAND--\r\n\r\nEvent: Hangup\r\n\r\n"
    )
    follows, hangup = parse(data)
    assert isinstance(follows, Message)
    assert follows.response == "Follows" and follows.action_id == "7"
    assert follows.get_all("Output") == [
        "Name/username    Host",
        "",
        "sip/1001         (Unspecified)",
        "1 sip peers",
    ]
    assert hangup == Message([("Event", "Hangup")])


def test_pre14_end_command_glued_to_last_line() -> None:
    data = b"Response: Follows\r\nPrivilege: Command\r\nNo such command 'foo'--END COMMAND--\r\n\r\n"
    (m,) = parse(data)
    assert isinstance(m, Message)
    assert m.get_all("Output") == ["No such command 'foo'"]


def test_pre14_follows_byte_by_byte() -> None:
    data = (
        b"Asterisk Call Manager/1.3\r\nResponse: Follows\r\nActionID: 1\r\n"
        b"line one\n\n\nline four\n--END COMMAND--\r\n\r\nResponse: Success\r\nActionID: 2\r\n\r\n"
    )
    whole = parse(data)
    assert parse_chunks([data[i : i + 1] for i in range(len(data))]) == whole
    assert len(whole) == 3
    assert isinstance(whole[1], Message) and whole[1].get_all("Output") == [
        "line one",
        "",
        "",
        "line four",
    ]


def test_new_style_command_output_lines() -> None:
    (m,) = parse(
        b"Response: Success\r\nActionID: 3\r\nMessage: Command output follows\r\n"
        b"Output: Name/username Host\r\nOutput: \r\nOutput: 1 sip peers\r\n\r\n"
    )
    assert isinstance(m, Message)
    assert m.response == "Success"
    assert m.get_all("Output") == ["Name/username Host", "", "1 sip peers"]


def test_stray_lf_in_value() -> None:
    data = (
        b"Response: Error\r\nActionID: 9\r\n"
        b"Message: Invalid interface, queuename, or ringinuse value\n\r\n\r\n"
        b"Event: Hangup\r\n\r\n"
    )
    err, hangup = parse(data)
    assert isinstance(err, Message)
    assert err["Message"] == "Invalid interface, queuename, or ringinuse value"
    assert hangup == Message([("Event", "Hangup")])


def test_bare_lf_among_crlf_messages_of_one_read() -> None:
    """The batch path must notice one bare LF in a region of plain frames and hand the
    region to the careful path, which reads the LF as a line end."""
    data = (
        b"Event: A\r\nX: 1\r\n\r\n"
        b"Event: B\r\nY: 2\nZ: 3\r\n\r\n"
        b"Event: C\r\n\r\n"
    )
    assert parse(data, expect_banner=False) == [
        Message([("Event", "A"), ("X", "1")]),
        Message([("Event", "B"), ("Y", "2"), ("Z", "3")]),
        Message([("Event", "C")]),
    ]


def test_originate_response_is_an_event_not_a_response() -> None:
    (m,) = parse(
        b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: o-1\r\n"
        b"Response: Failure\r\nReason: 0\r\n\r\n"
    )
    assert isinstance(m, Message)
    assert m.is_event and not m.is_response and m.response is None
    assert m.event == "OriginateResponse" and m.action_id == "o-1" and m["Response"] == "Failure"


def test_lines_without_colon_skipped_and_blank_frames_ignored() -> None:
    data = b"\r\n\r\nEvent: X\r\nnot a header\r\nA: 1\r\n\r\n\r\n\n"
    assert parse(data, expect_banner=False) == [Message([("Event", "X"), ("A", "1")])]


def test_invalid_utf8_replaced() -> None:
    (m,) = parse(b"Event: Newchannel\r\nCallerIDName: Jos\xe9\r\n\r\n")
    assert isinstance(m, Message) and m["CallerIDName"] == "Jos\ufffd"


def test_consumed_bytes_are_released() -> None:
    parser = AMIParser(expect_banner=False)
    for _ in range(1000):
        parser.receive_data(b"Event: Hangup\r\nChannel: SIP/1001-00000001\r\n\r\n")
        assert parser.next_event() == Message([("Event", "Hangup"), ("Channel", "SIP/1001-00000001")])
    assert parser.buffered == 0
    assert len(parser._buf) < 200


# -- the real captures ------------------------------------------------------------

CAPTURE_FILES = sorted(p.name for p in CAPTURES.glob("*.ami"))


def test_summary_covers_every_capture() -> None:
    assert CAPTURE_FILES and sorted(SUMMARY) == CAPTURE_FILES


@pytest.mark.parametrize("name", CAPTURE_FILES)
def test_capture_counts_match_summary(name: str) -> None:
    items = parse((CAPTURES / name).read_bytes())
    assert isinstance(items[0], Banner) and items[0].line.startswith("Asterisk Call Manager/")
    messages = [m for m in items[1:] if isinstance(m, Message)]
    assert len(messages) == len(items) - 1
    events = [m for m in messages if m.is_event]
    responses = [m for m in messages if m.is_response]
    assert len(events) + len(responses) == len(messages)
    n_events, n_responses, names = SUMMARY[name]
    assert (len(events), len(responses)) == (n_events, n_responses)
    assert Counter(m.event for m in events) == names


def _capture_bytes() -> dict[str, bytes]:
    return {name: (CAPTURES / name).read_bytes() for name in CAPTURE_FILES}


CAPTURE_BYTES = _capture_bytes()
WHOLE = {name: parse(data) for name, data in CAPTURE_BYTES.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(CAPTURE_FILES),
    cuts=st.lists(st.integers(min_value=0, max_value=400_000), max_size=60),
    tiny=st.booleans(),
)
def test_any_chunking_of_captures_gives_identical_messages(name: str, cuts: list[int], tiny: bool) -> None:
    data = CAPTURE_BYTES[name]
    if tiny:  # a burst of 1..3-byte chunks around each cut point
        points = sorted({c % (len(data) + 1) + d for c in cuts for d in (0, 1, 3)})
    else:
        points = sorted({c % (len(data) + 1) for c in cuts})
    points = [p for p in points if 0 <= p <= len(data)]
    bounds = [0, *points, len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert parse_chunks(chunks) == WHOLE[name]


# -- arbitrary input --------------------------------------------------------------

header_key = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"),
    min_size=1,
    max_size=12,
)
header_value = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
    max_size=30,
).map(str.strip)
messages_st = st.lists(
    st.lists(st.tuples(header_key, header_value), min_size=1, max_size=6).map(
        lambda pairs: Message([("Event", "Test"), *pairs])
    ),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), chunk=st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_never_raise_unexpectedly(data: bytes, chunk: int) -> None:
    parser = AMIParser(max_message_size=512)
    try:
        for i in range(0, len(data), chunk):
            parser.receive_data(data[i : i + chunk])
            for item in parser.messages():
                assert isinstance(item, Message | Banner)
    except RemoteProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(valid=messages_st, garbage=st.binary(max_size=300), chunk=st.integers(1, 50))
def test_valid_part_before_garbage_is_parsed(valid: list[Message], garbage: bytes, chunk: int) -> None:
    data = b"Asterisk Call Manager/9.0.0\r\n" + b"".join(m.to_bytes() for m in valid) + garbage
    parser = AMIParser(max_message_size=4096)
    out: list[Message | Banner] = []
    try:
        for i in range(0, len(data), chunk):
            parser.receive_data(data[i : i + chunk])
            out.extend(parser.messages())
    except RemoteProtocolError:
        pass
    assert out[0] == Banner("Asterisk Call Manager/9.0.0")
    assert out[1 : 1 + len(valid)] == valid


@pytest.mark.parametrize("path", sorted(CAPTURES.glob("*.ami")), ids=lambda p: p.name)
def test_fast_path_agrees_with_the_general_pattern(path: Path) -> None:
    """Asterisk's own framing takes the fast path; it must read exactly what the regex reads."""
    from pbxis.ami import parser as module

    parser = AMIParser()
    parser.receive_data(path.read_bytes())
    for item in parser.messages():
        if isinstance(item, Banner):
            continue
        for key, value in item.headers:
            assert "\r" not in key + value and "\n" not in key + value, (key, value)
        block = item.to_bytes()[:-3]  # up to the CR of the last line, as the framer cuts it
        text = block.decode("utf-8")
        assert module._HEADER_LINE.findall(text.rstrip("\r")) == [
            (k, v.strip(" \t")) for k, v in item.headers
        ]


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.lists(st.sampled_from(["Event: A", "Key: V", "\rOdd: line", "LoNg: " + "x" * 5000, "Ünï: x"]),
                 min_size=1),
        min_size=1,
        max_size=6,
    )
)
def test_a_reads_lowered_text_is_each_messages_own(lines: list[list[str]]) -> None:
    """The batch lowers a whole read at once: every message's look-up text is what it
    would have made itself (a line starting with CR, non-ASCII, long ones included)."""
    data = b"".join("\r\n".join(block).encode() + b"\r\n\r\n" for block in lines)
    for item in parse(data, expect_banner=False):
        assert isinstance(item, Message)
        folded = item._folded
        fresh = Message(_text=item._text) if item._text is not None else item
        fresh._folded = None
        assert folded is None or folded == fresh._fold()
        index = {k.lower(): v for k, v in reversed(item.headers)}
        keys = ("event", "key", "odd", "long")
        assert [item.get(k) for k in keys] == [index.get(k) for k in keys]
